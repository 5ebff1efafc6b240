"""Writes tests/vectors/clv/*.json with expectations computed by `lifetimes`
and SciPy, not by microfunnel: the likelihoods by lifetimes' own formulas,
the predictions by its conditional expectations (SciPy's hyp2f1), the fits
by its BFGS. Error cases state the refusal the core promises. Run with the
venv bootstrap makes: target/venv/bin/python tests/clv/make_vectors.py
"""

import json
import math
import os
import warnings

import numpy as np
from lifetimes import BetaGeoFitter, GammaGammaFitter

warnings.simplefilter("ignore")
OUT = os.path.join(os.path.dirname(__file__), "..", "vectors", "clv")
CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CDNOW_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
SMALL = [[2, 30.43, 38.86, 22.35], [1, 1.71, 38.86, 11.77], [0, 0.0, 38.86, 0.0], [0, 0.0, 38.86, 0.0],
         [0, 0.0, 38.86, 0.0], [7, 29.43, 38.86, 73.74], [1, 5.0, 38.86, 11.77], [0, 0.0, 38.86, 0.0],
         [2, 35.71, 38.86, 25.55], [0, 0.0, 38.86, 0.0], [5, 24.43, 38.86, 42.35], [0, 0.0, 32.14, 0.0],
         [50, 30.0, 31.0, 9.99]]


def arrays(rows):
    a = np.array(rows, dtype=float)
    return a[:, 0], a[:, 1], a[:, 2], (a[:, 3] if a.shape[1] > 3 else None)


def bg_ll(p, rows):
    x, tx, T, _ = arrays(rows)
    n = len(x)
    return float(-n * BetaGeoFitter._negative_log_likelihood(np.log([p[k] for k in "r alpha a b".split()]),
                                                              x, tx, T, np.ones(n), 0.0))


def gg_ll(p, rows):
    x, _, _, m = arrays(rows)
    keep = (x > 0) & (m > 0)
    k = int(keep.sum())
    return float(-k * GammaGammaFitter._negative_log_likelihood(np.log([p[k] for k in "p q v".split()]),
                                                                 x[keep], m[keep], np.ones(k), 0.0))


def bg_model(p):
    f = BetaGeoFitter()
    import pandas as pd
    f.params_ = pd.Series(p)[["r", "alpha", "a", "b"]]
    return f


def gg_model(p):
    f = GammaGammaFitter()
    import pandas as pd
    f.params_ = pd.Series(p)[["p", "q", "v"]]
    return f


def predictions(bp, gp, rows, horizon):
    x, tx, T, m = arrays(rows)
    bg = bg_model(bp)
    purchases = np.atleast_1d(bg.conditional_expected_number_of_purchases_up_to_time(horizon, x, tx, T))
    alive = np.atleast_1d(bg.conditional_probability_alive(x, tx, T))
    out = []
    for i in range(len(x)):
        value = None
        if gp is not None and m is not None:
            value = float(gg_model(gp).conditional_expected_average_profit(x[i], m[i]) * purchases[i])
        out.append({"p_alive": float(alive[i]), "expected_purchases": float(purchases[i]), "expected_value": value})
    return out


def simulate(seed, n, params, spend=None, max_T=52.0):
    """Customers of a BG/NBD process (and Gamma-Gamma spend), in weeks."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        lam = rng.gamma(params["r"], 1.0 / params["alpha"])
        drop = rng.beta(params["a"], params["b"])
        T = round(float(rng.uniform(1.0, max_T)), 2)
        t, x, last = 0.0, 0, 0.0
        while True:
            t += rng.exponential(1.0 / lam) if lam > 0 else math.inf
            if t > T:
                break
            x, last = x + 1, t
            if rng.random() < drop:
                break
        row = [x, round(last, 2) if x else 0.0, T]
        if spend:
            nu = rng.gamma(spend["q"], 1.0 / spend["v"])
            row.append(round(float(np.mean(rng.gamma(spend["p"], 1.0 / nu, size=x))), 2) if x else 0.0)
        rows.append(row)
    return rows


def four(v):
    return float(f"{v:.4g}")


def safe_four(v):
    """4 significant digits, refusing a value within 1e-5 of a rounding edge
    (where a fit agreeing to 1e-6 could round the other way)."""
    digits = 3 - math.floor(math.log10(abs(v)))
    frac = (v * 10 ** digits) % 1
    if abs(frac - 0.5) < 2e-6 * abs(v * 10 ** digits):
        raise ValueError(f"{v} is on a rounding edge")
    return four(v)


def fit_case(name, simulated):
    """The first seed from 1 whose fit is off every rounding edge."""
    for seed in range(1, 50):
        try:
            return fit_rows(name, simulated(seed))
        except ValueError:
            continue
    raise SystemExit(f"{name}: every seed is on a rounding edge")


def fit_rows(name, rows):
    x, tx, T, m = arrays(rows)
    bg = BetaGeoFitter(penalizer_coef=0.0).fit(x, tx, T)
    bp = {k: float(v) for k, v in bg.params_.items()}
    out = {"bg_nbd": {**{k: safe_four(v) for k, v in bp.items()}, "log_likelihood": bg_ll(bp, rows)}}
    if m is not None:
        keep = (x > 0) & (m > 0)
        gg = GammaGammaFitter(penalizer_coef=0.0).fit(x[keep], m[keep])
        gp = {k: float(v) for k, v in gg.params_.items()}
        out["gamma_gamma"] = {**{k: safe_four(v) for k, v in gp.items()}, "log_likelihood": gg_ll(gp, rows)}
    return {"name": name, "input": {"customers": rows}, "expected": {"ok": out}}


def write(name, suite, cases):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w") as f:
        json.dump({"suite": suite, "cases": cases}, f, indent=1)
        f.write("\n")


def main():
    write("log_likelihood.json", "clv.log_likelihood", [
        {"name": "CDNOW parameters on a handful of CDNOW-like customers",
         "input": {"bg_nbd": CDNOW, "customers": [r[:3] for r in SMALL]},
         "expected": {"ok": {"bg_nbd": bg_ll(CDNOW, SMALL)}}},
        {"name": "with spend: Gamma-Gamma over the repeat customers only",
         "input": {"bg_nbd": CDNOW, "gamma_gamma": CDNOW_GG, "customers": SMALL},
         "expected": {"ok": {"bg_nbd": bg_ll(CDNOW, SMALL), "gamma_gamma": gg_ll(CDNOW_GG, SMALL)}}},
        {"name": "other parameters: fast buyers who rarely lapse",
         "input": {"bg_nbd": {"r": 2.5, "alpha": 1.2, "a": 0.4, "b": 9.0}, "customers": [r[:3] for r in SMALL]},
         "expected": {"ok": {"bg_nbd": bg_ll({"r": 2.5, "alpha": 1.2, "a": 0.4, "b": 9.0}, SMALL)}}},
        {"name": "a row with recency past T is refused, its index named",
         "input": {"bg_nbd": CDNOW, "customers": [[1, 1.0, 5.0], [2, 6.0, 5.0]]},
         "expected": {"error": {"index": 1, "field": "recency", "rule": "must not exceed T"}}},
        {"name": "recency without a repeat purchase is refused",
         "input": {"bg_nbd": CDNOW, "customers": [[0, 1.0, 5.0]]},
         "expected": {"error": {"index": 0, "field": "recency",
                                "rule": "must be 0 for a customer with no repeat purchase"}}},
    ])
    predict_cases = []
    for horizon in (39.0, 1.0, 520.0):
        predict_cases.append({
            "name": f"CDNOW parameters, horizon {horizon:g} weeks",
            "input": {"bg_nbd": CDNOW, "gamma_gamma": CDNOW_GG, "horizon": horizon, "customers": SMALL},
            "expected": {"ok": predictions(CDNOW, CDNOW_GG, SMALL, horizon)}})
    many = [[400, 300.0, 310.0, 12.0], [0, 0.0, 0.5, 0.0], [3, 0.1, 100.0, 30.0]]
    predict_cases.append({
        "name": "hundreds of purchases and a long horizon: the series stays finite",
        "input": {"bg_nbd": CDNOW, "gamma_gamma": CDNOW_GG, "horizon": 2000.0, "customers": many},
        "expected": {"ok": predictions(CDNOW, CDNOW_GG, many, 2000.0)}})
    predict_cases.append({
        "name": "without a spend model there is no expected value",
        "input": {"bg_nbd": CDNOW, "horizon": 39.0, "customers": [r[:3] for r in SMALL[:3]]},
        "expected": {"ok": predictions(CDNOW, None, [r[:3] for r in SMALL[:3]], 39.0)}})
    predict_cases.append({
        "name": "a horizon of 0 expects nothing",
        "input": {"bg_nbd": CDNOW, "horizon": 0.0, "customers": [[2, 30.43, 38.86]]},
        "expected": {"ok": [{"p_alive": predictions(CDNOW, None, [[2, 30.43, 38.86]], 1.0)[0]["p_alive"],
                             "expected_purchases": 0.0, "expected_value": None}]}})
    predict_cases.append({
        "name": "a + b ≤ 1 leaves expected purchases undefined for a customer who never returned",
        "input": {"bg_nbd": {"r": 0.5, "alpha": 2.0, "a": 0.3, "b": 0.5}, "horizon": 10.0,
                  "customers": [[0, 0.0, 10.0]]},
        "expected": {"error": "expected purchases are undefined for a = 0.3, b = 0.5 at frequency 0"}})
    predict_cases.append({
        "name": "Gamma-Gamma with q ≤ 1 has no population mean",
        "input": {"bg_nbd": CDNOW, "gamma_gamma": {"p": 2.0, "q": 0.9, "v": 5.0}, "horizon": 10.0,
                  "customers": [[1, 2.0, 10.0, 20.0]]},
        "expected": {"error": "Gamma-Gamma q = 0.9 ≤ 1: spend has no population mean"}})
    write("predict.json", "clv.predict", predict_cases)

    truth = {"r": 0.6, "alpha": 3.0, "a": 0.9, "b": 3.5}
    spend = {"p": 4.0, "q": 5.0, "v": 60.0}
    few_repeaters = [[0, 0.0, 20.0]] * 16 + [[1, 3.0, 20.0]] * 4
    spend_too_few, kept = [], 0
    for r in simulate(3, 200, truth):
        kept += r[0] > 0
        spend_too_few.append(r + [25.0 if r[0] > 0 and kept <= 8 else 0.0])
    write("fit.json", "clv.fit", [
        fit_case("120 simulated customers with spend: lifetimes' optimum", lambda s: simulate(s, 120, truth, spend)),
        fit_case("400 simulated customers, purchases only",
                 lambda s: [r[:3] for r in simulate(s, 400, {**truth, "r": 1.5, "b": 6.0})]),
        {"name": "19 customers are too few",
         "input": {"customers": [[1, 2.0, 10.0]] * 19},
         "expected": {"error": "BG/NBD needs at least 20 customers to fit on; got 19"}},
        {"name": "4 repeat customers are too few",
         "input": {"customers": few_repeaters},
         "expected": {"error": "BG/NBD needs at least 5 customers with a repeat purchase to fit on; got 4"}},
        {"name": "spend needs 10 repeat customers with a value",
         "input": {"customers": spend_too_few},
         "expected": {"error": "Gamma-Gamma needs at least 10 customers with a repeat purchase and a positive "
                               "monetary value to fit on; got 8"}},
        {"name": "two identical cohorts who all returned once or twice and stayed: the dropout odds are unbounded",
         "input": {"customers": [[0, 0.0, 20.0]] * 20 + [[2, 5.0, 20.0], [1, 3.0, 20.0]] * 4},
         "expected": {"error": "BG/NBD: parameter `a` runs off to 0 or infinity; these customers are too alike to determine it"}},
    ])

    tx = [{"customer": c, "day": d, "value_minor": v} for c, d, v in
          [("b", 0, 500), ("a", 7, 1000), ("a", 0, 2000), ("a", 7, 500), ("a", 21, 4500)]]
    write("summary.json", "clv.summary", [
        {"name": "purchases on one day are one period; the first is not a repeat",
         "input": {"transactions": tx, "end_day": 35, "unit": "week", "digits": 2},
         "expected": {"ok": [
             {"customer": "a", "frequency": 2, "recency": 3.0, "T": 5.0, "monetary_value": 30.0},
             {"customer": "b", "frequency": 0, "recency": 0.0, "T": 5.0, "monetary_value": 0.0}]}},
        {"name": "days, and a currency without minor units",
         "input": {"transactions": tx, "end_day": 30, "unit": "day", "digits": 0},
         "expected": {"ok": [
             {"customer": "a", "frequency": 2, "recency": 21.0, "T": 30.0, "monetary_value": 3000.0},
             {"customer": "b", "frequency": 0, "recency": 0.0, "T": 30.0, "monetary_value": 0.0}]}},
        {"name": "a purchase after the observation end is refused, its index named",
         "input": {"transactions": tx, "end_day": 20, "unit": "day", "digits": 2},
         "expected": {"error": {"index": 4, "field": "date", "rule": "after the observation end"}}},
        {"name": "a negative value is refused",
         "input": {"transactions": [{"customer": "a", "day": 1, "value_minor": -5}], "end_day": 20,
                   "unit": "day", "digits": 2},
         "expected": {"error": {"index": 0, "field": "value", "rule": "must not be negative"}}},
        {"name": "an unknown unit is refused",
         "input": {"transactions": tx, "end_day": 35, "unit": "month", "digits": 2},
         "expected": {"error": {"field": "unit", "rule": "must be `day` or `week`"}}},
    ])


if __name__ == "__main__":
    main()
