#!/usr/bin/env bash
# `ecrm web sessions` against the same sessionisation in one DuckDB CLI process
# (benches/web_sessions_duckdb.sql: window functions over the warehouse's Parquet files), on
# synth's click-stream; then `ecrm web funnel` over the same events. Whole processes,
# alternating, medians and peak memory (GNU time). The synth data and its warehouse are made
# once under $WORK (default /tmp/ecrm-web-bench) and reused.
#
# usage: benches/web_sessions_vs_duckdb.sh [ORDER_LINES (10000000: about 10M web events)] [RUNS (5)]
set -euo pipefail
lines=${1:-10000000}
runs=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
ecrm=${ECRM_BIN:-$here/target/release/ecrm}
duckdb=${DUCKDB:-$HOME/.cache/ecrm-peers/bin/duckdb}
work=${WORK:-/tmp/ecrm-web-bench}/$lines
mkdir -p "$work"
if [ ! -d "$work/wh/tables/fact_web_event" ]; then
  "$ecrm" synth --out-dir "$work/data" --order-lines "$lines" --customers $((lines / 25))
  # The click-stream and the order lines its purchases carry (no other source is needed).
  sed -n '/^\[sources.transactions\]/,/^\[sources.campaigns\]/p' "$here/pipelines/sources.toml" \
    | sed '$d' > "$work/web.toml"
  sed -n '/^\[sources.web_events\]/,$p' "$here/pipelines/sources.toml" >> "$work/web.toml"
  sed -i "s|../sample-data/|$work/data/|" "$work/web.toml"
  "$ecrm" --warehouse "$work/wh" -q ingest --contract "$work/web.toml" > /dev/null
fi
events=$("$ecrm" --warehouse "$work/wh" query -e "SELECT count(*) FROM fact_web_event" --format csv | tail -1)
echo "events: $events (synth --order-lines $lines)"
python3 - "$ecrm" "$duckdb" "$work" "$here" "$runs" <<'PY'
import os, re, statistics, subprocess, sys, time
ecrm, duckdb, work, here, runs = sys.argv[1:5] + [int(sys.argv[5])]
wh = f"{work}/wh"
out = f"{work}/duck"
os.makedirs(out, exist_ok=True)
def timed(cmd):
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t, int(r.stderr.strip().splitlines()[-1]) / 1024, r.stdout
ours = [ecrm, "--warehouse", wh, "-q", "web", "sessions"]
theirs = [duckdb, "-c",
          f"SET VARIABLE events='{wh}/tables/fact_web_event/**/*.parquet'; "
          f"SET VARIABLE sales='{wh}/tables/fact_sales/**/*.parquet'; SET VARIABLE out='{out}';",
          "-c", f".read {here}/benches/web_sessions_duckdb.sql"]
funnel = [ecrm, "--warehouse", wh, "-q", "web", "funnel", "--steps",
          "product_view,add_to_cart,checkout,purchase", "--format", "csv"]
t = {"ecrm": [], "duckdb": [], "funnel": []}
m = {"ecrm": [], "duckdb": [], "funnel": []}
for _ in range(runs):
    for name, cmd in (("ecrm", ours), ("duckdb", theirs), ("funnel", funnel)):
        s, mb, stdout = timed(cmd)
        t[name].append(s); m[name].append(mb)
        if name == "ecrm": summary = stdout.strip()
        if name == "funnel": steps = stdout.strip()
ducks = subprocess.run([duckdb, "-csv", "-noheader", "-c",
    f"SELECT count(*), sum(events), count(*) FILTER (converted) FROM '{out}/web_sessions.parquet'"],
    capture_output=True, text=True, check=True).stdout.strip()
# Row by row: the sessions both wrote, every column but date_key and duration_s (derived
# from start and end).
import glob
ours_file = max(glob.glob(f"{wh}/tables/web_sessions/*.parquet"), key=os.path.getmtime)
cols = ("session_id, visitor_id, customer_id, start, \"end\", events, CAST(pages AS BIGINT), "
        "entry_page, exit_page, channel, device, referrer, country, converted, orders, "
        "CAST(revenue AS DECIMAL(18,3))")
differ = subprocess.run([duckdb, "-csv", "-noheader", "-c",
    f"SELECT count(*) FROM ((SELECT {cols} FROM '{ours_file}' EXCEPT ALL "
    f"SELECT {cols} FROM '{out}/web_sessions.parquet') UNION ALL (SELECT {cols} FROM "
    f"'{out}/web_sessions.parquet' EXCEPT ALL SELECT {cols} FROM '{ours_file}'))"],
    capture_output=True, text=True, check=True).stdout.strip()
med = {k: statistics.median(v) for k, v in t.items()}
print(f"ecrm web sessions: {med['ecrm']:.2f} s, peak {max(m['ecrm']):.0f} MB -- {summary}")
print(f"DuckDB CLI {subprocess.run([duckdb, '--version'], capture_output=True, text=True).stdout.split()[0]}: "
      f"{med['duckdb']:.2f} s, peak {max(m['duckdb']):.0f} MB -- sessions, events, converted: {ducks}")
print(f"ecrm / DuckDB {med['ecrm'] / med['duckdb']:.2f} (medians of {runs}); session rows that differ: {differ}")
print(f"ecrm web funnel (4 steps, within session): {med['funnel']:.2f} s, peak {max(m['funnel']):.0f} MB")
print(steps)
PY
