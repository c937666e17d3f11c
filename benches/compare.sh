#!/usr/bin/env bash
# This checkout's release build against an earlier revision's, side by side: alternating
# whole processes on the same machine, so a restructuring can show it did not get slower.
#
#   cargo build --release
#   ../shared/peers/setup.sh                       # once: DuckDB and Polars beside them
#   benches/compare.sh 77b3886 [RUNS]
#
# The earlier revision is checked out in a worktree and built into a copy of target/release
# (only ecrm itself compiles again when the dependencies are the same), or BASE_BIN names a
# release binary of that revision kept from earlier. Measured per version,
# RUNS times (default 5), alternating: the UCI Online Retail ingest (with the DuckDB and Polars
# peer ETLs), the 1M-line synth ingest, the five peer OLAP questions on the DuckDB ETL's
# fact Parquet (2 threads; answers compared), and the nightly pipeline on the 1M-line synth
# data (each version with its own pipelines/). Prints the medians; raw lines stay in
# $BENCH_DIR/compare.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: benches/compare.sh REVISION [RUNS]}
runs=${2:-5}
: "${ECRM_DATASETS:?set ECRM_DATASETS to the folder of the public data sets}"
new="$PWD/target/release/ecrm"
[ -x "$new" ] || { echo "build first: cargo build --release" >&2; exit 2; }
peers=${PEERS:-$HOME/.cache/ecrm-peers}/bin
[ -x "$peers/duckdb" ] || { echo "install the peers first: ../shared/peers/setup.sh" >&2; exit 2; }
dir="${BENCH_DIR:-/tmp/ecrm-compare}"
rm -rf "$dir"; mkdir -p "$dir"
git worktree add -q --detach "$dir/base" "$rev"
trap 'git worktree remove --force "$dir/base"' EXIT
if [ -n "${BASE_BIN:-}" ]; then
  # A release binary of REVISION kept from earlier: no second build.
  base="$BASE_BIN"
else
  cp -a target/release "$dir/base-target-release"
  mkdir -p "$dir/base-target" && mv "$dir/base-target-release" "$dir/base-target/release"
  (cd "$dir/base" && CARGO_TARGET_DIR="$dir/base-target" cargo build --release -q)
  base="$dir/base-target/release/ecrm"
fi

shared=$(cd .. && pwd)/shared/peers
src=$ECRM_DATASETS/online-retail/online_retail.csv
out="$dir/compare.txt"; : > "$out"
bin_of() { if [ "$1" = new ]; then echo "$new"; else echo "$base"; fi; }
pipelines_of() { if [ "$1" = new ]; then echo "$PWD/pipelines"; else echo "$dir/base/pipelines"; fi; }
timed() { local label=$1; shift; /usr/bin/time -f "$label %e %M" -a -o "$out" "$@"; }

"$new" -q synth --out-dir "$dir/s1m" --seed 42 --customers 40000 --order-lines 1000000 >/dev/null
for i in $(seq "$runs"); do
  for v in new base; do
    rm -rf "$dir/wh"
    timed "online-retail-ingest $v" "$(bin_of $v)" --warehouse "$dir/wh" -q ingest \
        --contract "$(pipelines_of $v)/online-retail.toml" >/dev/null
    rm -rf "$dir/wh"
    timed "synth-1m-ingest $v" "$(bin_of $v)" --warehouse "$dir/wh" -q ingest \
        --contract "$(pipelines_of $v)/sources.toml" --input customers="$dir/s1m/customers.csv" \
        --input products="$dir/s1m/products.csv" --input transactions="$dir/s1m/transactions.csv" \
        --input campaign_contacts="$dir/s1m/campaign_contacts.csv" >/dev/null
  done
  rm -rf "$dir/dd"; mkdir "$dir/dd"
  timed "online-retail-ingest duckdb" "$peers/duckdb" \
      -c "SET VARIABLE src='$src'; SET VARIABLE out='$dir/dd';" -c ".read $shared/etl_duckdb.sql" >/dev/null
  rm -rf "$dir/pl"; mkdir "$dir/pl"
  timed "online-retail-ingest polars" "$peers/python" "$shared/etl_polars.py" "$src" "$dir/pl" >/dev/null
  for v in new base; do
    timed "olap-questions $v" "$(bin_of $v)" --warehouse "$dir/none" --threads 2 query \
        --table sales="$dir/dd/fact_sales.parquet" -f "$shared/olap_queries.sql" --format csv \
        > "$dir/olap-$v.csv"
  done
  timed "olap-questions duckdb" "$peers/duckdb" -csv \
      -c "SET threads=2; CREATE VIEW sales AS SELECT * FROM read_parquet('$dir/dd/fact_sales.parquet')" \
      -c ".read $shared/olap_queries.sql" >/dev/null
  cmp -s "$dir/olap-new.csv" "$dir/olap-base.csv" || { echo "the OLAP answers differ" >&2; exit 1; }
  for v in new base; do
    ws="$dir/ws-$v"; rm -rf "$ws"; mkdir -p "$ws"
    cp -r "$(pipelines_of $v)" "$ws/pipelines"; ln -s "$dir/s1m" "$ws/sample-data"
    timed "nightly-1m $v" "$(bin_of $v)" -q --warehouse "$ws/wh" run "$ws/pipelines/nightly.toml" \
        >/dev/null 2>"$ws/stderr.txt"
  done
done
python3 - "$out" "$rev" <<'PY'
import statistics, sys, collections
times = collections.defaultdict(list); mem = collections.defaultdict(list)
for line in open(sys.argv[1]):
    job, who, secs, kb = line.split()
    times[(job, who)].append(float(secs)); mem[(job, who)].append(int(kb))
for job in dict.fromkeys(j for j, _ in times):
    row = []
    for who in ["new", "base", "duckdb", "polars"]:
        if (job, who) in times:
            label = sys.argv[2] if who == "base" else who
            # The nightly run resets the kernel's peak mark per stage: time's peak is the
            # last stage's, so it is left out (the run manifest has each stage's).
            peak = "" if job.startswith("nightly") else f" ({max(mem[(job, who)]) / 1024:.0f} MB)"
            row.append(f"{label} {statistics.median(times[(job, who)]):.2f} s{peak}")
    ratio = statistics.median(times[(job, "new")]) / statistics.median(times[(job, "base")])
    print(f"{job:<22} " + "; ".join(row) + f"; new/base {ratio:.2f}")
PY
