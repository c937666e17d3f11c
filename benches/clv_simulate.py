#!/usr/bin/env python3
"""Simulates a BG/NBD customer base (seeded): the 1M-customer input of benches/clv_vs_lifetimes.sh.

usage: clv_simulate.py N OUT.csv [seed]
Customers are acquired uniformly over 12 weeks and observed to the end of week 39; while
alive each buys at rate lambda ~ Gamma(r, alpha) and drops out after a purchase with
probability p ~ Beta(a, b), with CDNOW's estimates (Fader, Hardie & Lee 2005). Times are
whole days, written in weeks (x, t_x, T), as real day-stamped data are; spend per purchase is
Gamma(6.25, nu), nu ~ Gamma(3.74, 15.44) (their Gamma-Gamma estimates).
"""
import sys
import numpy as np

n, out = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(int(sys.argv[3]) if len(sys.argv) > 3 else 42)
r, alpha, a, b = 0.2426, 4.4136, 0.7929, 2.4259
lam = rng.gamma(r, 1 / alpha, n)
p = rng.beta(a, b, n)
T = 39 - rng.integers(0, 84, n) / 7          # weeks observed since the first purchase
x = np.zeros(n, dtype=np.int64)
tx = np.zeros(n)
t = np.zeros(n)
alive = np.ones(n, dtype=bool)              # BG/NBD: dropout only after repeat purchases
while alive.any():
    idx = np.flatnonzero(alive)
    t[idx] += rng.exponential(1 / lam[idx])
    bought = idx[t[idx] <= T[idx]]
    x[bought] += 1
    tx[bought] = t[bought]
    alive[idx[t[idx] > T[idx]]] = False
    alive[bought[rng.random(bought.size) < p[bought]]] = False
tx = np.floor(tx * 7) / 7                     # whole days
nu = rng.gamma(3.74, 1 / 15.44, n)
zbar = np.where(x > 0, rng.gamma(6.25 * np.maximum(x, 1), 1 / (nu * np.maximum(x, 1))), 0.0)
with open(out, "w") as f:
    f.write("ID,x,t_x,T,zbar\n")
    for row in zip(range(1, n + 1), x, tx, T, zbar):
        f.write("%d,%d,%.6f,%.6f,%.2f\n" % row)
