/*
 * provenance.c — stamps every message a device sends, its will included,
 * with who really sent it.
 *
 * PUBLISH: runs on MOSQ_EVT_MESSAGE, after the ACL check allowed the
 * publish.  Removes every `plantgate-device` (and `plantgate-received`) user
 * property the client sent, then adds `plantgate-device = <verified
 * identity>` and, when enabled, `plantgate-received = <broker receive time,
 * UTC ISO-8601 ms>`.
 *
 * Wills: mosquitto 2.0.11 never passes a will through MOSQ_EVT_MESSAGE; it
 * only asks ACL_CHECK (WRITE) when it is about to send one
 * (src/context.c, context__send_will — at disconnect, after the will delay
 * in src/will_delay.c, at session expiry, or when a new connection takes
 * the client id over), and that check carries no properties
 * (src/security.c, mosquitto_acl_check sets event_data.properties = NULL).
 * So the plugin cannot clean a will's properties, and cannot even see
 * whether they are forged.  It therefore never lets mosquitto send a will:
 * acl.c recognises the will's WRITE check (it comes from a connection that
 * is no longer the client's live one), checks it against the policy like a
 * PUBLISH, publishes a copy itself with mosquitto_broker_publish_copy() —
 * same topic, payload, QoS and retain, carrying only the plantgate stamp —
 * and answers the check "denied", which makes context__send_will drop
 * mosquitto's copy with the client's properties.  Cost: a will's own MQTT 5
 * properties (user properties, content type, message expiry, ...) are not
 * carried; mosquitto does not show them to plugins.  A refused will is sent
 * by nobody.
 *
 * MQTT 5 subscribers and the bridge can therefore trust these two
 * properties: no client can set them, on any message.  (MQTT 3.1.1
 * subscribers do not receive properties at all.)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr */
#endif
#include "plugin_int.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Free what mosquitto_property_read_* handed back, with the allocator that
 * made it; mosquitto_free must only see memory the broker counted, or its
 * memory count wraps below zero and, with memory_limit set, the broker
 * refuses every allocation from then on ("disconnected due to out of
 * memory": tests/integration/test_plugin_memory_limit.py, which
 * scripts/compat runs on each version).  Which allocator that is:
 *   - before 2.0.21 the readers allocate with plain calloc wherever they live
 *     (Debian 12's 2.0.11 exports them from the broker; upstream changelog
 *     2.0.21: "Fix mismatched wrapped/unwrapped memory alloc/free in
 *     properties", #3192): free();
 *   - an upstream 2.0 broker does not export them (src/linker.syms), so the
 *     plugin runs libmosquitto's, which counts nothing: free();
 *   - where the readers sit beside the mosquitto_free the plugin calls (the
 *     broker itself, or 2.1's common library) from 2.0.21 on, they allocate
 *     with the counted allocator: mosquitto_free. */
static void prop_free(void *mem)
{
	static void (*release)(void *);
	if(!release) {
		void (*reader)(void) = (void (*)(void))mosquitto_property_read_string_pair;
		void (*counted)(void) = (void (*)(void))mosquitto_free;
		void *r, *f;
		Dl_info ri, fi;
		int maj = 0, min = 0, rev = 0;
		memcpy(&r, &reader, sizeof(r));
		memcpy(&f, &counted, sizeof(f));
		mosquitto_lib_version(&maj, &min, &rev);
		bool beside = dladdr(r, &ri) && dladdr(f, &fi) && ri.dli_fbase == fi.dli_fbase;
		release = beside && maj * 1000000 + min * 1000 + rev >= 2000021 ? mosquitto_free : free;
	}
	release(mem);
}

/* Copy one property (any type) onto *out. */
static int copy_property(const mosquitto_property *p, mosquitto_property **out)
{
	int id = mosquitto_property_identifier(p);
	int ident2, type;
	const char *name = mosquitto_property_identifier_to_string(id);
	if(!name || mosquitto_string_to_property_info(name, &ident2, &type)) {
		return MOSQ_ERR_INVAL;
	}
	int rc = MOSQ_ERR_INVAL;
	switch(type) {
	case MQTT_PROP_TYPE_BYTE: {
		uint8_t v;
		if(mosquitto_property_read_byte(p, id, &v, false)) {
			rc = mosquitto_property_add_byte(out, id, v);
		}
		break;
	}
	case MQTT_PROP_TYPE_INT16: {
		uint16_t v;
		if(mosquitto_property_read_int16(p, id, &v, false)) {
			rc = mosquitto_property_add_int16(out, id, v);
		}
		break;
	}
	case MQTT_PROP_TYPE_INT32: {
		uint32_t v;
		if(mosquitto_property_read_int32(p, id, &v, false)) {
			rc = mosquitto_property_add_int32(out, id, v);
		}
		break;
	}
	case MQTT_PROP_TYPE_VARINT: {
		uint32_t v;
		if(mosquitto_property_read_varint(p, id, &v, false)) {
			rc = mosquitto_property_add_varint(out, id, v);
		}
		break;
	}
	case MQTT_PROP_TYPE_BINARY: {
		void *v = NULL;
		uint16_t len = 0;
		if(mosquitto_property_read_binary(p, id, &v, &len, false)) {
			rc = mosquitto_property_add_binary(out, id, v, len);
			prop_free(v);
		}
		break;
	}
	case MQTT_PROP_TYPE_STRING: {
		char *v = NULL;
		if(mosquitto_property_read_string(p, id, &v, false)) {
			rc = mosquitto_property_add_string(out, id, v);
			prop_free(v);
		}
		break;
	}
	case MQTT_PROP_TYPE_STRING_PAIR: {
		char *k = NULL, *v = NULL;
		if(mosquitto_property_read_string_pair(p, id, &k, &v, false)) {
			rc = mosquitto_property_add_string_pair(out, id, k, v);
			prop_free(k);
			prop_free(v);
		}
		break;
	}
	}
	return rc;
}

static bool is_ours(const mosquitto_property *p)
{
	if(mosquitto_property_identifier(p) != MQTT_PROP_USER_PROPERTY) {
		return false;
	}
	char *k = NULL, *v = NULL;
	bool ours = false;
	if(mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &k, &v, false)) {
		ours = k && (!strcmp(k, PG_PROP_DEVICE) || !strcmp(k, PG_PROP_RECEIVED));
	}
	prop_free(k);
	prop_free(v);
	return ours;
}

/* UTC ISO-8601 with milliseconds. */
static void now_iso(char *out, size_t outlen)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
	         (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
	         tm.tm_sec % 100, (int)(ts.tv_nsec / 1000000) % 1000);
}

/* Append the stamp (plantgate-device, and plantgate-received when enabled)
 * to *out. */
static int stamp(const pg_plugin_t *pg, const char *identity, mosquitto_property **out)
{
	int rc = mosquitto_property_add_string_pair(out, MQTT_PROP_USER_PROPERTY, PG_PROP_DEVICE, identity);
	if(rc || !pg->stamp_received) {
		return rc;
	}
	char ts[40];
	now_iso(ts, sizeof(ts));
	return mosquitto_property_add_string_pair(out, MQTT_PROP_USER_PROPERTY, PG_PROP_RECEIVED, ts);
}

int provenance_will(pg_plugin_t *pg, const struct mosquitto_evt_acl_check *ed, const char *identity)
{
	mosquitto_property *props = NULL;
	int rc = stamp(pg, identity, &props);
	if(!rc) {
		/* Takes props on success; delivered from the next main-loop pass
		 * (src/loop.c, queue_plugin_msgs), through every subscriber's READ
		 * check, retained if the will was. */
		rc = mosquitto_broker_publish_copy(NULL, ed->topic, (int)ed->payloadlen, ed->payload, ed->qos,
		                                   ed->retain, props);
	}
	if(rc) {
		mosquitto_property_free_all(&props);
		return rc;
	}
	pg->stats.wills_stamped++;
	return MOSQ_ERR_SUCCESS;
}

static uint32_t varint_bytes(uint32_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/* Encoded length of one property (identifier byte included). */
static uint32_t property_len(const mosquitto_property *p)
{
	int id = mosquitto_property_identifier(p), ident2, type;
	const char *name = mosquitto_property_identifier_to_string(id);
	uint32_t n = 0;
	if(!name || mosquitto_string_to_property_info(name, &ident2, &type)) {
		return 0;
	}
	switch(type) {
	case MQTT_PROP_TYPE_BYTE:
		return 2;
	case MQTT_PROP_TYPE_INT16:
		return 3;
	case MQTT_PROP_TYPE_INT32:
		return 5;
	case MQTT_PROP_TYPE_VARINT: {
		uint32_t v = 0;
		mosquitto_property_read_varint(p, id, &v, false);
		return 1 + varint_bytes(v);
	}
	case MQTT_PROP_TYPE_BINARY: {
		void *v = NULL;
		uint16_t len = 0;
		if(mosquitto_property_read_binary(p, id, &v, &len, false)) {
			n = 3u + len;
			prop_free(v);
		}
		return n;
	}
	case MQTT_PROP_TYPE_STRING: {
		char *v = NULL;
		if(mosquitto_property_read_string(p, id, &v, false)) {
			n = 3u + (uint32_t)strlen(v);
			prop_free(v);
		}
		return n;
	}
	case MQTT_PROP_TYPE_STRING_PAIR: {
		char *k = NULL, *v = NULL;
		if(mosquitto_property_read_string_pair(p, id, &k, &v, false)) {
			n = 5u + (uint32_t)strlen(k) + (uint32_t)strlen(v);
		}
		prop_free(k);
		prop_free(v);
		return n;
	}
	}
	return 0;
}

/* Size of the PUBLISH an MQTT 5 subscriber receives, as mosquitto 2.0.11
 * compares it with the subscriber's Maximum Packet Size: src/send_publish.c
 * (send__real_publish) adds topic, packet id, properties and payload, and
 * lib/packet_mosq.c (packet__check_oversize) adds the remaining-length bytes
 * but not the fixed header's first byte. */
static uint32_t publish_size(const struct mosquitto_evt_message *ed, const mosquitto_property *props)
{
	uint32_t proplen = 0;
	for(const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
		proplen += property_len(p);
	}
	uint32_t remaining = 2u + (uint32_t)strlen(ed->topic) + ed->payloadlen + (ed->qos ? 2u : 0u) + proplen +
	                     varint_bytes(proplen);
	return varint_bytes(remaining) + remaining;
}

/* plugin_opt_max_packet_size: count (and log once per 10 s) messages that
 * only the stamp pushes over it.  mosquitto drops a PUBLISH larger than a
 * subscriber's Maximum Packet Size (lib/send_publish.c, "Dropping too large
 * outgoing PUBLISH", NOTICE) and plugins cannot read that size — the READ
 * check carries no properties and no mosquitto_client_*() returns it — so
 * the operator declares the smallest one in use and the plugin, which knows
 * the stamped size here, reports the messages it makes undeliverable. */
static void check_oversize(pg_plugin_t *pg, const struct mosquitto_evt_message *ed, const char *identity,
                           uint32_t before, uint32_t after)
{
	if(after <= pg->max_packet || before > pg->max_packet) {
		return;
	}
	pg->stats.stamp_oversize++;
	pg->oversize_unlogged++;
	int64_t now = control_mono_ms();
	if(now - pg->oversize_logged_ms < 10000) {
		return;
	}
	char id[128], topic[256];
	mosquitto_log_printf(MOSQ_LOG_WARNING,
	                     PG_LOG_PREFIX "stamp makes messages too large: %llu messages went over "
	                     "plugin_opt_max_packet_size %u only by the provenance stamp, e.g. identity=\"%s\" "
	                     "topic=\"%s\" %u bytes (%u without the stamp); MQTT 5 subscribers with that Maximum "
	                     "Packet Size do not receive them (mosquitto drops them)",
	                     (unsigned long long)pg->oversize_unlogged, pg->max_packet, PG_SAFE(id, identity),
	                     PG_SAFE(topic, ed->topic), after, before);
	pg->oversize_unlogged = 0;
	pg->oversize_logged_ms = now;
}

int provenance_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	pg_plugin_t *pg = userdata;
	const char *identity = mosquitto_client_username(ed->client);
	mosquitto_property *out = NULL;
	int rc;

	if(!identity) {
		/* Cannot happen for a client the plugin admitted; never let an
		 * unstamped message through as if it were stamped. */
		return MOSQ_ERR_ACL_DENIED;
	}
	for(const mosquitto_property *p = ed->properties; p; p = mosquitto_property_next(p)) {
		if(is_ours(p)) {
			pg->stats.forged_properties++;
			continue;
		}
		rc = copy_property(p, &out);
		if(rc) {
			goto fail;
		}
	}
	uint32_t before = pg->max_packet ? publish_size(ed, out) : 0;
	rc = stamp(pg, identity, &out);
	if(rc) {
		goto fail;
	}
	if(pg->max_packet) {
		check_oversize(pg, ed, identity, before, publish_size(ed, out));
	}
	/* mosquitto >= 2.0.15 frees the list we replace (freeing it here too was
	 * a double free there); 2.0.11 leaves it to us.  scripts/compat runs
	 * tests/integration/test_plugin_operations.py against both. */
	if(!pg->broker_frees_replaced) {
		mosquitto_property_free_all(&ed->properties);
	}
	ed->properties = out;
	return MOSQ_ERR_SUCCESS;
fail:
	mosquitto_property_free_all(&out);
	mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "cannot stamp provenance (error %d): message refused", rc);
	return rc ? rc : MOSQ_ERR_NOMEM;
}
