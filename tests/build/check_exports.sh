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

# Every mosquitto_* function the plugin calls must be found when it is loaded
# into any mosquitto 2.x broker.  Upstream 2.0 brokers (Debian 13's 2.0.21)
# export only the functions in their src/linker.syms (copied below from
# 2.0.21); anything else must come from a library the plugin itself needs
# (libmosquitto.so.1).  Debian 12's 2.0.11 exported everything, which hid this.
broker_exports="mosquitto_broker_publish mosquitto_broker_publish_copy mosquitto_callback_register
mosquitto_callback_unregister mosquitto_calloc mosquitto_client_address mosquitto_client_certificate
mosquitto_client_clean_session mosquitto_client_id mosquitto_client_keepalive mosquitto_client_protocol
mosquitto_client_protocol_version mosquitto_client_sub_count mosquitto_client_username mosquitto_free
mosquitto_kick_client_by_clientid mosquitto_kick_client_by_username mosquitto_log_printf mosquitto_malloc
mosquitto_property_add_binary mosquitto_property_add_byte mosquitto_property_add_int16
mosquitto_property_add_int32 mosquitto_property_add_string mosquitto_property_add_string_pair
mosquitto_property_add_varint mosquitto_property_free_all mosquitto_pub_topic_check mosquitto_realloc
mosquitto_set_username mosquitto_strdup mosquitto_sub_topic_check mosquitto_topic_matches_sub
mosquitto_validate_utf8"
from_libs=$(ldd "$so" | awk '$3 ~ /^\// {print $3}' | xargs -r nm -D --defined-only 2>/dev/null |
	awk '{sub(/@.*/, "", $3); print $3}' | sort -u)
missing=""
for sym in $(nm -D --undefined-only "$so" | awk '$1 == "U" && $2 ~ /^mosquitto_/ {print $2}' | sed 's/@.*//'); do
	if ! grep -qx "$sym" <<<"$(printf '%s\n' $broker_exports)" && ! grep -qx "$sym" <<<"$from_libs"; then
		missing="$missing $sym"
	fi
done
if [ -n "$missing" ]; then
	echo "FAIL: $so calls functions an upstream mosquitto 2.0 broker does not export and no"
	echo "library it needs defines (link it to libmosquitto):$missing"
	exit 1
fi
echo "OK: every mosquitto_* function $so calls is exported by any 2.x broker or by libmosquitto"
