#!/usr/bin/env bash
# callgrind_hotpath.sh — the hot path in broker instructions per delivered
# message (issue 14), for when wall-clock throughput is too noisy to judge a
# change (2 shared cores: ±10–15 % run to run).  Runs mosquitto under
# `valgrind --tool=callgrind` with the configurations scripts/bench wrote,
# drives it with the bench's load generator for a fixed number of messages,
# and prints
#   total   broker instructions per delivery: the difference between a run of
#           1,000 and one of 6,000 deliveries, so connection setup (TLS
#           handshakes: ~1.5 billion instructions) cancels.  Within ±2–3 %
#           for QoS 0; fan-in QoS 1 swings far more (how many PUBLISHes and
#           PUBACKs one read or write carries depends on timing).
#   acl     mosquitto_acl_check per delivery, callbacks included, and
#   msg     the MESSAGE event (plugin__handle_message) per delivery: exact,
#           they do not depend on timing.
#
# Usage:
#   PG_BENCH_KEEP=1 scripts/bench --quick --only hotpath --build-dir build   # prints "kept DIR"
#   tests/bench/callgrind_hotpath.sh DIR [variant] [case ...]
#     variant  plantgate (default) | no-plugin | dynsec
#     case     shape:qos:size, e.g. fan-in:0:64 fan-out:1:1024 (default: all 8)
#   Environment: BUILD (default build) for the load generator, PLUGIN to load
#   another plantgate_auth.so, PG_BENCH_PKI as for scripts/bench.
# About 1 minute per case (QoS 1 fan-in: 2–3).  Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEEP=${1:?usage: $0 KEPT_BENCH_DIR [variant] [shape:qos:size ...]}
V=${2:-plantgate}
shift $(($# >= 2 ? 2 : 1))
CASES=${*:-fan-in:0:64 fan-in:0:1024 fan-in:1:64 fan-in:1:1024 fan-out:0:64 fan-out:0:1024 fan-out:1:64 fan-out:1:1024}
BUILD=${BUILD:-build}
LG=$BUILD/tests/bench/loadgen
PKI=${PG_BENCH_PKI:-$BUILD/bench-pki}/plant
W=$(mktemp -d /tmp/pg-callgrind-XXXXXX)
trap 'rm -rf "$W"' EXIT

conf=$(ls "$KEEP/$V"-*.conf | head -1)
[ -x "$LG" ] || { echo "no $LG: build the tree first" >&2; exit 1; }

# Ir of one broker run delivering `count` publishes; prints "recv Ir acl msg".
run() {
	local shape=$1 qos=$2 size=$3 count=$4 port
	port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
	sed -e "s#^listener [0-9]*#listener $port#" "$conf" > "$W/b.conf"
	if [ "$V" = dynsec ]; then  # dynsec rewrites its file: give it a copy
		js=$(awk '/^plugin_opt_config_file/{print $2}' "$conf")
		cp "$js" "$W/dynsec.json"
		sed -i "s#^plugin_opt_config_file .*#plugin_opt_config_file $W/dynsec.json#" "$W/b.conf"
	fi
	if [ -n "${PLUGIN:-}" ]; then
		sed -i "s#^plugin .*plantgate_auth.*#plugin $PLUGIN#" "$W/b.conf"
	fi
	valgrind --tool=callgrind --callgrind-out-file="$W/cg" mosquitto -c "$W/b.conf" > "$W/broker.log" 2>&1 &
	local vpid=$!
	for _ in $(seq 1 300); do
		python3 -c "import socket;socket.create_connection(('127.0.0.1',$port),timeout=0.2)" 2>/dev/null && break
		sleep 0.2
	done
	local a
	if [ "$shape" = fan-in ]; then
		a=(--pubs 100 --ids dev-%04d:0 --pub-topic 'plant/hq/line{l}/{id}/telemetry/bench' --subs 1
		   --sub-ids dev-%04d:900 --sub-topic 'plant/hq/+/+/telemetry/#')
	else
		a=(--pubs 1 --ids dev-%04d:0 --pub-topic 'plant/hq/line{l}/{id}/telemetry/bench' --subs 100
		   --sub-ids dev-%04d:900 --sub-topic plant/hq/line0/dev-0000/telemetry/bench)
	fi
	local res
	res=$("$LG" run --port "$port" --nodelay --quiet --cafile "$PKI/ca.crt" --cert "$PKI/issued/%s.crt" \
		--key "$PKI/private/%s.key" "${a[@]}" --qos "$qos" --size "$size" --count "$count" --timeout 300 |
		grep RESULT || true)
	sleep 1
	kill -TERM $vpid
	wait $vpid || true
	local recv ir acl msg
	recv=$(sed -n 's/.* recv=\([0-9]*\).*/\1/p' <<<"$res")
	ir=$(awk '/^(summary|totals):/{print $2; exit}' "$W/cg")
	acl=$(callgrind_annotate --inclusive=yes --threshold=100 "$W/cg" 2>/dev/null |
		awk '/[: ]mosquitto_acl_check \[/{gsub(",","",$1); print $1; exit}')
	msg=$(callgrind_annotate --inclusive=yes --threshold=100 "$W/cg" 2>/dev/null |
		awk '/[: ]plugin__handle_message \[/{gsub(",","",$1); print $1; exit}')
	echo "${recv:-0} $ir ${acl:-0} ${msg:-0}"
}

echo "$V: broker instructions per delivered message (callgrind; 6,000 minus 1,000 deliveries)"
for c in $CASES; do
	IFS=: read -r shape qos size <<<"$c"
	if [ "$shape" = fan-in ]; then n1=1000 n2=6000; else n1=10 n2=60; fi
	read -r r1 i1 a1 m1 <<<"$(run "$shape" "$qos" "$size" $n1)"
	read -r r2 i2 a2 m2 <<<"$(run "$shape" "$qos" "$size" $n2)"
	d=$((r2 - r1))
	if [ "$d" -le 0 ]; then
		echo "$shape QoS $qos ${size} B: no deliveries counted (recv $r1, $r2)"
		continue
	fi
	printf '%-7s QoS %d %4d B  total %6d  acl %5d  msg %5d   (deliveries %d, %d)\n' "$shape" "$qos" "$size" \
		$(((i2 - i1) / d)) $(((a2 - a1) / d)) $(((m2 - m1) / d)) "$r1" "$r2"
done
