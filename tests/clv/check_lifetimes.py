"""Holds `microfunnel clv` to the published CDNOW fits and to `lifetimes`.

Run by `cargo xtask test` with the venv bootstrap makes (tools/requirements.txt
pins lifetimes, which ships the CDNOW data): the 2,357-customer CDNOW sample's
BG/NBD fit must round to Fader, Hardie & Lee's r = 0.243, alpha = 4.414,
a = 0.793, b = 2.426 and its Gamma-Gamma fit to p = 6.25, q = 3.74, v = 15.44,
at three significant digits; every customer's P(alive), expected purchases
and expected value over 39 weeks must agree with lifetimes' to 1e-4
(relative above 1); and the summary the core builds from the raw CDNOW
transactions must be Hardie's summary file. Prints what it compared.

usage: check_lifetimes.py MICROFUNNEL_BINARY
"""

import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings

import lifetimes.datasets
import numpy as np
from lifetimes import BetaGeoFitter, GammaGammaFitter

warnings.simplefilter("ignore")
DATA = os.path.dirname(lifetimes.datasets.__file__)
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "v": 15.44}
HORIZON = 39.0
TOLERANCE = 1e-4
failures = []


def fail(message):
    failures.append(message)
    print("FAIL", message)


def ours(binary, *args):
    out = subprocess.run([binary, "clv", *args, "--format", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"microfunnel clv {' '.join(args)} failed: {out.stderr}")
    return json.loads(out.stdout)


def close(a, b):
    return abs(a - b) <= TOLERANCE * max(1.0, abs(b))


def read_summary(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    return rows[0], [[float(v) for v in r] for r in rows[1:]]


def main(binary):
    _, rows = read_summary(os.path.join(DATA, "cdnow_customers_summary_with_transactions.csv"))
    ids = [str(int(r[0])) for r in rows]
    x, tx, T, m = (np.array([r[i] for r in rows]) for i in (1, 2, 3, 4))

    bgf = BetaGeoFitter(penalizer_coef=0.0).fit(x, tx, T)
    returning = x > 0
    ggf = GammaGammaFitter(penalizer_coef=0.0).fit(x[returning], m[returning])
    theirs = {k: float(v) for k, v in list(bgf.params_.items()) + list(ggf.params_.items())}
    # lifetimes reports the mean NLL on rescaled times: take its own formula
    # on the data as given, summed, for a likelihood comparable to ours.
    n = len(x)
    ll_bg = -n * BetaGeoFitter._negative_log_likelihood(
        np.log([theirs[k] for k in ("r", "alpha", "a", "b")]), x, tx, T, np.ones(n), 0.0
    )
    k = int(returning.sum())
    ll_gg = -k * GammaGammaFitter._negative_log_likelihood(
        np.log([theirs[k] for k in ("p", "q", "v")]), x[returning], m[returning], np.ones(k), 0.0
    )
    purchases = bgf.conditional_expected_number_of_purchases_up_to_time(HORIZON, x, tx, T)
    alive = bgf.conditional_probability_alive(x, tx, T)
    value = ggf.conditional_expected_average_profit(x, m) * purchases

    doc = ours(binary, "--summary", os.path.join(DATA, "cdnow_customers_summary_with_transactions.csv"),
               "--horizon", str(HORIZON))
    mine = doc["params"]
    print(f"{'param':<6} {'published':>10} {'microfunnel':>14} {'lifetimes':>14}")
    for name, want in PUBLISHED.items():
        got = mine[name]
        print(f"{name:<6} {want:>10} {got:>14.6f} {theirs[name]:>14.6f}")
        if float(f"{got:.3g}") != float(f"{want:.3g}"):
            fail(f"{name} = {got} does not round to the published {want} at 3 significant digits")
        if not close(got, theirs[name]):
            fail(f"{name} = {got} vs lifetimes {theirs[name]}")
    lls = doc["log_likelihood"]
    print(f"log-likelihood BG/NBD: microfunnel {lls['bg_nbd']:.6f}, lifetimes {ll_bg:.6f} (published -9582.4)")
    print(f"log-likelihood Gamma-Gamma: microfunnel {lls['gamma_gamma']:.6f}, lifetimes {ll_gg:.6f}")
    if lls["bg_nbd"] < ll_bg - 1e-6 or lls["gamma_gamma"] < ll_gg - 1e-6:
        fail("our maximum likelihood is below lifetimes'")
    if round(lls["bg_nbd"], 1) != -9582.4:
        fail(f"BG/NBD log-likelihood {lls['bg_nbd']} is not the published -9582.4")

    customers = doc["customers"]
    if [c["customer_id"] for c in customers] != ids:
        fail("customers out of order or missing")
    worst = {"p_alive": 0.0, "expected_purchases": 0.0, "expected_value": 0.0}
    for i, c in enumerate(customers):
        for field, theirs_i in (("p_alive", alive[i]), ("expected_purchases", purchases[i]), ("expected_value", value[i])):
            d = abs(c[field] - float(theirs_i)) / max(1.0, abs(float(theirs_i)))
            worst[field] = max(worst[field], d)
            if d > TOLERANCE:
                fail(f"customer {c['customer_id']} {field}: {c[field]} vs lifetimes {float(theirs_i)}")
                break
    print(f"{len(customers)} customers, largest difference from lifetimes: "
          + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))

    # The same data from the raw transactions: the core's summary is Hardie's.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cdnow.csv")
        with open(os.path.join(DATA, "CDNOW_sample.txt")) as raw, open(path, "w") as out:
            out.write("customer_id,date,value\n")
            for line in raw:
                _, customer, day, _, dollars = line.split()
                if day <= "19970930":
                    out.write(f"{int(customer)},{day[:4]}-{day[4:6]}-{day[6:]},{dollars}\n")
        built = ours(binary, "--transactions", path, "--observation-end", "1997-09-30", "--unit", "week",
                     "--currency", "USD", "--horizon", str(HORIZON))
    by_id = {c["customer_id"]: c for c in built["customers"]}
    mismatched = 0
    for i, cid in enumerate(ids):
        c = by_id.get(cid)
        if c is None or c["frequency"] != x[i] or abs(c["recency"] - tx[i]) > 0.006 or abs(c["T"] - T[i]) > 0.006 \
                or abs(c["monetary_value"] - m[i]) > 0.006:
            mismatched += 1
            if mismatched <= 3:
                fail(f"customer {cid}: built {c} vs summary {x[i]}, {tx[i]}, {T[i]}, {m[i]}")
    print(f"summary from {sum(1 for _ in open(os.path.join(DATA, 'CDNOW_sample.txt')))} raw transactions: "
          f"{len(by_id)} customers, {mismatched} differ from Hardie's summary")
    for name in ("r", "alpha", "a", "b"):
        if not math.isclose(built["params"][name], mine[name], rel_tol=1e-2):
            fail(f"fit from transactions: {name} {built['params'][name]} vs {mine[name]}")

    if failures:
        raise SystemExit(f"{len(failures)} checks failed")
    print("customer value: CDNOW published fit and lifetimes agree")


if __name__ == "__main__":
    main(sys.argv[1])
