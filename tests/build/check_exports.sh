#!/usr/bin/env bash
# The plugin .so must export exactly mosquitto_plugin_version, _init, _cleanup:
# anything else is a symbol another plugin or the broker could collide with.
set -euo pipefail
so=$1
got=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TtDdBbRrVvWw]$/ {print $3}' | sort)
want=$(printf '%s\n' mosquitto_plugin_cleanup mosquitto_plugin_init mosquitto_plugin_version)
if [ "$got" != "$want" ]; then
	echo "FAIL: $so exports:"; echo "$got"; echo "expected exactly:"; echo "$want"
	exit 1
fi
echo "OK: $so exports exactly the three mosquitto_plugin_* entry points"
