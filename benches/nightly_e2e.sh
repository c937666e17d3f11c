#!/usr/bin/env bash
# The nightly pipeline end to end on synth data, as a scheduler runs it: one process of the
# release binary per size, timed with /usr/bin/time; the per-stage seconds and peak memory
# come from the run manifest.
#
#   cargo build --release
#   benches/nightly_e2e.sh 1000000 10000000
#
# Each size gets a workspace under ${BENCH_DIR:-/tmp/ecrm-nightly-bench}/<lines>: a copy of
# pipelines/ with the synth extracts in sample-data/ beside it (seed 42, lines/25 customers),
# so pipelines/nightly.toml runs unchanged; the warehouse, exports and report go there too.
set -euo pipefail
cd "$(dirname "$0")/.."
ecrm="$PWD/target/release/ecrm"
[ -x "$ecrm" ] || { echo "build first: cargo build --release" >&2; exit 2; }
base="${BENCH_DIR:-/tmp/ecrm-nightly-bench}"
for lines in "${@:-1000000}"; do
  ws="$base/$lines"
  rm -rf "$ws"; mkdir -p "$ws"
  cp -r pipelines "$ws/pipelines"
  "$ecrm" -q synth --out-dir "$ws/sample-data" --seed 42 \
      --customers $(( lines / 25 > 1000 ? lines / 25 : 1000 )) --order-lines "$lines" >/dev/null
  /usr/bin/time -f "%e %M" -o "$ws/time.txt" \
      "$ecrm" -q --warehouse "$ws/wh" run "$ws/pipelines/nightly.toml" > "$ws/stdout.txt"
  run_id=$(tail -n 1 "$ws/stdout.txt")
  read -r secs _ < "$ws/time.txt"
  # The run resets the kernel's peak-memory mark before each stage (to measure stages), so
  # time's max RSS covers the last stage only: the whole run's peak is the stages' largest.
  python3 - "$ws/wh/runs/$run_id.json" "$lines" "$secs" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
peak = max(s["peak_rss_mib"] or 0 for s in m["stages"])
print(f"nightly_e2e/lines={sys.argv[2]}: run {m['run_id']} {m['status']}, whole process {sys.argv[3]} s, peak {peak:.0f} MiB")
for s in m["stages"]:
    print(f"  {s['name']:<18} {s['status']:<10} {s['seconds'] or 0:>8.2f} s {s['peak_rss_mib'] or 0:>7.0f} MiB")
PY
done
