#!/usr/bin/env bash
# Local DataFusion against a Ballista cluster of one scheduler and two executors on this
# machine (127.0.0.1, one core each), on the same warehouse: the five peer OLAP questions
# (../shared/peers/olap_queries.sql over a view of fact_sales), the feature mart, and the
# whole nightly pipeline. Release binary; the median of RUNS runs (default 3) per case,
# each a whole `ecrm` process, local and cluster alternating.
#
#   cargo build --release
#   benches/nightly_e2e.sh 10000000        # the 10M-line workspace, as published
#   benches/cluster_vs_local.sh /tmp/ecrm-nightly-bench/10000000
set -euo pipefail
cd "$(dirname "$0")/.."
ecrm="$PWD/target/release/ecrm"
[ -x "$ecrm" ] || { echo "build first: cargo build --release" >&2; exit 2; }
ws="${1:?usage: benches/cluster_vs_local.sh WORKSPACE (made by benches/nightly_e2e.sh)}"
ws="$(cd "$ws" && pwd)"
runs="${RUNS:-3}"
tmp="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

port=50750
"$ecrm" cluster scheduler --bind "127.0.0.1:$port" 2>"$tmp/scheduler.log" &
pids+=($!)
sleep 1
for k in 0 1; do
  "$ecrm" --scheduler "df://127.0.0.1:$port" cluster executor --vcores 1 \
      --port $((port + 1 + 2 * k)) --grpc-port $((port + 2 + 2 * k)) \
      --work-dir "$tmp/work$k" 2>"$tmp/executor$k.log" &
  pids+=($!)
done
for _ in $(seq 100); do
  [ "$(grep -c 'Received register executor request' "$tmp/scheduler.log")" -ge 2 ] && break
  sleep 0.1
done
cluster=(--engine ballista --scheduler "df://127.0.0.1:$port")

peers="CREATE VIEW sales AS SELECT invoice_no, invoice_ts, country, customer_id,
  product_id AS stock_code, quantity, unit_price, is_return AS is_cancellation FROM fact_sales;
$(cat ../shared/peers/olap_queries.sql)"

# seconds of one run of `ecrm ARGS..` (stdout kept for the comparison below, stderr beside)
run() {
  local out="$1"; shift
  local s; s=$(date +%s.%N)
  "$ecrm" -q --warehouse "$ws/wh" "$@" >"$out" 2>"$out.stderr" \
      || { echo "failed: ecrm $*" >&2; tail -5 "$out.stderr" >&2; exit 1; }
  echo "$(date +%s.%N) - $s" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

bench() {
  local name="$1" n="$2"; shift 2
  local l=() c=()
  for _ in $(seq "$n"); do
    l+=("$(run "$tmp/$name.local" "$@")")
    c+=("$(run "$tmp/$name.cluster" "${cluster[@]}" "$@")")
  done
  local lm cm
  lm=$(printf '%s\n' "${l[@]}" | median)
  cm=$(printf '%s\n' "${c[@]}" | median)
  printf '%-22s local %8.2f s   cluster %8.2f s   cluster/local %5.2f   (%s runs)\n' \
      "$name" "$lm" "$cm" "$(echo "$cm / $lm" | bc -l)" "$n"
}

lines=$("$ecrm" -q --warehouse "$ws/wh" query -e "SELECT count(*) FROM fact_sales" --format csv | tail -1)
echo "cluster_vs_local: $lines order lines in $ws/wh; 2 executors x 1 core vs local 2 threads"
bench peer_questions "$runs" query -e "$peers" --format csv
cmp -s "$tmp/peer_questions.local" "$tmp/peer_questions.cluster" \
    || echo "  (peer answers differ as text; sums of doubles may differ in the last digits)"
bench features "$runs" features --as-of 2024-11-25
bench nightly_pipeline "${NIGHTLY_RUNS:-1}" run "$ws/pipelines/nightly.toml"
