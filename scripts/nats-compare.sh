#!/usr/bin/env bash
# nats-compare.sh: a cosnim relay against NATS core over loopback, in one
# run on this machine, with ratios.
#
#   1. throughput, fan-out 1 → SUBS, SIZE-byte entries, at 1 and 64 entries
#      per frame (NATS: one message each), plaintext and TLS: delivered/s
#      and server CPU-seconds per million deliveries (utime+stime of the
#      server process from /proc/PID/stat), medians of REPS runs;
#   2. latency at fixed offered rates (RATES, deliveries/s): p50, p99 and
#      p99.9 publish → receive, for 1 → SUBS and for LCHANNELS channels ×
#      SUBS clients, with the server's and the bench's CPU;
#   3. memory per idle subscribed connection (IDLE connections, RSS growth
#      of the server process), plaintext and TLS; NATS is read as long
#      after its subscriptions as the bench reads cosnim after its joins
#      (the bench's settle_seconds: by then idle connections have parked),
#      and again as long after the GC of cosnim's first reading as the
#      bench waits for its second (scavenge_seconds).
#
# Both servers are driven by `cosnim relay bench`: --spawn runs the relay
# in a child process; --nats drives nats-server through nats.go (the
# client the backbone uses) with the same pacing, windows and histograms.
# The headline is that same-run ratio. `nats bench` (the NATS tool) runs
# beside it for the throughput rows and measures NATS's idle connections;
# without the `nats` CLI the script says so and leaves those out.
#
# nats-server is built from this module's go.mod (the version the tests
# run), unless NATS_BIN names a directory holding nats-server; the `nats`
# CLI is taken from NATS_BIN, then PATH (install it with
# `go install github.com/nats-io/natscli/nats@v0.5.0`). COSNIM names a
# built cosnim binary to compare another build.
#
#   scripts/nats-compare.sh                 # MSGS=500000 SUBS=10 SIZE=128 REPS=3
#   MSGS=300000 REPS=1 SKIP=latency,idle scripts/nats-compare.sh
set -euo pipefail

MSGS=${MSGS:-500000}
SUBS=${SUBS:-10}
SIZE=${SIZE:-128}
REPS=${REPS:-3}
IDLE=${IDLE:-10000}
RATES=${RATES:-10000 50000 100000 200000}
LCHANNELS=${LCHANNELS:-100}
LDURATION=${LDURATION:-4}
SKIP=${SKIP:-}
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
skip() { [[ ",$SKIP," == *",$1,"* ]]; }

NATS_SERVER_VERSION=$(cd "$repo" && go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
bin=${NATS_BIN:-$work/bin}
if [ ! -x "$bin/nats-server" ]; then
	echo "building nats-server $NATS_SERVER_VERSION (go.mod) into $bin" >&2
	(cd "$repo" && go build -o "$bin/nats-server" github.com/nats-io/nats-server/v2)
fi
natscli=
if [ -x "$bin/nats" ]; then
	natscli=$bin/nats
elif command -v nats >/dev/null; then
	natscli=$(command -v nats)
fi
if [ -n "$natscli" ]; then
	natscli_version=$("$natscli" --version 2>&1 | head -1)
else
	natscli_version="not installed: no \`nats bench\` figures (go install github.com/nats-io/natscli/nats@v0.5.0)"
	echo "the nats CLI is not installed (not in NATS_BIN or PATH): \`nats bench\` figures and NATS's idle memory are left out; the bench's same-run ratios follow" >&2
fi
cosnim=${COSNIM:-}
if [ -z "$cosnim" ]; then
	(cd "$repo" && go build -o "$work/cosnim" ./cmd/cosnim)
	cosnim=$work/cosnim
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 2>/dev/null

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "nats-server $NATS_SERVER_VERSION, nats CLI $natscli_version; $SIZE-byte entries; cosnim $($cosnim version 2>/dev/null | head -1)"

# nats-server limits: a subscriber may fall 64 MiB behind before NATS cuts
# it as a slow consumer (the default), like the relay's window.
"$bin/nats-server" -a 127.0.0.1 -p "$PORT" >"$work/nats.log" 2>&1 &
nats_pid=$!
pids+=($nats_pid)
"$bin/nats-server" -a 127.0.0.1 -p "$TLSPORT" --tls --tlscert "$work/cert.pem" --tlskey "$work/key.pem" >"$work/nats-tls.log" 2>&1 &
nats_tls_pid=$!
pids+=($nats_tls_pid)
sleep 1

jget() { sed -nE "s/.*\"$1\": ([0-9.e+-]+).*/\1/p" "$2" | head -1; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "-"; else printf "%.2f", a/b}'; }
cpu_ticks() { awk '{sub(/.*\) /, ""); split($0, f, " "); print f[12] + f[13]}' "/proc/$1/stat"; }

# bench OUT ARGS...: one cosnim relay bench run, JSON into OUT.
bench() {
	local out=$1
	shift
	"$cosnim" relay bench --json "$@" 2>"$out.err" >"$out" || { echo "bench $* failed: $(tail -3 "$out.err")" >&2; return 1; }
}
# per_million FILE: server CPU-seconds per million deliveries.
per_million() { awk -v c="$(jget relay_cpu_seconds "$1")" -v d="$(jget delivered "$1")" 'BEGIN {printf "%.3f", c / d * 1e6}'; }

# natsbench URL PID [TLS flags...]: `nats bench` fan-out; msgs/s and CPU-s per million.
natsbench() {
	local url=$1 pid=$2
	shift 2
	"$natscli" -s "$url" "$@" bench sub bench.nb --clients "$SUBS" --msgs "$MSGS" --size "$SIZE" --no-progress >"$work/sub.txt" 2>&1 &
	local sub=$!
	sleep 1
	local c0
	c0=$(cpu_ticks "$pid")
	"$natscli" -s "$url" "$@" bench pub bench.nb --clients 1 --msgs "$MSGS" --size "$SIZE" --no-progress >"$work/pub.txt" 2>&1
	wait "$sub"
	local c1 rate
	c1=$(cpu_ticks "$pid")
	rate=$(grep 'aggregated stats' "$work/sub.txt" | sed -E 's/.*stats: ([0-9,]+) msgs\/sec.*/\1/' | tr -d ,)
	awk -v r="$rate" -v c=$((c1 - c0)) -v n=$((MSGS * SUBS)) 'BEGIN {printf "%d %.3f\n", r, c / 100 / n * 1e6}'
}

if ! skip throughput; then
	echo
	echo "== throughput: fan-out 1 → $SUBS, $MSGS entries per run, medians of $REPS runs (server CPU-s per million deliveries)"
	printf '%-9s %5s  %12s %8s  %12s %8s  %12s %8s  %7s %7s\n' mode batch "NATS msgs/s" "CPU/M" "cosnim e/s" "CPU/M" "nats-bench/s" "CPU/M" "rate×" "CPU×"
	for mode in plaintext tls; do
		if [ $mode = tls ]; then
			nurl="tls://127.0.0.1:$TLSPORT" npid=$nats_tls_pid tflag=(--tls) nflag=(--nats-ca "$work/cert.pem") cli=(--tlsca "$work/cert.pem")
		else
			nurl="nats://127.0.0.1:$PORT" npid=$nats_pid tflag=() nflag=() cli=()
		fi
		for batch in 1 64; do
			nr=() nc=() orr=() oc=() br=() bc=()
			for i in $(seq "$REPS"); do
				bench "$work/n.json" --nats "$nurl" "${nflag[@]}" --pid "$npid" --sub "$SUBS" --msgs "$MSGS" --size "$SIZE" --batch "$batch"
				nr+=("$(jget delivered_per_sec "$work/n.json")") nc+=("$(per_million "$work/n.json")")
				bench "$work/o.json" --spawn "${tflag[@]}" --sub "$SUBS" --msgs "$MSGS" --size "$SIZE" --batch "$batch"
				orr+=("$(jget delivered_per_sec "$work/o.json")") oc+=("$(per_million "$work/o.json")")
				if [ "$batch" = 1 ] && [ -n "$natscli" ]; then
					read -r r c < <(natsbench "$nurl" "$npid" "${cli[@]}")
					br+=("$r") bc+=("$c")
				fi
			done
			nm=$(printf '%s\n' "${nr[@]}" | median) ncm=$(printf '%s\n' "${nc[@]}" | median)
			om=$(printf '%s\n' "${orr[@]}" | median) ocm=$(printf '%s\n' "${oc[@]}" | median)
			bm=- bcm=-
			if [ ${#br[@]} -gt 0 ]; then bm=$(printf '%s\n' "${br[@]}" | median) bcm=$(printf '%s\n' "${bc[@]}" | median); fi
			printf '%-9s %5d  %12.0f %8s  %12.0f %8s  %12s %8s  %7s %7s\n' $mode "$batch" "$nm" "$ncm" "$om" "$ocm" "$bm" "$bcm" \
				"$(ratio "$om" "$nm")" "$(ratio "$ocm" "$ncm")"
			printf '          runs: NATS %s (CPU/M %s); cosnim %s (CPU/M %s)\n' "$(printf '%.0f ' "${nr[@]}")" "${nc[*]}" "$(printf '%.0f ' "${orr[@]}")" "${oc[*]}"
		done
	done
	echo "rate× = cosnim delivered/s ÷ NATS's, both driven by the bench in this run (NATS through nats.go): the headline; CPU× = cosnim server CPU per delivery ÷ nats-server's; nats-bench = \`nats bench\` against the same server"
fi

if ! skip latency; then
	echo
	echo "== latency at fixed offered rates (deliveries/s), 1 entry per frame, ${LDURATION}s each (µs; CPU in seconds over the run)"
	printf '%-14s %7s %-6s %10s %8s %8s %8s %7s %7s\n' shape offered server delivered/s p50 p99 p99.9 srvCPU bchCPU
	for shape in fanout channels; do
		for rate in $RATES; do
			if [ $shape = fanout ]; then
				per=$((rate / SUBS))
				args=(--scenario fanout --sub "$SUBS" --rate "$per" --msgs $((per * LDURATION)) --batch 1)
				label="1→$SUBS"
			else
				per=$((rate / (SUBS - 1)))
				args=(--scenario channels --channels "$LCHANNELS" --sub "$SUBS" --rate "$per" --duration "${LDURATION}s" --batch 1)
				label="${LCHANNELS}×$SUBS"
			fi
			for server in nats cosnim; do
				if [ $server = nats ]; then
					bench "$work/l.json" --nats "nats://127.0.0.1:$PORT" --pid "$nats_pid" "${args[@]}" || continue
				else
					bench "$work/l.json" --spawn "${args[@]}" || continue
				fi
				printf '%-14s %7d %-6s %10.0f %8.0f %8.0f %8.0f %7.2f %7.2f\n' "$label" "$rate" $server \
					"$(jget delivered_per_sec "$work/l.json")" "$(jget latency_p50_us "$work/l.json")" \
					"$(jget latency_p99_us "$work/l.json")" "$(jget latency_p999_us "$work/l.json")" \
					"$(jget relay_cpu_seconds "$work/l.json")" "$(jget bench_cpu_seconds "$work/l.json")"
			done
		done
	done
fi

if ! skip idle; then
	echo
	echo "== idle subscribed connections: $IDLE, RSS growth of the server process per connection (fresh servers)"
	rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
	for mode in plaintext tls; do
		if [ $mode = tls ]; then tflag=(--tls); else tflag=(); fi
		bench "$work/idle.json" --spawn "${tflag[@]}" --scenario idle --idle "$IDLE" --accept-rate 100000
		ob=$(jget rss_per_conn "$work/idle.json" | awk '{printf "%d", $1}')
		oh=$(jget bytes_per_conn "$work/idle.json" | awk '{printf "%d", $1}')
		og=$(jget rss_per_conn_after_gc "$work/idle.json" | awk '{printf "%d", $1}')
		settle=$(jget settle_seconds "$work/idle.json")
		settle=${settle:-0}
		scavenge=$(jget scavenge_seconds "$work/idle.json")
		scavenge=${scavenge:-0}
		nb=0 nl=0
		if [ -n "$natscli" ]; then
			# A fresh nats-server: one that served the runs above may be
			# returning memory to the system while this is measured.
			if [ $mode = tls ]; then
				"$bin/nats-server" -a 127.0.0.1 -p $((TLSPORT + 10)) --tls --tlscert "$work/cert.pem" --tlskey "$work/key.pem" >"$work/nats-idle.log" 2>&1 &
				npid=$! nurl="tls://127.0.0.1:$((TLSPORT + 10))" cli=(--tlsca "$work/cert.pem")
			else
				"$bin/nats-server" -a 127.0.0.1 -p $((PORT + 10)) >"$work/nats-idle.log" 2>&1 &
				npid=$! nurl="nats://127.0.0.1:$((PORT + 10))" cli=()
			fi
			pids+=($npid)
			sleep 1
			before=$(rss "$npid")
			"$natscli" -s "$nurl" "${cli[@]}" bench sub "bench.idle.$mode" --clients "$IDLE" --msgs 1 --no-progress >"$work/idle.txt" 2>&1 &
			idle=$!
			pids+=($idle)
			for _ in $(seq 240); do
				sleep 0.5
				[ "$(grep -c 'Starting Core NATS subscriber, expecting' "$work/idle.txt")" -ge "$IDLE" ] && break
			done
			# As long after the subscriptions as cosnim's reading after the
			# joins (its idle connections park by then).
			sleep "$settle"
			after=$(rss "$npid")
			# And as long again as cosnim's second reading (NATS's GC is its
			# own business).
			sleep "$scavenge"
			later=$(rss "$npid")
			kill "$idle" "$npid" 2>/dev/null || true
			wait "$idle" 2>/dev/null || true
			nb=$(((after - before) / IDLE))
			nl=$(((later - before) / IDLE))
		else
			echo "idle $mode: NATS not measured (no nats CLI)"
		fi
		printf 'idle %-9s NATS %6d B RSS per subscribed connection (%d B %ss later)   cosnim %6d B RSS (%d B heap+stacks; %d B RSS %ss after a GC) per joined connection   ratio %s\n' \
			$mode "$nb" "$nl" "$scavenge" "$ob" "$oh" "${og:-0}" "$scavenge" "$(ratio "$ob" "$nb")"
	done
fi
