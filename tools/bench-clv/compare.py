"""`cargo xtask bench-clv`: microfunnel's customer-value fit against
lifetimes', in one run on the same synthetic customers.

Generates N customers of a BG/NBD process with Gamma-Gamma spend (numpy,
seeded), writes their RFM summary as CSV, then times, each on the whole
file: lifetimes (read_csv, BetaGeoFitter and GammaGammaFitter fits, P(alive),
expected purchases and expected value for every customer) and the
`microfunnel clv` process (reading, both fits, the same predictions, CSV
written). Prints both times, the ratio, the fitted parameters and the largest
prediction difference.

usage: compare.py MICROFUNNEL_RELEASE_BINARY [--customers N] [--seed S] [--dir DIR]
"""

import argparse
import os
import subprocess
import time
import warnings

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter

warnings.simplefilter("ignore")
TRUTH = {"r": 0.6, "alpha": 3.0, "a": 0.9, "b": 3.5}
SPEND = {"p": 4.0, "q": 5.0, "v": 60.0}
HORIZON = 52.0


def simulate(n, seed):
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUTH["r"], 1.0 / TRUTH["alpha"], n)
    drop = rng.beta(TRUTH["a"], TRUTH["b"], n)
    T = np.round(rng.uniform(1.0, 52.0, n), 2)
    t = np.zeros(n)
    x = np.zeros(n, dtype=np.int64)
    last = np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        t[idx] += rng.exponential(1.0 / lam[idx])
        bought = t[idx] <= T[idx]
        got = idx[bought]
        x[got] += 1
        last[got] = t[got]
        dropped = rng.random(got.size) < drop[got]
        active[idx[~bought]] = False
        active[got[dropped]] = False
    nu = rng.gamma(SPEND["q"], 1.0 / SPEND["v"], n)
    # The mean of x Gamma(p, nu) draws is Gamma(p x, nu x).
    m = np.where(x > 0, rng.gamma(np.maximum(x, 1) * SPEND["p"], 1.0 / (nu * np.maximum(x, 1))), 0.0)
    return pd.DataFrame({
        "ID": np.arange(1, n + 1), "frequency": x, "recency": np.where(x > 0, np.round(last, 2), 0.0), "T": T,
        "monetary_value": np.round(m, 2),
    })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dir", default="target/bench-clv")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, f"summary-{args.customers}-{args.seed}.csv")
    if not os.path.exists(path):
        started = time.perf_counter()
        simulate(args.customers, args.seed).to_csv(path, index=False)
        print(f"generated {args.customers} customers in {time.perf_counter() - started:.1f} s: {path}")

    started = time.perf_counter()
    d = pd.read_csv(path)
    bgf = BetaGeoFitter(penalizer_coef=0.0).fit(d["frequency"], d["recency"], d["T"])
    returning = d[(d["frequency"] > 0) & (d["monetary_value"] > 0)]
    ggf = GammaGammaFitter(penalizer_coef=0.0).fit(returning["frequency"], returning["monetary_value"])
    purchases = bgf.conditional_expected_number_of_purchases_up_to_time(HORIZON, d["frequency"], d["recency"], d["T"])
    alive = bgf.conditional_probability_alive(d["frequency"], d["recency"], d["T"])
    value = ggf.conditional_expected_average_profit(d["frequency"], d["monetary_value"]) * purchases
    theirs_s = time.perf_counter() - started

    out = os.path.join(args.dir, "microfunnel-clv.csv")
    started = time.perf_counter()
    with open(out, "w") as f:
        subprocess.run([args.binary, "clv", "--summary", path, "--horizon", str(HORIZON)], stdout=f, check=True)
    ours_s = time.perf_counter() - started
    mine = pd.read_csv(out)

    def worst(a, b):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))

    print(f"\n{'customers':<28} {args.customers:>12}")
    print(f"{'repeat customers':<28} {int((d['frequency'] > 0).sum()):>12}")
    print(f"{'lifetimes 0.11.3 (s)':<28} {theirs_s:>12.2f}")
    print(f"{'microfunnel clv (s)':<28} {ours_s:>12.2f}")
    print(f"{'ratio (lifetimes / ours)':<28} {theirs_s / ours_s:>12.1f}x")
    print("params lifetimes:  " + ", ".join(f"{k}={v:.6g}" for k, v in
                                         list(bgf.params_.items()) + list(ggf.params_.items())))
    print("largest difference: "
          f"p_alive {worst(mine['p_alive'], alive):.1e}, "
          f"expected_purchases {worst(mine['expected_purchases'], purchases):.1e}, "
          f"expected_value {worst(mine['expected_value'], value):.1e}")


if __name__ == "__main__":
    main()
