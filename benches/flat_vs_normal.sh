#!/usr/bin/env bash
# The flat layout's ingest against the normal layout's, per order line, on the same
# simulation: `ecrm synth` (seed 42, LINES order lines, LINES/25 customers) writes both, then
# each is loaded into a fresh warehouse RUNS times (default 3), alternating, as whole
# processes with the release binary.
#
#   cargo build --release
#   benches/flat_vs_normal.sh 10000000 3
#
# The normal load reads four files (customers, products, order lines, campaign contacts:
# the order lines are most of the work); the flat load one file whose lines carry line totals,
# costs, age groups and areas, with customer-day baskets and the dimensions derived from the
# lines. Prints the median seconds, peak memory and microseconds per order line read.
# KEEP_DATA=1 reuses the synth data of an earlier run of the same size.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:?usage: benches/flat_vs_normal.sh LINES [RUNS]}
runs=${2:-3}
bin="$PWD/target/release/ecrm"
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
dir="${BENCH_DIR:-/tmp/ecrm-flat-bench}/$lines"
customers=$(( lines / 25 > 1000 ? lines / 25 : 1000 ))
if [ -z "${KEEP_DATA:-}" ] || [ ! -f "$dir/flat/flat.csv" ]; then
  rm -rf "$dir"; mkdir -p "$dir"
  for layout in normal flat; do
    "$bin" -q synth --out-dir "$dir/$layout" --seed 42 --customers "$customers" \
        --order-lines "$lines" --layout "$layout" >/dev/null
  done
fi
out="$dir/times.txt"; : > "$out"
for i in $(seq "$runs"); do
  rm -rf "$dir/wh"
  /usr/bin/time -f "normal %e %M" -a -o "$out" "$bin" --warehouse "$dir/wh" -q ingest \
      --contract pipelines/sources.toml --input customers="$dir/normal/customers.csv" \
      --input products="$dir/normal/products.csv" \
      --input transactions="$dir/normal/transactions.csv" \
      --input campaign_contacts="$dir/normal/campaign_contacts.csv" >/dev/null
  rm -rf "$dir/wh"
  /usr/bin/time -f "flat %e %M" -a -o "$out" "$bin" --warehouse "$dir/wh" -q ingest \
      --contract pipelines/flat.toml --input "$dir/flat/flat.csv" >/dev/null
done
normal_lines=$(( $(wc -l < "$dir/normal/transactions.csv") - 1 ))
flat_lines=$(( $(wc -l < "$dir/flat/flat.csv") - 1 ))
rm -rf "$dir/wh"
python3 - "$out" "$normal_lines" "$flat_lines" <<'PY'
import statistics, sys, collections
times = collections.defaultdict(list); mem = collections.defaultdict(list)
for line in open(sys.argv[1]):
    who, secs, kb = line.split()
    times[who].append(float(secs)); mem[who].append(int(kb))
lines = {"normal": int(sys.argv[2]), "flat": int(sys.argv[3])}
per = {}
for who in ("normal", "flat"):
    t = statistics.median(times[who]); per[who] = t / lines[who] * 1e6
    print(f"{who:7s} median {t:7.2f} s of {len(times[who])} runs, {lines[who]:,} order lines, "
          f"{per[who]:.3f} us/line, peak {max(mem[who]) / 1024:.0f} MB")
print(f"flat/normal per line: {per['flat'] / per['normal']:.2f}")
PY
