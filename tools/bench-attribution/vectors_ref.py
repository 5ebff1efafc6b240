#!/usr/bin/env python3
"""Independent reference for the attribution golden vectors.

Computes every expectation in tests/vectors/attribution/*.json from first
principles, with exact rational arithmetic (fractions.Fraction) wherever the
model is rational: largest-remainder money splits, heuristic weights, the
Markov absorbing chain (Gaussian elimination over Fractions) and Shapley by
brute-force enumeration of permutations. It shares no code with the Rust
engine. Run: python3 tools/bench-attribution/vectors_ref.py (rewrites the
vector files).
"""
import itertools, json, math, os, sys
from datetime import datetime, timezone
from fractions import Fraction as F

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "vectors", "attribution")

# ---------------- money ----------------
def split(total, weights):
    if any(w < 0 for w in weights):
        raise ValueError("weights: must be finite and ≥ 0")
    if all(w == 0 for w in weights):
        raise ValueError("weights: must not all be zero")
    ws = [F(w) for w in weights]
    W = sum(ws)
    mag = abs(total)
    quotas = [mag * w / W for w in ws]
    parts = [math.floor(q) for q in quotas]
    left = mag - sum(parts)
    order = sorted(range(len(ws)), key=lambda i: (-(quotas[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return [-p if total < 0 else p for p in parts]

# ---------------- heuristics ----------------
def is_direct(c):
    return c.lower() in ("direct", "(direct)")

POS = {"position": (40, 20, 40), "j": (20, 20, 60), "inverse-j": (60, 20, 20)}

def weights(model, chans, ages=None, half=6.0, custom=None):
    n = len(chans)
    w = [F(0)] * n
    if model == "first": w[0] = F(1)
    elif model == "last": w[-1] = F(1)
    elif model == "last-non-direct":
        idx = [i for i in range(n) if not is_direct(chans[i])]
        w[idx[-1] if idx else n - 1] = F(1)
    elif model == "linear": w = [F(1)] * n
    elif model == "time-decay":
        w = [2.0 ** (-a / half) for a in ages]  # irrational: float
    else:
        f, m, l = custom if custom else POS[model]
        f, m, l = F(f), F(m), F(l)
        if n == 1: w = [F(1)]
        elif n == 2: w = [f, l]
        else: w = [f / 1] + [m / (n - 2)] * (n - 2) + [l]
        if all(x == 0 for x in w): w = [F(1)] * n
    return w

def parse_ts(s):
    return int(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)

def conversion(model, touches, value, conv_at=None, lookback=None, half=6.0, custom=None):
    timed = [t for t in touches if "at" in t]
    if timed and len(timed) != len(touches):
        raise ValueError("touches[%d].at: a timestamp is required" % next(i for i, t in enumerate(touches) if "at" not in t))
    if not timed and touches and (model == "time-decay" or lookback is not None):
        raise ValueError("touches[0].at: a timestamp is required")
    ts = [dict(t) for t in touches]
    if timed:
        ts.sort(key=lambda t: parse_ts(t["at"]))
    c = parse_ts(conv_at) if conv_at else (parse_ts(ts[-1]["at"]) if timed and ts else None)
    if c is not None and timed:
        ts = [t for t in ts if parse_ts(t["at"]) <= c]
        if lookback is not None:
            ts = [t for t in ts if c - parse_ts(t["at"]) <= round(lookback * 3600000)]
    if not ts:
        return {"credits": [], "unattributed_conversions": 1.0, "unattributed_minor": value, "touches_used": 0}
    chans = [t["channel"] for t in ts]
    ages = [(c - parse_ts(t["at"])) / 3600000 for t in ts] if c is not None else None
    w = weights(model, chans, ages, half, custom)
    names, cw = [], []
    for ch, x in zip(chans, w):
        if ch in names: cw[names.index(ch)] += x
        else: names.append(ch); cw.append(x)
    if model == "time-decay":
        # the engine quantises irrational weights to 2^52 / max: mirror that
        mx = max(cw); qw = [round(x / mx * 2**52) for x in cw]
        money = split(value, qw)
    else:
        money = split(value, cw)
    W = sum(cw)
    out = [{"channel": n, "conversions": float(x / W), "value_minor": m} for n, x, m in zip(names, cw, money) if x > 0]
    out.sort(key=lambda d: d["channel"].encode())
    return {"credits": out, "unattributed_conversions": 0.0, "unattributed_minor": 0, "touches_used": len(ts)}

def steps(path):
    return [s.strip() for s in path.split(">") if s.strip()]

def table(model, paths, half=6.0, custom=None):
    chans = []
    for p in paths:
        for s in steps(p["path"]):
            if s not in chans: chans.append(s)
    conv = {c: F(0) for c in chans}; val = {c: F(0) for c in chans}
    for p in paths:
        st = steps(p["path"])
        w = weights(model, st, p.get("ages_h"), half, custom)
        W = sum(w)
        for c, x in zip(st, w):
            conv[c] += F(p.get("conversions", 0)) * F(x) / F(W)
            val[c] += F(p.get("value", 0)) * F(x) / F(W)
    return [{"channel": c, "conversions": float(conv[c]), "value": float(val[c])} for c in sorted(chans, key=str.encode)]

# ---------------- Markov (exact, Fractions) ----------------
def solve_frac(A, b):
    n = len(A)
    M = [row[:] + [b[i]] for i, row in enumerate(A)]
    for col in range(n):
        piv = next(r for r in range(col, n) if M[r][col] != 0)
        M[col], M[piv] = M[piv], M[col]
        p = M[col][col]
        M[col] = [x / p for x in M[col]]
        for r in range(n):
            if r != col and M[r][col] != 0:
                f = M[r][col]
                M[r] = [x - f * y for x, y in zip(M[r], M[col])]
    return [M[i][n] for i in range(n)]

def markov(paths, order=1):
    trans, conv, null, endval = {}, {}, {}, {}
    states = ["S"]
    tot_c = F(0); tot_v = F(0)
    for p in paths:
        st = steps(p["path"])
        k = min(order, len(st))
        seq = []
        for i in range(len(st) - k + 1):
            s = tuple(st[i:i + k])
            if s not in states: states.append(s)
            if not seq or seq[-1] != s: seq.append(s)
        c, u, v = F(p.get("conversions", 0)), F(p.get("nulls", 0)), F(p.get("value", 0))
        tot_c += c; tot_v += v
        if c + u > 0:
            prev = "S"
            for s in seq:
                trans[(prev, s)] = trans.get((prev, s), 0) + c + u; prev = s
            conv[prev] = conv.get(prev, 0) + c
            null[prev] = null.get(prev, 0) + u
            if c > 0: endval[prev] = endval.get(prev, 0) + v
    if tot_c == 0: raise ValueError("no conversions: nothing to attribute")
    def P(removed, reward):
        keep = [s for s in states if s == "S" or removed is None or removed not in s]
        idx = {s: i for i, s in enumerate(keep)}
        A = [[F(0)] * len(keep) for _ in keep]; b = [F(0)] * len(keep)
        for s in keep:
            i = idx[s]
            out = sum(v for (a, _), v in trans.items() if a == s) + conv.get(s, 0) + null.get(s, 0)
            A[i][i] += 1
            if out == 0: continue
            for (a, t), v in trans.items():
                if a == s and t in idx: A[i][idx[t]] -= F(v) / out
            b[i] = F(conv.get(s, 0) if reward == "c" else endval.get(s, 0)) / out
        return solve_frac(A, b)[0]
    pc, pv = P(None, "c"), P(None, "v")
    chans = sorted({c for s in states if s != "S" for c in s}, key=str.encode)
    re = {c: (1 - P(c, "c") / pc, (1 - P(c, "v") / pv) if pv > 0 else F(0)) for c in chans}
    sc = sum(r[0] for r in re.values()); sv = sum(r[1] for r in re.values())
    out = [{"channel": c, "conversions": float(tot_c * re[c][0] / sc), "value": float(tot_v * re[c][1] / sv) if sv > 0 else 0.0,
            "removal_effect": float(re[c][0]), "removal_effect_value": float(re[c][1])} for c in chans]
    return {"p_conversion": float(pc), "channels": out}

# ---------------- Shapley (brute force over permutations) ----------------
def shapley(paths, method, game="conversions"):
    sets = {}
    chans = []
    for p in paths:
        st = steps(p["path"])
        for s in st:
            if s not in chans: chans.append(s)
        key = frozenset(st)
        a = sets.setdefault(key, [F(0)] * 3)
        a[0] += F(p.get("conversions", 0)); a[1] += F(p.get("nulls", 0)); a[2] += F(p.get("value", 0))
    chans = sorted(chans, key=str.encode)
    tc = sum(v[0] for v in sets.values()); tv = sum(v[2] for v in sets.values())
    if method == "zhao":
        phi = {c: [sum(v[0] / len(T) for T, v in sets.items() if c in T), sum(v[2] / len(T) for T, v in sets.items() if c in T)] for c in chans}
    else:
        def v(S):
            sub = [x for T, x in sets.items() if T <= S]
            c = sum(x[0] for x in sub); u = sum(x[1] for x in sub); val = sum(x[2] for x in sub)
            if game == "conversions": return (c, val)
            j = c + u
            return (c / j, val / j) if j > 0 else (F(0), F(0))
        phi = {c: [F(0), F(0)] for c in chans}
        perms = list(itertools.permutations(chans))
        for perm in perms:
            S = frozenset(); before = v(S)
            for c in perm:
                S = S | {c}; after = v(S)
                phi[c][0] += after[0] - before[0]; phi[c][1] += after[1] - before[1]
                before = after
        phi = {c: [x / len(perms), y / len(perms)] for c, (x, y) in phi.items()}
    pc = sum(max(p[0], 0) for p in phi.values()); pv = sum(max(p[1], 0) for p in phi.values())
    out = [{"channel": c, "conversions": float(tc * max(phi[c][0], 0) / pc) if pc > 0 else 0.0,
            "value": float(tv * max(phi[c][1], 0) / pv) if pv > 0 else 0.0,
            "phi": float(phi[c][0]), "phi_value": float(phi[c][1])} for c in chans]
    return {"exact": True, "channels": out}

# ---------------- progressive & metrics ----------------
def progressive(inp):
    model = inp["model"]; lookback = inp.get("lookback_hours")
    open_, totals, unc, unm, recorded, convs = {}, {}, 0.0, 0, [], []
    for e in inp["events"]:
        v = e["visitor"]
        if "convert" in e:
            touches = open_.pop(v, [])
            r = conversion(model, touches, e["convert"], e.get("at"), lookback)
            convs.append(r["credits"])
            for c in r["credits"]:
                t = totals.setdefault(c["channel"], [F(0), 0])
                t[0] += F(c["conversions"]); t[1] += c["value_minor"]
            unc += r["unattributed_conversions"]; unm += r["unattributed_minor"]
            ts = touches
            if ts and "at" in ts[0]:
                ts = sorted(ts, key=lambda t: parse_ts(t["at"]))
                if e.get("at"): ts = [t for t in ts if parse_ts(t["at"]) <= parse_ts(e["at"])]
            if ts: recorded.append({"path": " > ".join(t["channel"] for t in ts), "conversions": 1, "value": e["convert"]})
        elif e.get("abandon"):
            ts = open_.pop(v, [])
            if ts: recorded.append({"path": " > ".join(t["channel"] for t in ts), "nulls": 1})
        else:
            open_.setdefault(v, []).append({k: e[k] for k in ("channel", "at") if k in e})
    credits = [{"channel": c, "conversions": float(t[0]), "value_minor": t[1]} for c, t in sorted(totals.items(), key=lambda kv: kv[0].encode()) if t[0] != 0 or t[1] != 0]
    try:
        mk = [{"channel": c["channel"], "conversions": c["conversions"]} for c in markov(recorded)["channels"]]
    except ValueError as ex:
        mk = str(ex)
    return {"conversions": convs, "totals": {"credits": credits, "unattributed_conversions": unc, "unattributed_minor": unm}, "markov": mk}

def metrics(inp):
    if "aqs" in inp:
        a = inp["aqs"]
        r = lambda x, y: min(max(x / y, 0), 1) if y > 0 else 0.0
        i = r(a["identified_conversions"], a["conversions"]); c = r(a["classified_touches"], a["touches"])
        t = r(a["consistent_touches"], a["touches"]); s = r(a["journeys"], a["min_journeys"])
        return {"score": 100 * (0.3 * i + 0.3 * c + 0.2 * t + 0.2 * s), "identity_match": i, "coverage": c, "temporal_consistency": t, "statistical_support": s}
    if "kpi" in inp:
        k = inp["kpi"]; d = lambda a, b: a / b if b is not None and b > 0 else None
        return {"channel": k["channel"], "conversions": k["conversions"], "value": k["value"],
                "conversion_rate": d(k["conversions"], k.get("sessions")), "average_order_value": d(k["value"], k["conversions"]),
                "cpa": d(k["spend"], k["conversions"]) if k.get("spend") is not None else None, "roas": d(k["value"], k.get("spend"))}
    if "tta" in inp:
        ds = [max(b - a, 0) for a, b in inp["tta"]]
        return {"stats": {"count": len(ds), "total_ms": sum(ds), "max_ms": max(ds, default=0), "within_1s": sum(d <= 1000 for d in ds),
                          "within_60s": sum(d <= 60000 for d in ds)}, "mean_ms": (sum(ds) / len(ds)) if ds else None}
    if "icv" in inp:
        m = markov(inp["icv"]["paths"])
        tc = sum(p.get("conversions", 0) for p in inp["icv"]["paths"]); tv = sum(p.get("value", 0) for p in inp["icv"]["paths"])
        return [{"channel": c["channel"], "conversions": tc * c["removal_effect"], "value": tv * c["removal_effect_value"]} for c in m["channels"]]

def fnum(x):
    return str(int(x)) if float(x).is_integer() else repr(float(x))

def run(suite, inp):
    try:
        if suite == "split": return {"ok": split(inp["value_minor"], inp["weights"])}
        custom = tuple(inp["weights"]) if "weights" in inp and suite != "split" else None
        half = inp.get("half_life_hours", 6.0)
        if suite == "conversion":
            c = inp["conversion"]
            return {"ok": conversion(inp["model"], inp["touches"], c.get("value_minor", 0), c.get("at"), inp.get("lookback_hours"), half, custom)}
        if suite == "table":
            for i, p in enumerate(inp["paths"]):
                if not steps(p["path"]): raise ValueError("paths[%d]: path: must name at least one channel" % i)
            return {"ok": table(inp["model"], inp["paths"], half, custom)}
        if suite == "markov":
            j = sum(p.get("conversions", 0) + p.get("nulls", 0) for p in inp["paths"])
            if "min_journeys" in inp and j < inp["min_journeys"]:
                raise ValueError("too few journeys for a data-driven model: %s < %s" % (fnum(j), fnum(inp["min_journeys"])))
            return {"ok": markov(inp["paths"], inp.get("order", 1))}
        if suite == "shapley": return {"ok": shapley(inp["paths"], inp["method"], inp.get("game", "conversions"))}
        if suite == "progressive": return {"ok": progressive(inp)}
        if suite == "metrics": return {"ok": metrics(inp)}
    except ValueError as e:
        return {"error": str(e)}
    raise SystemExit("unknown suite " + suite)

def T(h, m=0):
    return "2026-03-01T%02d:%02d:00.000Z" % (h, m)

P3 = [{"channel": "Paid Search", "at": T(9)}, {"channel": "Email", "at": T(10)}, {"channel": "Display", "at": T(11)}]
CA_TABLE = [
    {"path": "A > B > C", "conversions": 2, "value": 30.5, "nulls": 1},
    {"path": "A", "conversions": 1, "value": 10, "nulls": 3},
    {"path": "B > A > B", "conversions": 3, "value": 12, "nulls": 0},
    {"path": "C > C", "conversions": 0, "value": 0, "nulls": 2},
    {"path": " D >C ", "conversions": 1, "value": 7.25, "nulls": 1},
]
FILES = {
 "split": ("Largest-remainder split of integer minor units; ties go to the earlier part.", [
    ("thirds", {"value_minor": 100, "weights": [1, 1, 1]}),
    ("two_thirds_one_third", {"value_minor": 10, "weights": [2, 1]}),
    ("zero_value", {"value_minor": 0, "weights": [1, 1]}),
    ("refund_is_symmetric", {"value_minor": -100, "weights": [1, 1, 1]}),
    ("one_cent_three_ways", {"value_minor": 1, "weights": [1, 1, 1]}),
    ("largest_remainder_beats_position", {"value_minor": 1, "weights": [1, 3]}),
    ("fractional_weights", {"value_minor": 7, "weights": [0.5, 0.25, 0.25]}),
    ("u_shape_five_touches", {"value_minor": 999, "weights": [120, 20, 20, 20, 120]}),
    ("all_zero_weights", {"value_minor": 5, "weights": [0, 0]}),
 ]),
 "conversion": ("One conversion over a visitor's touches: each heuristic model, lookback, edge cases; credits sum exactly to value_minor.", [
    ("first_touch", {"model": "first", "touches": P3, "conversion": {"value_minor": 1000}}),
    ("last_touch", {"model": "last", "touches": P3, "conversion": {"value_minor": 1000}}),
    ("linear_three_touches", {"model": "linear", "touches": P3, "conversion": {"value_minor": 1000}}),
    ("linear_repeated_channel", {"model": "linear", "touches": [{"channel": "A"}, {"channel": "B"}, {"channel": "A"}], "conversion": {"value_minor": 100}}),
    ("time_decay_half_life_1h", {"model": "time-decay", "half_life_hours": 1, "touches": P3, "conversion": {"value_minor": 1000, "at": T(11)}}),
    ("time_decay_default_6h", {"model": "time-decay", "touches": P3, "conversion": {"value_minor": 1000, "at": T(12)}}),
    ("time_decay_equal_timestamps", {"model": "time-decay", "half_life_hours": 2, "touches": [{"channel": "A", "at": T(9)}, {"channel": "B", "at": T(9)}], "conversion": {"value_minor": 101, "at": T(10)}}),
    ("time_decay_needs_timestamps", {"model": "time-decay", "touches": [{"channel": "A"}], "conversion": {"value_minor": 10}}),
    ("position_u_three", {"model": "position", "touches": P3, "conversion": {"value_minor": 1000}}),
    ("position_u_five", {"model": "position", "touches": [{"channel": c} for c in "ABCDE"], "conversion": {"value_minor": 999}}),
    ("position_two_touches_half_half", {"model": "position", "touches": P3[:2], "conversion": {"value_minor": 1001}}),
    ("position_single_touch", {"model": "position", "touches": P3[:1], "conversion": {"value_minor": 1234}}),
    ("j_shape_four", {"model": "j", "touches": [{"channel": c} for c in "ABCD"], "conversion": {"value_minor": 1000}}),
    ("j_shape_two_touches_renormalised", {"model": "j", "touches": [{"channel": "A"}, {"channel": "B"}], "conversion": {"value_minor": 1000}}),
    ("inverse_j_three", {"model": "inverse-j", "touches": [{"channel": c} for c in "ABC"], "conversion": {"value_minor": 1000}}),
    ("custom_weights_renormalised", {"model": "position", "weights": [3, 1, 1], "touches": [{"channel": c} for c in "ABCD"], "conversion": {"value_minor": 1000}}),
    ("custom_middle_only_two_touches_falls_back_to_equal", {"model": "position", "weights": [0, 1, 0], "touches": [{"channel": "A"}, {"channel": "B"}], "conversion": {"value_minor": 7}}),
    ("last_non_direct_skips_direct", {"model": "last-non-direct", "touches": [{"channel": "Email"}, {"channel": "Paid Search"}, {"channel": "Direct"}], "conversion": {"value_minor": 500}}),
    ("last_non_direct_direct_only", {"model": "last-non-direct", "touches": [{"channel": "Direct"}, {"channel": "(direct)"}], "conversion": {"value_minor": 500}}),
    ("single_touch_linear", {"model": "linear", "touches": [{"channel": "SMS"}], "conversion": {"value_minor": 1}}),
    ("zero_value_conversion", {"model": "linear", "touches": P3, "conversion": {"value_minor": 0}}),
    ("empty_journey_unattributed", {"model": "linear", "touches": [], "conversion": {"value_minor": 250}}),
    ("lookback_cuts_old_touches", {"model": "linear", "lookback_hours": 1.5, "touches": P3, "conversion": {"value_minor": 1000, "at": T(11, 30)}}),
    ("lookback_boundary_is_inclusive", {"model": "linear", "lookback_hours": 2, "touches": P3, "conversion": {"value_minor": 1000, "at": T(11)}}),
    ("lookback_cuts_everything", {"model": "first", "lookback_hours": 0.5, "touches": P3, "conversion": {"value_minor": 300, "at": T(13)}}),
    ("touches_after_conversion_ignored", {"model": "last", "touches": P3, "conversion": {"value_minor": 80, "at": T(10, 30)}}),
    ("unsorted_touches_sorted_by_time", {"model": "first", "touches": [P3[2], P3[0], P3[1]], "conversion": {"value_minor": 80}}),
    ("equal_timestamps_keep_input_order", {"model": "first", "touches": [{"channel": "B", "at": T(9)}, {"channel": "A", "at": T(9)}], "conversion": {"value_minor": 80}}),
    ("mixed_timestamps_rejected", {"model": "linear", "touches": [{"channel": "A", "at": T(9)}, {"channel": "B"}], "conversion": {"value_minor": 80}}),
    ("lookback_needs_timestamps", {"model": "linear", "lookback_hours": 3, "touches": [{"channel": "A"}], "conversion": {"value_minor": 80}}),
 ]),
 "table": ("Heuristic models over a ChannelAttribution path table (first/last/linear equal ChannelAttribution's heuristic_models).", [
    ("first_touch", {"model": "first", "paths": CA_TABLE}),
    ("last_touch", {"model": "last", "paths": CA_TABLE}),
    ("linear_counts_each_occurrence", {"model": "linear", "paths": CA_TABLE}),
    ("last_non_direct", {"model": "last-non-direct", "paths": [{"path": "Email > Direct", "conversions": 2, "value": 20}, {"path": "Direct > Direct", "conversions": 1, "value": 5}, {"path": "Direct > SEO > Direct", "conversions": 4, "value": 8}]}),
    ("position_u", {"model": "position", "paths": CA_TABLE}),
    ("time_decay_with_ages", {"model": "time-decay", "half_life_hours": 3, "paths": [{"path": "A > B > A", "conversions": 3, "value": 9, "ages_h": [6, 3, 0]}, {"path": "B", "conversions": 1, "value": 2, "ages_h": [1]}]}),
    ("channel_that_never_converts_gets_zero", {"model": "linear", "paths": [{"path": "A > B", "conversions": 2, "value": 4}, {"path": "Z > Z", "conversions": 0, "nulls": 5}]}),
    ("single_step_paths", {"model": "linear", "paths": [{"path": "A", "conversions": 1.5, "value": 3}, {"path": "B", "conversions": 2, "value": 0}]}),
    ("empty_path_rejected", {"model": "first", "paths": [{"path": "A", "conversions": 1}, {"path": " > ", "conversions": 1}]}),
 ]),
 "markov": ("Markov removal effect solved exactly from the absorbing chain (Fraction-exact reference).", [
    ("single_path_two_channels", {"paths": [{"path": "A > B", "conversions": 1, "value": 10}]}),
    ("one_converting_one_null", {"paths": [{"path": "A", "conversions": 1, "value": 5}, {"path": "B", "nulls": 1}]}),
    ("textbook_three_channels", {"paths": [{"path": "C1 > C2 > C3", "conversions": 1, "value": 10}, {"path": "C1", "nulls": 1}, {"path": "C2 > C3", "nulls": 1}]}),
    ("ca_table_order_1", {"paths": CA_TABLE}),
    ("ca_table_order_2", {"paths": CA_TABLE, "order": 2}),
    ("ca_table_order_3", {"paths": CA_TABLE, "order": 3}),
    ("loops_and_repeats", {"paths": [{"path": "A > B > A > B > C", "conversions": 2, "value": 20, "nulls": 1}, {"path": "B > B > A", "conversions": 1, "value": 3, "nulls": 2}, {"path": "C > A", "nulls": 4}]}),
    ("never_converting_channel_feeds_converter", {"paths": [{"path": "A", "conversions": 3, "value": 30, "nulls": 1}, {"path": "Z > A", "nulls": 2}]}),
    ("direct_only_journeys", {"paths": [{"path": "Direct", "conversions": 2, "value": 8, "nulls": 2}, {"path": "Direct > Direct", "conversions": 1, "value": 1}]}),
    ("value_follows_last_state", {"paths": [{"path": "A > B", "conversions": 1, "value": 100}, {"path": "B > A", "conversions": 1, "value": 1}, {"path": "A", "nulls": 1}]}),
    ("no_conversions_rejected", {"paths": [{"path": "A > B", "nulls": 3}]}),
    ("too_few_journeys_refused", {"paths": [{"path": "A", "conversions": 1, "nulls": 1}], "min_journeys": 3}),
 ]),
 "shapley": ("Shapley values over channel sets (brute-force permutation reference) and Zhao's simplified Shapley.", [
    ("zhao_basic", {"method": "zhao", "paths": [{"path": "A > B", "conversions": 2, "value": 10}, {"path": "A", "conversions": 1, "value": 4}, {"path": "B > C > B", "conversions": 3, "value": 9}]}),
    ("exact_conversions_game_equals_zhao", {"method": "shapley", "paths": [{"path": "A > B", "conversions": 2, "value": 10}, {"path": "A", "conversions": 1, "value": 4}, {"path": "B > C > B", "conversions": 3, "value": 9}]}),
    ("exact_rate_game", {"method": "shapley", "game": "rate", "paths": [{"path": "A", "conversions": 1, "nulls": 3, "value": 2}, {"path": "B", "conversions": 1, "nulls": 1, "value": 1}, {"path": "A > B", "conversions": 3, "nulls": 1, "value": 9}, {"path": "C", "nulls": 2}]}),
    ("exact_rate_game_four_channels", {"method": "shapley", "game": "rate", "paths": [{"path": "A > D", "conversions": 2, "nulls": 2, "value": 2}, {"path": "B", "conversions": 1, "nulls": 4, "value": 1}, {"path": "A > B > C", "conversions": 5, "nulls": 1, "value": 12}, {"path": "D", "nulls": 3}, {"path": "C > D", "conversions": 1, "nulls": 1, "value": 3}]}),
    ("never_converting_channel", {"method": "shapley", "paths": [{"path": "A", "conversions": 2, "value": 6}, {"path": "Z", "nulls": 5}]}),
    ("single_channel", {"method": "zhao", "paths": [{"path": "A > A", "conversions": 4, "value": 1}]}),
 ]),
}
FILES["shapley"][1].append(("sampled_additive_game_is_exact_in_every_permutation",
    {"method": "shapley", "max_exact": 0, "samples": 50, "seed": 7, "paths": [{"path": "A", "conversions": 2, "value": 6}, {"path": "B", "conversions": 1, "value": 1}, {"path": "C > C", "conversions": 5, "value": 10}]}))
FILES["progressive"] = ("Progressive attribution: touches and conversions arrive per visitor; totals and Markov counts update without re-reading history.", [
    ("two_visitors_linear", {"model": "linear", "events": [
        {"visitor": "v1", "channel": "Email", "at": T(9)}, {"visitor": "v2", "channel": "Paid Search", "at": T(9, 5)},
        {"visitor": "v1", "channel": "Paid Search", "at": T(9, 10)}, {"visitor": "v1", "convert": 1000, "at": T(9, 20)},
        {"visitor": "v2", "channel": "Display", "at": T(9, 30)}, {"visitor": "v2", "abandon": True},
        {"visitor": "v2", "channel": "Email", "at": T(10)}, {"visitor": "v2", "convert": 333, "at": T(10, 1)}]}),
    ("journey_resets_after_conversion", {"model": "first", "events": [
        {"visitor": "v", "channel": "A", "at": T(9)}, {"visitor": "v", "convert": 10, "at": T(9, 1)},
        {"visitor": "v", "channel": "B", "at": T(9, 2)}, {"visitor": "v", "convert": 20, "at": T(9, 3)}]}),
    ("conversion_without_touches_is_unattributed", {"model": "last", "events": [
        {"visitor": "x", "convert": 500, "at": T(9)}, {"visitor": "y", "channel": "SMS", "at": T(9)}, {"visitor": "y", "convert": 5, "at": T(9, 30)}]}),
    ("lookback_in_progressive", {"model": "linear", "lookback_hours": 1, "events": [
        {"visitor": "v", "channel": "Old", "at": T(6)}, {"visitor": "v", "channel": "New", "at": T(9, 30)}, {"visitor": "v", "channel": "Newer", "at": T(9, 45)},
        {"visitor": "v", "convert": 100, "at": T(10)}]}),
    ("abandon_only_has_no_markov", {"model": "linear", "events": [
        {"visitor": "v", "channel": "A", "at": T(9)}, {"visitor": "v", "abandon": True}]}),
])
FILES["metrics"] = ("Metrics: AQS formula, channel KPIs, TTA bookkeeping, ICV from removal effects.", [
    ("aqs_full_quality", {"aqs": {"conversions": 10, "identified_conversions": 10, "touches": 50, "classified_touches": 50, "consistent_touches": 50, "journeys": 2000, "min_journeys": 1000}}),
    ("aqs_partial", {"aqs": {"conversions": 10, "identified_conversions": 7, "touches": 40, "classified_touches": 30, "consistent_touches": 36, "journeys": 250, "min_journeys": 1000}}),
    ("aqs_no_data", {"aqs": {"conversions": 0, "identified_conversions": 0, "touches": 0, "classified_touches": 0, "consistent_touches": 0, "journeys": 0, "min_journeys": 100}}),
    ("kpi_with_sessions_and_spend", {"kpi": {"channel": "Paid Search", "conversions": 12.5, "value": 1000, "sessions": 500, "spend": 250}}),
    ("kpi_without_spend", {"kpi": {"channel": "Email", "conversions": 4, "value": 80, "sessions": 0}}),
    ("kpi_zero_conversions", {"kpi": {"channel": "Display", "conversions": 0, "value": 0, "sessions": 100, "spend": 50}}),
    ("tta_bookkeeping", {"tta": [[1000, 1150], [2000, 2000], [5000, 70000], [9000, 8000]]}),
    ("icv_from_removal_effects", {"icv": {"paths": [{"path": "A > B", "conversions": 2, "value": 20}, {"path": "B", "conversions": 1, "value": 5, "nulls": 1}, {"path": "A", "nulls": 2}]}}),
])

def main():
    os.makedirs(ROOT, exist_ok=True)
    total = 0
    for suite, (desc, cases) in FILES.items():
        out = []
        for name, inp in cases:
            exp = run(suite, inp)
            if suite == "shapley" and inp.get("max_exact") == 0 and "ok" in exp:
                exp["ok"]["exact"] = False
            out.append({"name": name, "input": inp, "expected": exp})
        with open(os.path.join(ROOT, suite + ".json"), "w") as f:
            json.dump({"suite": "attribution." + suite, "description": desc, "cases": out}, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(suite, len(out)); total += len(out)
    print("total", total)

if __name__ == "__main__":
    main()
