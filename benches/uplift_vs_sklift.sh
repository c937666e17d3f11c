#!/usr/bin/env bash
# ecrm campaign uplift train as a whole process against scikit-uplift's in-process two-model
# fit (the second peer environment of ../shared/peers/setup.sh) on Hillstrom: Mens E-Mail
# against No E-Mail, outcome visit, depth-5 trees, the seeded 70/30 split of
# `uplift_sklift.py split`. Runs alternate; prints the medians, the ratio and both Qini AUCs.
#
# usage: ECRM_DATASETS=../shared/datasets benches/uplift_vs_sklift.sh [RUNS]
set -euo pipefail
runs=${1:-31}
here=$(cd "$(dirname "$0")/.." && pwd)
ecrm=${ECRM_BIN:-$here/target/release/ecrm}
py=${PEER_PYTHON:-$HOME/.cache/ecrm-peers-w2/bin/python}
peer=$here/../shared/peers/uplift_sklift.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" "$peer" split "${ECRM_DATASETS:?set ECRM_DATASETS}/hillstrom/hillstrom.csv" "$work"
"$py" - "$ecrm" "$py" "$peer" "$work" "$runs" <<'PY'
import re, statistics, subprocess, sys, time
ecrm, py, peer, work, runs = sys.argv[1:5] + [int(sys.argv[5])]
train = [ecrm, "campaign", "uplift", "train", "--input", f"{work}/train.csv",
         "--test", f"{work}/test.csv", "--arm", "segment", "--control", "No E-Mail",
         "--treatment", "Mens E-Mail", "--outcome", "visit",
         "--features", "recency,history,mens,womens,newbie,zip_code,channel",
         "--max-depth", "5", "--model", f"{work}/m.json"]
ours, theirs = [], []
for _ in range(runs):
    t = time.perf_counter()
    r = subprocess.run(train, capture_output=True, text=True, check=True)
    ours.append(time.perf_counter() - t)
    p = subprocess.run([py, peer, "qini", work, "5"], capture_output=True, text=True, check=True)
    theirs.append(float(re.search(r"fit_s=([0-9.]+)", p.stdout).group(1)))
q = re.search(r"Qini AUC ([0-9.]+)", r.stdout + r.stderr).group(1)
pq = re.search(r"qini_auc=([0-9.]+)", p.stdout).group(1)
mo, mt = statistics.median(ours), statistics.median(theirs)
print(f"ecrm whole process {mo:.4f} s (Qini AUC {q}); scikit-uplift fit alone {mt:.4f} s "
      f"(Qini AUC {pq}); ecrm / peer {mo / mt:.2f} (medians of {runs})")
PY
