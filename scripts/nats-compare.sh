#!/usr/bin/env bash
# nats-compare.sh: fan-out 1 → SUBS over loopback, NATS core against a
# cosnim relay, plaintext and TLS, in one run on this machine, with ratios.
#
# NATS is installed with `go install` at pinned versions into a temporary
# GOBIN (never into go.mod). Set NATS_BIN to a directory holding nats and
# nats-server of those versions to skip the install.
#
#   scripts/nats-compare.sh                 # MSGS=1000000 SUBS=10 SIZE=128 REPS=3
#   MSGS=300000 REPS=1 scripts/nats-compare.sh
#
# Also compares memory per idle subscribed connection (IDLE connections,
# RSS growth of the server process), and prints the machine.
set -euo pipefail

NATS_SERVER_VERSION=v2.15.2
NATSCLI_VERSION=v0.5.0
MSGS=${MSGS:-1000000}
SUBS=${SUBS:-10}
SIZE=${SIZE:-128}
REPS=${REPS:-3}
IDLE=${IDLE:-2000}
PORT=${PORT:-14222}
TLSPORT=${TLSPORT:-14223}

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

bin=${NATS_BIN:-$work/bin}
if [ ! -x "$bin/nats-server" ] || [ ! -x "$bin/nats" ]; then
	echo "installing nats-server $NATS_SERVER_VERSION and natscli $NATSCLI_VERSION into $bin" >&2
	(cd "$work" && GOBIN=$bin GOFLAGS= go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION" &&
		GOBIN=$bin GOFLAGS= go install "github.com/nats-io/natscli/nats@$NATSCLI_VERSION")
fi
(cd "$repo" && go build -o "$work/cosnim" ./cmd/cosnim)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 2>/dev/null

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
echo "nats-server $NATS_SERVER_VERSION, natscli $NATSCLI_VERSION; fan-out 1 → $SUBS, $SIZE-byte messages, $MSGS per run, $REPS runs"

"$bin/nats-server" -a 127.0.0.1 -p "$PORT" >"$work/nats.log" 2>&1 &
pids+=($!)
nats_pid=$!
"$bin/nats-server" -a 127.0.0.1 -p "$TLSPORT" --tls --tlscert "$work/cert.pem" --tlskey "$work/key.pem" >"$work/nats-tls.log" 2>&1 &
pids+=($!)
sleep 1

# nats_fanout URL [TLS flags...]: aggregated subscriber msgs/s.
nats_fanout() {
	local url=$1
	shift
	"$bin/nats" -s "$url" "$@" bench sub bench.fanout --clients "$SUBS" --msgs "$MSGS" --size "$SIZE" --no-progress >"$work/sub.txt" 2>&1 &
	local sub=$!
	sleep 1
	"$bin/nats" -s "$url" "$@" bench pub bench.fanout --clients 1 --msgs "$MSGS" --size "$SIZE" --no-progress >"$work/pub.txt" 2>&1
	wait "$sub"
	grep 'aggregated stats' "$work/sub.txt" | sed -E 's/.*stats: ([0-9,]+) msgs\/sec.*/\1/' | tr -d ,
}

# ours [flags...]: delivered entries/s of a spawned relay.
ours() {
	"$work/cosnim" relay bench --spawn --pub 1 --sub "$SUBS" --msgs "$MSGS" --size "$SIZE" --json "$@" 2>/dev/null >"$work/ours.json"
	sed -nE 's/.*"delivered_per_sec": ([0-9.e+]+).*/\1/p' "$work/ours.json" | awk '{printf "%d\n", $1}'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

for mode in plaintext tls; do
	n=() o=()
	for _ in $(seq "$REPS"); do
		if [ $mode = tls ]; then
			n+=("$(nats_fanout "tls://127.0.0.1:$TLSPORT" --tlsca "$work/cert.pem")")
			o+=("$(ours --tls)")
		else
			n+=("$(nats_fanout "nats://127.0.0.1:$PORT")")
			o+=("$(ours)")
		fi
	done
	nm=$(printf '%s\n' "${n[@]}" | median)
	om=$(printf '%s\n' "${o[@]}" | median)
	printf '%-9s NATS %9d msgs/s  cosnim %9d entries/s  ratio %s   (runs: NATS %s; cosnim %s)\n' \
		"$mode" "$nm" "$om" "$(ratio "$om" "$nm")" "${n[*]}" "${o[*]}"
done

# Idle subscribed connections: RSS growth of nats-server, and of a spawned relay.
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
before=$(rss "$nats_pid")
"$bin/nats" -s "nats://127.0.0.1:$PORT" bench sub bench.idle --clients "$IDLE" --msgs 1 --no-progress >"$work/idle.txt" 2>&1 &
idle=$!
pids+=($idle)
for _ in $(seq 60); do
	sleep 0.5
	[ "$(grep -c 'Starting Core NATS subscriber, expecting' "$work/idle.txt")" -ge "$IDLE" ] && break
done
sleep 2
after=$(rss "$nats_pid")
kill "$idle" 2>/dev/null || true
nb=$(( (after - before) / IDLE ))
"$work/cosnim" relay bench --spawn --scenario idle --idle "$IDLE" --json 2>/dev/null >"$work/idle.json"
ob=$(sed -nE 's/.*"rss_per_conn": ([0-9.e+]+).*/\1/p' "$work/idle.json" | awk '{printf "%d\n", $1}')
oh=$(sed -nE 's/.*"bytes_per_conn": ([0-9.e+]+).*/\1/p' "$work/idle.json" | awk '{printf "%d\n", $1}')
printf 'idle      NATS %d B RSS per subscribed connection  cosnim %d B RSS (%d B heap+stacks) per joined connection  ratio %s  (%d connections)\n' \
	"$nb" "$ob" "$oh" "$(ratio "$ob" "$nb")" "$IDLE"
