#!/usr/bin/env bash
# Training on a sample against training on every customer, on a copy of a warehouse:
#   - `ecrm segment` (k-means, k auto over 2..=10 and k = 4), whole vs `--train-sample N`;
#   - `ecrm churn train` (depth 5, leaves of 20, as the nightly pipeline), whole vs
#     `--train-sample N`.
# Times are whole processes (mart read, fit, labelling, commit), median of 3, the two
# variants alternating. Agreement: the adjusted Rand index of the sampled segments against
# the whole fit's (scikit-learn's adjusted_rand_score, an independent computation), and
# each tree's ROC AUC on every customer at the test cutoff (from its model file).
#
# usage: benches/train_sample.sh WAREHOUSE [N=100000]
#   env ECRM (default target/release/ecrm), PYTHON (default ~/.cache/ecrm-peers/bin/python,
#   made by ../shared/peers/setup.sh)
set -euo pipefail
src=${1:?usage: benches/train_sample.sh WAREHOUSE [N]}
n=${2:-100000}
ecrm=$(realpath "${ECRM:-target/release/ecrm}")
py=${PYTHON:-$HOME/.cache/ecrm-peers/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src" "$work/wh"
cd "$work"
e() { "$ecrm" --warehouse wh -q "$@"; }
e features >/dev/null
echo "customers in the mart: $(e query --format csv -e 'SELECT count(*) AS n FROM customer_features' | tail -1)"

# Runs ecrm with "$@" and appends "seconds peak_MB" to the file named by $out.
timed() {
  /usr/bin/time -f "%e %M" -o t.txt "$ecrm" --warehouse wh -q "$@" >/dev/null
  awk '{printf "%s %.0f\n", $1, $2 / 1024}' t.txt >>"$out"
}
median() { sort -n "$1" | awk '{a[NR]=$0} END {split(a[int((NR + 1) / 2)], m, " "); printf "%s s, %s MB", m[1], m[2]}'; }
labels() { e query --format csv -e "SELECT customer_id, segment_id FROM segments ORDER BY customer_id" >"$1"; }

for k in auto 4; do
  : >whole.t; : >sampled.t
  for _ in 1 2 3; do
    out=whole.t timed segment --k "$k"
    labels whole.csv
    out=sampled.t timed segment --k "$k" --train-sample "$n"
    labels sampled.csv
  done
  ari=$("$py" -c "
import csv, sys
from sklearn.metrics import adjusted_rand_score
a = list(csv.reader(open('whole.csv')))[1:]
b = list(csv.reader(open('sampled.csv')))[1:]
assert [r[0] for r in a] == [r[0] for r in b], 'different customers'
print(f'{adjusted_rand_score([r[1] for r in a], [r[1] for r in b]):.4f} over {len(a)} customers')
")
  echo "segment --k $k: whole $(median whole.t); --train-sample $n $(median sampled.t); adjusted Rand index $ari"
done

: >whole.t; : >sampled.t
for _ in 1 2 3; do
  out=whole.t timed churn train --max-depth 5 --min-samples-leaf 20 --model whole.json
  out=sampled.t timed churn train --max-depth 5 --min-samples-leaf 20 --train-sample "$n" --model sampled.json
done
auc() { "$py" -c "
import json, sys
m = json.load(open('$1'))
s = m['source']
print(f\"ROC AUC {m['metrics']['roc_auc']:.4f} on {m['metrics']['held_out_rows']} customers, trained on {s['rows']}\" + (f\" of {s['sampled_from']}\" if 'sampled_from' in s else ''))
"; }
echo "churn train: whole $(median whole.t), $(auc whole.json); --train-sample $n $(median sampled.t), $(auc sampled.json)"
