#!/usr/bin/env bash
# Runs the load scenarios with fraiseql-loadgen against a node it spawns,
# each RUNS times, writing one JSON report per run (and the summaries) to
# OUT, and a saturation chart. Only loopback addresses are used.
#
#   tests/load/scenarios.sh                       # every scenario, 3 runs each
#   SCENARIOS="fanout-100k cpu-per-delivery" RUNS=1 tests/load/scenarios.sh
#   SOAK_DURATION=2h tests/load/scenarios.sh soak
#   DRY_RUN=1 tests/load/scenarios.sh             # print the commands only
#   PAYLOAD=512 (default), RUNS=3, DURATION=30s, OUT=dir
#   SERVERS="fraiseql centrifugo" CENTRIFUGO_BIN=/path/to/centrifugo tests/load/scenarios.sh cpu-per-delivery
#                                                 # the same runs on Centrifugo too, interleaved
#                                                 # (reports centrifugo-<scenario>-N.json)
#
# Scenarios (names for SCENARIOS or the arguments):
#   fanout-100k       1,000 conns × 1 sub, 100 events/s  → 100k deliveries/s
#   cpu-per-delivery  2,000 conns × 1 sub, 20 events/s   → 40k deliveries/s; read server_cpu_us_per_delivery
#   cpu-write-delay   the same with ws.write_delay=$WRITE_DELAY (default 100ms): fewer write(2) calls for more latency
#   write-floor       no node: fraiseql-writefloor writes a 540-byte frame to each of 2,000 loopback
#                     connections 20 times a second with raw write(2): the kernel's price of a
#                     delivery that is its own write, the floor under cpu-per-delivery
#   write-floor-x2    the same frames, two per write (10 writes/s): what sharing a write saves
#   write-floor-uring write-floor's sends made as the node's write rounds make them with
#                     ws.io_uring (the default on Linux): 64 per io_uring_enter
#   saturate-2k       2,000 conns × 1 sub, rate ×1.25 per 10 s step from 10 events/s until loss > 0.1 % or p99 > 500 ms
#   fanout-10k        10,000 conns × 1 sub, 100 events/s → 1M deliveries/s offered
#   fanout-10k-300k   10,000 conns × 1 sub, 30 events/s  → 300k deliveries/s: latency at the (ii) target rate
#   idle-rss-10k      10,000 conns × 1 sub, 1 event/s: memory per idle connection and per subscription
#   soak              10,000 conns × 10 subs over 100 rooms, 10 events/s (10k deliveries/s) for
#                     SOAK_DURATION (default 30m): RSS drift, goroutine growth
#
# The machine running this is also the machine measured: the tool's own
# CPU is in every report (client_cores), so read the server numbers with it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${RUNS:-3}
OUT=${OUT:-/tmp/fraiseql-load-$(date +%Y%m%d-%H%M%S)}
DURATION=${DURATION:-30s}
PAYLOAD=${PAYLOAD:-512} # bytes per event body, as in the reference measurements
SOAK_DURATION=${SOAK_DURATION:-30m}
WRITE_DELAY=${WRITE_DELAY:-100ms}
SERVERS=${SERVERS:-fraiseql}
CENTRIFUGO_BIN=${CENTRIFUGO_BIN:-}
SOAK_SAMPLE=${SOAK_SAMPLE:-30s}
ALL="fanout-100k cpu-per-delivery cpu-write-delay write-floor write-floor-x2 write-floor-uring saturate-2k fanout-10k fanout-10k-300k idle-rss-10k soak"
if [ $# -gt 0 ]; then SCENARIOS="$*"; fi
SCENARIOS=${SCENARIOS:-$ALL}

for server in $SERVERS; do
	case $server in
	fraiseql) ;;
	centrifugo)
		# A name on PATH or a relative path: made absolute before the cd below.
		if [ -n "$CENTRIFUGO_BIN" ] && found=$(command -v "$CENTRIFUGO_BIN"); then
			CENTRIFUGO_BIN=$(realpath "$found")
		fi
		if [ -z "${DRY_RUN:-}" ] && [ ! -x "$CENTRIFUGO_BIN" ]; then
			echo "SERVERS has centrifugo: give CENTRIFUGO_BIN, an executable Centrifugo binary" >&2
			echo "(docs/load-tool.md, section *Centrifugo on the same machine*, says how to get one)" >&2
			exit 2
		fi ;;
	*)
		echo "unknown server $server in SERVERS (know: fraiseql centrifugo)" >&2
		exit 2 ;;
	esac
done
if [ -z "${DRY_RUN:-}" ]; then mkdir -p "$OUT/bin"; fi
# 10,000 connections need 10,000+ descriptors on each side; the tool also
# raises its soft limit to the hard one, and the node inherits it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "results in $OUT (RLIMIT_NOFILE $(ulimit -n))"

cd "$ROOT"
# run NAME N ARGS...: one run of the tool on each server of SERVERS in
# turn, report in $OUT/NAME-N.json (centrifugo-NAME-N.json for Centrifugo).
# Centrifugo takes no node settings and one subscription per connection:
# such scenarios (and the soak) run on the node only.
run() {
	local name=$1 n=$2 server file
	shift 2
	local srv=()
	for server in $SERVERS; do
		file=$name
		srv=(-node-bin "$OUT/bin/fraiseql-node")
		if [ "$server" = centrifugo ]; then
			case " $* " in
			*" -node-env "* | *" -soak "* | *" -subs "[!1]* | *" -subs 1"[0-9]*)
				echo "== $name run $n: not run on centrifugo (node settings, the soak, or several subscriptions per connection)"
				continue ;;
			esac
			file=centrifugo-$name
			srv=(-server centrifugo -centrifugo-bin "$CENTRIFUGO_BIN")
		fi
		if [ -n "${DRY_RUN:-}" ]; then
			echo "fraiseql-loadgen -spawn ${srv[*]} -payload $PAYLOAD -out $OUT/$file-$n.json $*"
			continue
		fi
		echo "== $file run $n: $*"
		# A run that fails (exit 1) is kept in the results and does not stop
		# the others: its report says what failed.
		"$OUT/bin/fraiseql-loadgen" -spawn "${srv[@]}" \
			-payload "$PAYLOAD" -out "$OUT/$file-$n.json" "$@" 2>"$OUT/$file-$n.log" | tee "$OUT/$file-$n.txt" || echo "   (exit $?; see $OUT/$file-$n.log)"
	done
}

if [ -n "${DRY_RUN:-}" ]; then
	floor() { echo "fraiseql-writefloor -out $OUT/$1-$2.json ${*:3}"; }
else
go build -o "$OUT/bin/fraiseql-loadgen" ./tests/load/cmd/fraiseql-loadgen
go build -o "$OUT/bin/fraiseql-node" ./cmd/fraiseql-node
go build -o "$OUT/bin/fraiseql-plot" ./tests/load/cmd/fraiseql-plot
go build -o "$OUT/bin/fraiseql-writefloor" ./tests/load/cmd/fraiseql-writefloor

# floor NAME N ARGS...: one run of fraiseql-writefloor, report in $OUT/NAME-N.json.
floor() {
	local name=$1 n=$2
	shift 2
	echo "== $name run $n: $*"
	"$OUT/bin/fraiseql-writefloor" -out "$OUT/$name-$n.json" "$@" 2>"$OUT/$name-$n.log" | tee "$OUT/$name-$n.txt" || echo "   (exit $?; see $OUT/$name-$n.log)"
}
fi

for s in $SCENARIOS; do
	for n in $(seq 1 "$RUNS"); do
		case $s in
		fanout-100k)
			run "$s" "$n" -conns 1000 -subs 1 -rate 100 -duration "$DURATION" -warmup 5s -connect-rate 500 ;;
		cpu-per-delivery)
			run "$s" "$n" -conns 2000 -subs 1 -rate 20 -duration "$DURATION" -warmup 5s -connect-rate 500 ;;
		cpu-write-delay)
			run "$s" "$n" -conns 2000 -subs 1 -rate 20 -duration "$DURATION" -warmup 5s -connect-rate 500 \
				-node-env "FRAISEQL_WS_WRITE_DELAY=$WRITE_DELAY" ;;
		write-floor)
			floor "$s" "$n" -conns 2000 -rate 20 -frames 1 -duration "$DURATION" ;;
		write-floor-x2)
			floor "$s" "$n" -conns 2000 -rate 10 -frames 2 -duration "$DURATION" ;;
		write-floor-uring)
			floor "$s" "$n" -conns 2000 -rate 20 -frames 1 -duration "$DURATION" -engine io_uring ;;
		saturate-2k)
			run "$s" "$n" -saturate -conns 2000 -subs 1 -sat-start 10 -sat-factor 1.25 -sat-step 10s \
				-sat-max-steps 30 -warmup 5s -connect-rate 500 ;;
		fanout-10k)
			run "$s" "$n" -conns 10000 -subs 1 -rate 100 -duration "$DURATION" -warmup 5s -connect-rate 1000 ;;
		fanout-10k-300k)
			run "$s" "$n" -conns 10000 -subs 1 -rate 30 -duration "$DURATION" -warmup 5s -connect-rate 1000 ;;
		idle-rss-10k)
			run "$s" "$n" -conns 10000 -subs 1 -rate 1 -duration 5s -warmup 0 -settle 5s -connect-rate 1000 ;;
		soak)
			[ "$n" -gt 1 ] && continue # one soak is enough; it is long
			# 100 rooms of 100 conns: each event reaches 1,000 subscriptions,
			# so 10 events/s is 10k deliveries/s: a low, steady load.
			run "$s" "$n" -soak -conns 10000 -subs 10 -rooms 100 -rate 10 -duration "$SOAK_DURATION" \
				-sample-every "$SOAK_SAMPLE" -warmup 60s -connect-rate 1000 ;;
		*)
			echo "unknown scenario $s (know: $ALL)" >&2
			exit 2 ;;
		esac
	done
done

# The chart: the node's saturation runs, and Centrifugo's in their own
# colours when it ran too.
shopt -s nullglob
sat=("$OUT"/saturate-2k-*.json "$OUT"/centrifugo-saturate-2k-*.json)
shopt -u nullglob
if [ -z "${DRY_RUN:-}" ] && [ ${#sat[@]} -gt 0 ]; then
	"$OUT/bin/fraiseql-plot" -o "$OUT/saturate-2k.png" "${sat[@]}" && echo "chart: $OUT/saturate-2k.png"
fi
echo "done: $OUT"
