#!/usr/bin/env bash
# scale.sh: the scale table of BENCHMARKS.md. Throughput and relay memory as
# subscribers of one channel go 1 → 10 → 100 → 1000, and as channels of
# CLIENTS clients each go 1 → 4000, against spawned relays.
#
#   scripts/scale.sh            # prints a Markdown table
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$repo" && go build -o "$work/cosnim" ./cmd/cosnim)
CLIENTS=${CLIENTS:-2}
RATE=${RATE:-0}

field() { sed -nE "s/.*\"$1\": ([0-9.e+-]+).*/\1/p" "$work/r.json" | head -1; }
row() {
	"$work/cosnim" relay bench --spawn --json --accept-rate 100000 "$@" 2>/dev/null >"$work/r.json"
	printf '| %s | %s | %.0f | %.0f | %.0f | %.1f | %.1f | %.0f |\n' "$1" "$2" \
		"$(field delivered_per_sec)" "$(field latency_p50_us)" "$(field latency_p99_us)" \
		"$(awk -v b="$(field relay_peak_rss_bytes)" 'BEGIN {print b/1048576}')" \
		"$(awk -v b="$(field relay_heap_stack_bytes)" 'BEGIN {print b/1048576}')" \
		"$(field relay_cpu_percent)"
}
echo "| scenario | shape | delivered/s | p50 µs | p99 µs | relay peak RSS MiB | relay heap+stacks MiB | relay CPU % |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for s in 1 10 100 1000; do
	msgs=$((1000000 / (s > 10 ? s / 10 : 1)))
	row --scenario=fanout "--sub=$s" --msgs=$msgs
done
for c in 1 10 100 1000 4000; do
	row --scenario=channels "--channels=$c" "--sub=$CLIENTS" --duration=5s "--rate=$RATE"
done
