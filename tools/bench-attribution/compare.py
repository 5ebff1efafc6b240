#!/usr/bin/env python3
"""Side-by-side: ChannelAttribution (PyPI `channelattribution`) vs
`microfunnel attribute`, on the same ChannelAttribution-format CSV.

usage: compare.py DATA.csv path/to/microfunnel [--order N]

Times `heuristic_models(...)` and `markov_model(...)` calls alone (data
already loaded in pandas), and our whole CLI process (read, parse, fit,
print) for `--model markov` and `--model all`. Prints the speed ratios and
the largest relative per-channel differences. Last line: a JSON summary.
"""
import io, json, subprocess, sys, time

import pandas as pd
from ChannelAttribution import heuristic_models, markov_model


def rel(a, b):
    d = abs(a - b)
    return 0.0 if d == 0 else d / max(abs(a), abs(b))


def main():
    data_path, cli = sys.argv[1], sys.argv[2]
    order = int(sys.argv[sys.argv.index("--order") + 1]) if "--order" in sys.argv else 1
    with open(data_path) as f:
        header = f.readline()
    sep = ";" if header.count(";") > header.count(",") else ","
    data = pd.read_csv(data_path, sep=sep)
    has_null = "total_null" in data.columns
    n_paths = len(data)
    journeys = float(data["total_conversions"].sum() + (data["total_null"].sum() if has_null else 0))
    print(f"data: {data_path}: {n_paths} paths, {journeys:.0f} journeys")

    t0 = time.perf_counter()
    heur = heuristic_models(data, "path", "total_conversions", var_value="total_conversion_value", flg_pro=False)
    t_heur = time.perf_counter() - t0

    t0 = time.perf_counter()
    mk = markov_model(data, "path", "total_conversions", var_value="total_conversion_value",
                      var_null="total_null" if has_null else None, order=order, out_more=True,
                      verbose=False, flg_pro=False)
    t_markov = time.perf_counter() - t0

    def run(model):
        t0 = time.perf_counter()
        p = subprocess.run([cli, "attribute", data_path, "--model", model, "--order", str(order)],
                           capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"microfunnel failed: {p.stderr}")
        return pd.read_csv(io.StringIO(p.stdout)), dt

    ours_mk, t_ours_mk = run("markov")
    ours_all, t_ours_all = run("all")

    # Heuristics: first/last/linear must agree within 1e-9.
    h = heur.set_index("channel_name")
    o = ours_all.set_index("channel_name")
    heur_max = 0.0
    for ca_col, our_col in [("first_touch", "first"), ("last_touch", "last"), ("linear_touch", "linear")]:
        for kind in ("conversions", "value"):
            for ch in h.index:
                heur_max = max(heur_max, rel(float(h.loc[ch, f"{ca_col}_{kind}"]), float(o.loc[ch, f"{our_col}_{kind}"])))

    # Markov: its simulated answer vs our exact one.
    r = mk["result"].set_index("channel_name")
    m = ours_mk.set_index("channel_name")
    mk_conv = max(rel(float(r.loc[ch, "total_conversions"]), float(m.loc[ch, "total_conversions"])) for ch in r.index)
    mk_val = max(rel(float(r.loc[ch, "total_conversion_value"]), float(m.loc[ch, "total_conversion_value"])) for ch in r.index)
    total = float(data["total_conversions"].sum())
    mk_abs = max(abs(float(r.loc[ch, "total_conversions"]) - float(m.loc[ch, "total_conversions"])) for ch in r.index) / total

    ratio_mk = t_markov / t_ours_mk
    ratio_heur = t_heur / t_ours_all
    print(f"ChannelAttribution heuristic_models: {t_heur:.3f} s   markov_model(order={order}): {t_markov:.3f} s")
    print(f"microfunnel attribute --model markov (whole process): {t_ours_mk:.3f} s   --model all: {t_ours_all:.3f} s")
    print(f"speed ratio markov (CA call / our process): {ratio_mk:.1f}x   {'OK' if ratio_mk >= 5 else 'BELOW TARGET 5x'}")
    print(f"speed ratio heuristics (CA call / our --model all process): {ratio_heur:.1f}x")
    print(f"heuristics max relative per-channel difference (first/last/linear, conv+value): {heur_max:.3e}   {'OK' if heur_max <= 1e-9 else 'ABOVE 1e-9'}")
    print(f"markov: CA simulated vs our exact, max relative per-channel difference: conversions {mk_conv:.3e}, value {mk_val:.3e}; "
          f"max abs conversions diff / total conversions {mk_abs:.3e}")
    print(json.dumps({"paths": n_paths, "journeys": journeys, "ca_heuristic_s": t_heur, "ca_markov_s": t_markov,
                      "ours_markov_s": t_ours_mk, "ours_all_s": t_ours_all, "ratio_markov": ratio_mk,
                      "ratio_heuristics": ratio_heur, "heuristic_max_rel_diff": heur_max,
                      "markov_max_rel_diff_conv": mk_conv, "markov_max_rel_diff_value": mk_val}))


if __name__ == "__main__":
    main()
