"""The five peer OLAP questions, whole processes, alternating ecrm binaries with the DuckDB CLI.

usage: python3 benches/olap_vs_duckdb.py RUNS FACT_PARQUET ECRM_BINARY [ECRM_BINARY ...]

FACT_PARQUET is the fact table `../shared/peers/etl_duckdb.sql` writes for Online Retail (see
benches/README.md). Each run starts every binary once, in turn, with 2 threads; prints the
median and fastest wall time of each (millisecond resolution, unlike /usr/bin/time's 10 ms)
and its ratio to DuckDB's median.
"""

import os
import statistics
import subprocess
import sys
import time

runs, fact, binaries = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
here = os.path.dirname(os.path.abspath(__file__))
queries = os.path.join(here, "..", "..", "shared", "peers", "olap_queries.sql")
peers = os.environ.get("PEERS", os.path.expanduser("~/.cache/ecrm-peers"))
commands = {
    "duckdb": [
        f"{peers}/bin/duckdb", "-csv",
        "-c", f"SET threads=2; CREATE VIEW sales AS SELECT * FROM read_parquet('{fact}')",
        "-c", f".read {queries}",
    ]
}
for b in binaries:
    commands[b] = [b, "--warehouse", "/nonexistent", "--threads", "2", "query",
                   "--table", f"sales={fact}", "-f", queries, "--format", "csv"]
times = {k: [] for k in commands}
for _ in range(runs):
    for name, command in commands.items():
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        times[name].append(time.perf_counter() - start)
duck = statistics.median(times["duckdb"])
for name, t in times.items():
    m = statistics.median(t)
    print(f"{name}: median {m * 1000:.1f} ms, fastest {min(t) * 1000:.1f} ms, {m / duck:.3f}x DuckDB")
