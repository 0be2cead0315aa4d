#!/usr/bin/env bash
# Measures host cost against simulated work: scale and CPU count sweeps of the seed's workload.
# Usage: docs/measure-scaling.sh [policy] > docs/scaling.tsv   (run from the repository root)
set -euo pipefail
policy=${1:-vanilla}
dotnet build src/Shootdown.Cli -c Release -v q >/dev/null
bin="dotnet src/Shootdown.Cli/bin/Release/net10.0/Shootdown.Cli.dll"
printf "scale\tcpus\tsim_pages\twall_s\tpages_per_wall_s\tns_per_page\tpeak_rss_mib\telapsed_s\n"
run() {
  local scale=$1; shift
  local out; out=$(mktemp)
  /usr/bin/time -f "%M" -o "$out.time" $bin run --policy "$policy" --scale "$scale" --format json "$@" > "$out"
  python3 - "$out" "$out.time" "$scale" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); rss = int(open(sys.argv[2]).read().split()[-1]) / 1024
pages = r["pages_read"] + r["pages_reclaimed"]
cpus = r["config"]["nodes"] * r["config"]["cpus_per_node"]
print(f'{sys.argv[3]}\t{cpus}\t{pages}\t{r["wall_s"]:.2f}\t{pages / r["wall_s"]:.0f}\t{r["wall_s"] * 1e9 / pages:.0f}\t{rss:.0f}\t{r["elapsed_s"]:.2f}')
PY
  rm -f "$out" "$out.time"
}
for s in 1/64 1/16 1/4 1/1; do run "$s"; done
# (threads_per_core=1: one CPU a node cannot hold a core of two hyperthreads)
for c in 1 4 16 64; do run 1/16 --nodes 4 --cpus-per-node "$c" --cost threads_per_core=1; done
