#!/usr/bin/env bash
# ecrm clv train/score as whole processes against lifetimes' in-process fits (the second peer
# environment of ../shared/peers/setup.sh), on the CDNOW summary and on a simulated
# 1M-customer BG/NBD base. Prints medians of RUNS runs and the ratios.
#
# usage: ECRM_DATASETS=../shared/datasets benches/clv_vs_lifetimes.sh [RUNS] [CUSTOMERS]
set -euo pipefail
runs=${1:-5}
n=${2:-1000000}
here=$(cd "$(dirname "$0")/.." && pwd)
ecrm=${ECRM_BIN:-$here/target/release/ecrm}
py=${PEER_PYTHON:-$HOME/.cache/ecrm-peers-w2/bin/python}
summary=${ECRM_DATASETS:?set ECRM_DATASETS}/cdnow/cdnow_customers_summary_with_transactions.csv
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
hardie=(--id ID --frequency x --recency t_x --monetary zbar)

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Wall seconds and peak KB of one whole process.
timed() { /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>&1; cat "$work/t"; }

echo "== CDNOW summary (2,357 customers), $runs runs"
"$py" "$here/../shared/peers/clv_lifetimes.py" "$summary" | tee "$work/lifetimes.txt"
for method in bgnbd pareto-nbd; do
  : >"$work/$method"
  for _ in $(seq "$runs"); do
    timed "$ecrm" -q clv train --method "$method" --summary "$summary" "${hardie[@]}" \
      --model "$work/m.json" | cut -d' ' -f1 >>"$work/$method"
  done
done
bg=$(median <"$work/bgnbd"); pn=$(median <"$work/pareto-nbd")
lbg=$(grep -o 'bgnbd r=.*fit_s=[0-9.]*' "$work/lifetimes.txt" | sed 's/.*fit_s=//')
lpn=$(grep -o 'pareto_nbd .*fit_s=[0-9.]*' "$work/lifetimes.txt" | sed 's/.*fit_s=//')
lgg=$(grep -o 'gamma_gamma .*fit_s=[0-9.]*' "$work/lifetimes.txt" | sed 's/.*fit_s=//')
echo "ecrm clv train (whole process, purchase model + Gamma-Gamma): BG/NBD ${bg} s, Pareto/NBD ${pn} s"
echo "lifetimes in-process fit: BG/NBD ${lbg} s, Pareto/NBD ${lpn} s, Gamma-Gamma ${lgg} s"
awk -v a="$bg" -v b="$lbg" -v c="$pn" -v d="$lpn" -v g="$lgg" 'BEGIN {
  printf "ratio ecrm/lifetimes: BG/NBD %.2f (%.2f with lifetimes'"'"' Gamma-Gamma), Pareto/NBD %.2f (%.2f)\n",
    a / b, a / (b + g), c / d, c / (d + g) }'

echo "== simulated BG/NBD base, $n customers"
"$py" "$here/benches/clv_simulate.py" "$n" "$work/sim.csv"
: >"$work/train"; : >"$work/score"
for _ in $(seq "$runs"); do
  timed "$ecrm" clv train --summary "$work/sim.csv" "${hardie[@]}" --model "$work/sim.json" >>"$work/train"
  timed "$ecrm" clv score --model "$work/sim.json" --summary "$work/sim.csv" \
    --out "$work/scores.parquet" >>"$work/score"
done
"$ecrm" clv train --summary "$work/sim.csv" "${hardie[@]}" --spend none --model "$work/sim0.json" 2>&1 \
  | grep -o 'fit_s=[0-9.]*' | sed 's/^/BG\/NBD alone in-process /'
echo "ecrm clv train (BG/NBD + Gamma-Gamma), whole process: median $(cut -d' ' -f1 "$work/train" | median) s, peak $(cut -d' ' -f2 "$work/train" | median) KB"
echo "ecrm clv score (365 days, 1M rows to Parquet), whole process: median $(cut -d' ' -f1 "$work/score" | median) s, peak $(cut -d' ' -f2 "$work/score" | median) KB"
"$py" - "$work/sim.csv" <<'PY'
import sys, time, pandas as pd
from lifetimes import BetaGeoFitter
d = pd.read_csv(sys.argv[1])
t = time.perf_counter(); m = BetaGeoFitter().fit(d.x, d.t_x, d["T"]); t = time.perf_counter() - t
print(f"lifetimes BetaGeoFitter in-process, one run: {t:.2f} s; params {dict((k, round(v, 4)) for k, v in m.params_.items())}")
PY
