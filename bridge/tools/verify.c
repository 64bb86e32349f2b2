/*
 * verify.c — plantgate-verify: the cloud team's check that bridged data came
 * from the plant, unchanged and in sequence (docs/integrity.md).
 *
 *   plantgate-verify --keys FILE_OR_DIR [--keys ...] [--site S] [--quiet]
 *       --broker HOST:PORT --cafile CA --cert C --key K --topic FILTER [--topic ...]
 *       [--protocol 5|3.1.1] [--client-id ID] [--count N] [--duration S] [--record FILE]
 *   plantgate-verify --keys FILE_OR_DIR [--site S] [--quiet] --file CAPTURE
 *
 * Subscribes to a cloud broker (MQTT 5 user properties, or the JSON wrapper
 * on any protocol) or reads a capture file (JSON lines, see envelope.h), and
 * prints one line per message: OK, DUPLICATE (verified, seq seen before),
 * TAMPERED (what differs, as far as can be told), UNKNOWN-KEY or UNSIGNED;
 * then a summary "N verified, T tampered, U unsigned, G gaps (missing seq
 * a-b), D duplicates".  Sequence ids are tracked per site (one signing bridge
 * per site; the bridge's queue sequence survives a key rotation).  Only
 * verified messages count for the sequence, so a forged one can neither
 * fill nor open a gap.
 *
 * Exit: 0 all verified (duplicates are normal: at-least-once delivery), 1 any
 * tampered, unsigned, unknown-key message or gap, 2 usage, key, file or
 * connection error.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "hmap.h"
#include "pg_version.h"
#include "util.h"

#define VERIFY_MAX_RECORDS 200000 /* verified messages remembered for "what differs" */
#define VERIFY_MAX_GAPS_SHOWN 20
#define VERIFY_MAX_TOPICS 32

/* A missing range of sequence ids [lo, hi]. */
typedef struct verify_range {
	int64_t lo, hi;
} verify_range_t;

/* The sequence seen from one site. */
typedef struct verify_stream {
	int64_t hi; /* highest verified seq */
	verify_range_t *missing;
	size_t n_missing;
} verify_stream_t;

/* What a verified message looked like, to say what an altered copy changed. */
typedef struct verify_record {
	unsigned char digest[32];
	char *cloud_topic, *device, *topic;
} verify_record_t;

typedef struct verify {
	envelope_keyset_t keys;
	const char *site; /* --site */
	bool quiet;
	FILE *record;
	hmap_t *streams; /* site -> verify_stream_t */
	hmap_t *records; /* "site\x1fseq" -> verify_record_t */
	uint64_t n_msgs, verified, tampered, unsigned_, unknown, duplicates;
	/* subscription state */
	int64_t count; /* stop after this many messages; 0 = no limit */
	bool connected, failed, subscribed;
	int pending_subs;
	char fail_reason[512];
	const char *topics[VERIFY_MAX_TOPICS];
	int n_topics;
	int protocol;
} verify_t;

static volatile sig_atomic_t verify_stop;

static void verify_on_signal(int sig)
{
	(void)sig;
	verify_stop = 1;
}

/* s as a log value: "quoted", control characters and invalid UTF-8 as '?',
 * '"' and '\\' escaped. */
static const char *verify_quote(const char *s, char *out, size_t outlen)
{
	char safe[512];
	util_log_safe(s, safe, sizeof(safe));
	size_t o = 0;
	if(outlen < 4) {
		return "\"\"";
	}
	out[o++] = '"';
	for(const char *p = safe; *p && o + 3 < outlen; p++) {
		if(*p == '"' || *p == '\\') {
			out[o++] = '\\';
		}
		out[o++] = *p;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

static void verify_stream_free(void *v)
{
	verify_stream_t *s = v;
	if(s) {
		free(s->missing);
		free(s);
	}
}

static void verify_record_free(void *v)
{
	verify_record_t *r = v;
	if(r) {
		free(r->cloud_topic);
		free(r->device);
		free(r->topic);
		free(r);
	}
}

static void verify_record_key(const char *site, int64_t seq, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s\x1f%lld", site, (long long)seq);
}

/* A verified message: account for its sequence id.  Returns true when it is
 * a duplicate. */
static bool verify_sequence(verify_t *v, const char *site, int64_t seq)
{
	verify_stream_t *s = hmap_get(v->streams, site);
	if(!s) {
		s = calloc(1, sizeof(*s));
		if(!s || hmap_put(v->streams, site, s)) {
			free(s);
			return false;
		}
		s->hi = seq;
		return false; /* the first we see: nothing before it is known */
	}
	if(seq > s->hi) {
		if(seq > s->hi + 1) {
			verify_range_t *n = realloc(s->missing, (s->n_missing + 1) * sizeof(*n));
			if(n) {
				s->missing = n;
				s->missing[s->n_missing].lo = s->hi + 1;
				s->missing[s->n_missing].hi = seq - 1;
				s->n_missing++;
			}
		}
		s->hi = seq;
		return false;
	}
	/* Late, or a duplicate: late fills a hole. */
	for(size_t i = 0; i < s->n_missing; i++) {
		verify_range_t *r = &s->missing[i];
		if(seq < r->lo || seq > r->hi) {
			continue;
		}
		if(r->lo == r->hi) {
			memmove(r, r + 1, (s->n_missing - i - 1) * sizeof(*r));
			s->n_missing--;
		} else if(seq == r->lo) {
			r->lo++;
		} else if(seq == r->hi) {
			r->hi--;
		} else {
			verify_range_t *n = realloc(s->missing, (s->n_missing + 1) * sizeof(*n));
			if(!n) {
				return false;
			}
			s->missing = n;
			r = &s->missing[i];
			memmove(r + 1, r, (s->n_missing - i) * sizeof(*r));
			r[0].hi = seq - 1;
			r[1].lo = seq + 1;
			s->n_missing++;
		}
		return false;
	}
	return true;
}

static void verify_remember(verify_t *v, const envelope_t *e, const char *cloud_topic,
                            const void *payload, size_t len)
{
	char key[600];
	if(hmap_count(v->records) >= VERIFY_MAX_RECORDS) {
		hmap_free(v->records); /* start over: bounded memory on a long run */
		v->records = hmap_new(verify_record_free);
		if(!v->records) {
			return;
		}
	}
	verify_record_t *r = calloc(1, sizeof(*r));
	if(!r || envelope_sha256(payload, len, r->digest)) {
		free(r);
		return;
	}
	r->cloud_topic = strdup(cloud_topic);
	r->device = strdup(e->device);
	r->topic = strdup(e->topic);
	verify_record_key(e->site, e->seq, key, sizeof(key));
	if(!r->cloud_topic || !r->device || !r->topic || hmap_put(v->records, key, r)) {
		verify_record_free(r);
	}
}

/* Why a signature failed, compared with the verified message of the same
 * site and seq when there was one. */
static void verify_what_differs(verify_t *v, const envelope_t *e, const char *cloud_topic,
                                const void *payload, size_t len, char *out, size_t outlen)
{
	char key[600], q1[600], q2[600];
	verify_record_key(e->site, e->seq, key, sizeof(key));
	const verify_record_t *r = v->records ? hmap_get(v->records, key) : NULL;
	if(!r) {
		util_strlcpy(out, "signature does not match the message as received: its payload, "
		                  "cloud topic or a signed property was changed, or it was signed "
		                  "by another key",
		             outlen);
		return;
	}
	unsigned char d[32];
	out[0] = '\0';
	size_t used = 0;
	if(envelope_sha256(payload, len, d) == 0 && memcmp(d, r->digest, 32) != 0) {
		used += (size_t)snprintf(out + used, outlen - used, "payload changed; ");
	}
	if(used < outlen && strcmp(cloud_topic, r->cloud_topic) != 0) {
		used += (size_t)snprintf(out + used, outlen - used, "cloud topic changed (signed '%s'); ",
		                         util_log_safe(r->cloud_topic, q1, sizeof(q1)));
	}
	if(used < outlen && strcmp(e->device, r->device) != 0) {
		used += (size_t)snprintf(out + used, outlen - used,
		                         "device changed (signed '%s', received '%s'); ",
		                         util_log_safe(r->device, q1, sizeof(q1)),
		                         util_log_safe(e->device, q2, sizeof(q2)));
	}
	if(used < outlen && strcmp(e->topic, r->topic) != 0) {
		used += (size_t)snprintf(out + used, outlen - used, "plant topic changed (signed '%s'); ",
		                         util_log_safe(r->topic, q1, sizeof(q1)));
	}
	if(used == 0) {
		util_strlcpy(out, "signature does not match: rx, ts or the signature itself changed",
		             outlen);
	} else if(used < outlen && used >= 2) {
		out[used - 2] = '\0';
	}
}

/* Check one received message and print its verdict. */
static void verify_message(verify_t *v, const char *cloud_topic, const void *payload, size_t len,
                           const envelope_prop_t *props, size_t nprops)
{
	char why[512] = "", q1[600], q2[600], q3[600], reason[1500];
	envelope_t e;
	v->n_msgs++;
	unsigned long long id = (unsigned long long)v->n_msgs;
	envelope_rc_t rc = envelope_from_props(&e, props, nprops, why, sizeof(why));
	const void *body = payload;
	size_t blen = len;
	if(rc == ENVELOPE_UNSIGNED) {
		char why2[512] = "";
		rc = envelope_from_json(&e, payload, len, why2, sizeof(why2));
		if(rc != ENVELOPE_UNSIGNED) {
			util_strlcpy(why, why2, sizeof(why));
		}
		body = e.payload;
		blen = e.payload_len;
	}
	verify_quote(cloud_topic, q1, sizeof(q1));
	if(rc == ENVELOPE_UNSIGNED) {
		v->unsigned_++;
		printf("UNSIGNED msg=%llu cloud_topic=%s reason=\"no integrity envelope (neither "
		       "plantgate-sig properties nor a JSON wrapper)\"\n",
		       id, q1);
		return;
	}
	if(rc != ENVELOPE_OK) {
		v->tampered++;
		printf("TAMPERED msg=%llu cloud_topic=%s reason=%s\n", id, q1,
		       verify_quote(why[0] ? why : envelope_strerror(rc), q2, sizeof(q2)));
		envelope_clear(&e);
		return;
	}
	verify_quote(e.site, q2, sizeof(q2));
	rc = envelope_verify(&e, &v->keys, cloud_topic, body, blen);
	if(rc == ENVELOPE_UNKNOWN_KEY) {
		v->unknown++;
		printf("UNKNOWN-KEY msg=%llu site=%s seq=%lld kid=%s cloud_topic=%s reason=\"signed "
		       "with a key that is not in --keys (a rotated key not yet added, or a forgery)\"\n",
		       id, q2, (long long)e.seq, e.kid, q1);
	} else if(rc != ENVELOPE_OK) {
		v->tampered++;
		verify_what_differs(v, &e, cloud_topic, body, blen, reason, sizeof(reason));
		printf("TAMPERED msg=%llu site=%s seq=%lld cloud_topic=%s reason=%s\n", id, q2,
		       (long long)e.seq, q1, verify_quote(reason, q3, sizeof(q3)));
	} else if(v->site && strcmp(v->site, e.site) != 0) {
		v->tampered++;
		printf("TAMPERED msg=%llu site=%s seq=%lld cloud_topic=%s reason=\"validly signed, but "
		       "by site %s, not the expected %s (--site)\"\n",
		       id, q2, (long long)e.seq, q1, q2, v->site);
	} else {
		v->verified++;
		bool dup = verify_sequence(v, e.site, e.seq);
		if(dup) {
			v->duplicates++;
		} else {
			verify_remember(v, &e, cloud_topic, body, blen);
		}
		if(!v->quiet || dup) {
			printf("%s msg=%llu site=%s seq=%lld device=%s topic=%s cloud_topic=%s kid=%s "
			       "rx=%lld ts=%lld\n",
			       dup ? "DUPLICATE" : "OK", id, q2, (long long)e.seq,
			       e.device[0] ? verify_quote(e.device, q3, sizeof(q3)) : "(none)",
			       verify_quote(e.topic, reason, sizeof(reason)), q1, e.kid,
			       (long long)e.rx_ms, (long long)e.ts_ms);
		}
	}
	envelope_clear(&e);
}

/* The summary line; returns the exit status. */
static int verify_summary(verify_t *v)
{
	char gaps[2048] = "";
	size_t used = 0, shown = 0, ngaps = 0, nsites = hmap_count(v->streams);
	size_t it = 0;
	const char *site;
	void *val;
	while(hmap_next(v->streams, &it, &site, &val)) {
		verify_stream_t *s = val;
		for(size_t i = 0; i < s->n_missing; i++, ngaps++) {
			if(shown >= VERIFY_MAX_GAPS_SHOWN || used + 100 >= sizeof(gaps)) {
				continue;
			}
			char one[200], q[200];
			if(s->missing[i].lo == s->missing[i].hi) {
				snprintf(one, sizeof(one), "%lld", (long long)s->missing[i].lo);
			} else {
				snprintf(one, sizeof(one), "%lld-%lld", (long long)s->missing[i].lo,
				         (long long)s->missing[i].hi);
			}
			used += (size_t)snprintf(gaps + used, sizeof(gaps) - used, "%s%s%s%s",
			                         shown ? ", " : "",
			                         nsites > 1 ? util_log_safe(site, q, sizeof(q)) : "",
			                         nsites > 1 ? ":" : "", one);
			shown++;
		}
	}
	char unknown[64] = "";
	if(v->unknown) {
		snprintf(unknown, sizeof(unknown), ", %llu unknown-key", (unsigned long long)v->unknown);
	}
	printf("%llu verified, %llu tampered, %llu unsigned%s, %zu gaps%s%s%s%s, %llu duplicates\n",
	       (unsigned long long)v->verified, (unsigned long long)v->tampered,
	       (unsigned long long)v->unsigned_, unknown, ngaps, ngaps ? " (missing seq " : "", gaps,
	       ngaps > shown ? ", ..." : "", ngaps ? ")" : "", (unsigned long long)v->duplicates);
	fflush(stdout);
	return v->tampered || v->unsigned_ || v->unknown || ngaps ? 1 : 0;
}

/* ------------------------------------------------------------- keys ---- */

static int verify_read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if(!f) {
		return -1;
	}
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for(;;) {
		if(n + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = cap <= (1u << 24) ? realloc(buf, cap) : NULL;
			if(!nb) {
				free(buf);
				fclose(f);
				errno = EFBIG;
				return -1;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if(got == 0) {
			break;
		}
	}
	int err = ferror(f);
	fclose(f);
	if(err) {
		free(buf);
		errno = EIO;
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

static int verify_add_key_file(verify_t *v, const char *path)
{
	char *pem;
	size_t len, added = 0;
	char err[512] = "";
	if(verify_read_file(path, &pem, &len)) {
		fprintf(stderr, "plantgate-verify: --keys %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t before = v->keys.n;
	envelope_rc_t rc = envelope_keyset_add_pem(&v->keys, pem, len, &added, err, sizeof(err));
	free(pem);
	if(rc != ENVELOPE_OK) {
		fprintf(stderr, "plantgate-verify: --keys %s: %s\n", path, err);
		return -1;
	}
	for(size_t i = before; i < v->keys.n; i++) {
		fprintf(stderr, "plantgate-verify: key %s (%s) from %s\n",
		        envelope_key_kid(v->keys.keys[i]),
		        envelope_alg_name(envelope_key_alg(v->keys.keys[i])), path);
	}
	return 0;
}

static bool verify_is_key_name(const char *name)
{
	size_t n = strlen(name);
	return name[0] != '.' && ((n > 4 && strcmp(name + n - 4, ".pem") == 0) ||
	                          (n > 4 && strcmp(name + n - 4, ".pub") == 0));
}

/* A file of one or more PEM public keys, or a directory of *.pem / *.pub. */
static int verify_load_keys(verify_t *v, const char *path)
{
	struct stat st;
	if(stat(path, &st) != 0) {
		fprintf(stderr, "plantgate-verify: --keys %s: %s\n", path, strerror(errno));
		return -1;
	}
	if(!S_ISDIR(st.st_mode)) {
		return verify_add_key_file(v, path);
	}
	struct dirent **names = NULL;
	int n = scandir(path, &names, NULL, alphasort);
	if(n < 0) {
		fprintf(stderr, "plantgate-verify: --keys %s: %s\n", path, strerror(errno));
		return -1;
	}
	int rc = 0, found = 0;
	for(int i = 0; i < n; i++) {
		char full[4096];
		if(!rc && verify_is_key_name(names[i]->d_name) &&
		   util_snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name) >= 0) {
			struct stat fst;
			if(stat(full, &fst) == 0 && S_ISREG(fst.st_mode)) {
				rc = verify_add_key_file(v, full);
				found++;
			}
		}
		free(names[i]);
	}
	free(names);
	if(!rc && !found) {
		fprintf(stderr, "plantgate-verify: --keys %s: no *.pem or *.pub file in the directory\n",
		        path);
		rc = -1;
	}
	return rc;
}

/* ------------------------------------------------------- capture file ---- */

static int verify_file(verify_t *v, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if(!f) {
		fprintf(stderr, "plantgate-verify: --file %s: %s\n", path, strerror(errno));
		return 2;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	while(!verify_stop && (n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while(n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
			line[--n] = '\0';
		}
		if(n == 0) {
			continue;
		}
		envelope_capture_t c;
		char why[256];
		if(envelope_capture_parse(&c, line, (size_t)n, why, sizeof(why)) != ENVELOPE_OK) {
			v->n_msgs++;
			v->tampered++;
			printf("TAMPERED msg=%llu reason=\"%s:%ld: capture line unreadable: %s\"\n",
			       (unsigned long long)v->n_msgs, path, lineno, why);
			continue;
		}
		verify_message(v, c.topic, c.payload, c.len, c.props, c.nprops);
		envelope_capture_clear(&c);
	}
	bool err = ferror(f);
	free(line);
	if(f != stdin) {
		fclose(f);
	}
	if(err) {
		fprintf(stderr, "plantgate-verify: --file %s: read error\n", path);
		return 2;
	}
	return -1; /* go on to the summary */
}

/* ---------------------------------------------------------- subscribe ---- */

static void verify_on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                              const mosquitto_property *props)
{
	verify_t *v = obj;
	if(rc) {
		snprintf(v->fail_reason, sizeof(v->fail_reason), "the broker refused the connection: %s",
		         v->protocol == 5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc));
		v->failed = true;
		return;
	}
	v->connected = true;
	v->pending_subs = v->n_topics;
	for(int i = 0; i < v->n_topics; i++) {
		int src = mosquitto_subscribe_v5(mosq, NULL, v->topics[i], 1, 0, NULL);
		if(src) {
			snprintf(v->fail_reason, sizeof(v->fail_reason), "subscribe %s: %s", v->topics[i],
			         mosquitto_strerror(src));
			v->failed = true;
		}
	}
}

static void verify_on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count,
                                const int *granted, const mosquitto_property *props)
{
	verify_t *v = obj;
	for(int i = 0; i < qos_count; i++) {
		if(granted[i] >= 0x80) {
			snprintf(v->fail_reason, sizeof(v->fail_reason),
			         "the broker refused a subscription (reason 0x%02x): check --topic and "
			         "this client's rights",
			         (unsigned)granted[i]);
			v->failed = true;
		}
	}
	if(--v->pending_subs <= 0) {
		v->subscribed = true;
		fprintf(stderr, "plantgate-verify: subscribed\n");
	}
}

static void verify_on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                                 const mosquitto_property *props)
{
	verify_t *v = obj;
	if(!v->failed && !verify_stop) {
		snprintf(v->fail_reason, sizeof(v->fail_reason), "connection lost: %s",
		         rc == MOSQ_ERR_KEEPALIVE ? "keepalive timeout"
		         : rc < 128               ? mosquitto_strerror(rc)
		                                  : mosquitto_reason_string(rc));
		v->failed = true;
	}
}

static void verify_on_message(struct mosquitto *mosq, void *obj,
                              const struct mosquitto_message *m, const mosquitto_property *props)
{
	verify_t *v = obj;
	envelope_prop_t *list = NULL;
	size_t n = 0;
	char *name = NULL, *value = NULL;
	bool oom = false;
	/* Every user property, however many: a repeated plantgate-* one must be
	 * seen wherever it is. */
	const mosquitto_property *p =
	    mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &value, false);
	while(p) {
		envelope_prop_t *nl = realloc(list, (n + 1) * sizeof(*list));
		if(!nl) {
			oom = true;
			free(name);
			free(value);
		} else {
			list = nl;
			list[n].name = name;
			list[n].value = value;
			n++;
		}
		name = value = NULL;
		p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, true);
	}
	if(oom) {
		/* Never judge a message on part of its properties. */
		snprintf(v->fail_reason, sizeof(v->fail_reason), "out of memory");
		v->failed = true;
		for(size_t i = 0; i < n; i++) {
			free((char *)list[i].name);
			free((char *)list[i].value);
		}
		free(list);
		return;
	}
	const void *payload = m->payload ? m->payload : "";
	size_t len = (size_t)m->payloadlen;
	if(v->record) {
		char *line;
		size_t llen;
		if(envelope_capture_format(m->topic, payload, len, list, n, &line, &llen) == ENVELOPE_OK) {
			fwrite(line, 1, llen, v->record);
			fputc('\n', v->record);
			fflush(v->record);
			free(line);
		}
	}
	verify_message(v, m->topic, payload, len, list, n);
	fflush(stdout);
	for(size_t i = 0; i < n; i++) {
		free((char *)list[i].name);
		free((char *)list[i].value);
	}
	free(list);
	if(v->count && (int64_t)v->n_msgs >= v->count) {
		verify_stop = 1;
	}
}

static int64_t verify_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct verify_conn {
	const char *host;
	int port;
	const char *cafile, *cert, *key, *client_id;
	int64_t duration_ms;
} verify_conn_t;

static int verify_subscribe(verify_t *v, const verify_conn_t *cn)
{
	int status = 2, rc;
	mosquitto_lib_init();
	struct mosquitto *mosq = mosquitto_new(cn->client_id, true, v);
	if(!mosq) {
		fprintf(stderr, "plantgate-verify: out of memory\n");
		goto out;
	}
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION,
	                     v->protocol == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
	mosquitto_connect_v5_callback_set(mosq, verify_on_connect);
	mosquitto_subscribe_v5_callback_set(mosq, verify_on_subscribe);
	mosquitto_disconnect_v5_callback_set(mosq, verify_on_disconnect);
	mosquitto_message_v5_callback_set(mosq, verify_on_message);
	rc = mosquitto_tls_set(mosq, cn->cafile, NULL, cn->cert, cn->key, NULL);
	if(!rc) {
		rc = mosquitto_tls_opts_set(mosq, 1, "tlsv1.2", NULL);
	}
	if(rc) {
		fprintf(stderr, "plantgate-verify: TLS setup: %s (check --cafile, --cert, --key)\n",
		        mosquitto_strerror(rc));
		goto out;
	}
	rc = mosquitto_connect_bind_v5(mosq, cn->host, cn->port, 30, NULL, NULL);
	if(rc) {
		fprintf(stderr, "plantgate-verify: cannot connect to %s:%d: %s\n", cn->host, cn->port,
		        rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		goto out;
	}
	int64_t start = verify_now_ms();
	while(!verify_stop && !v->failed) {
		if(cn->duration_ms && verify_now_ms() - start >= cn->duration_ms) {
			break;
		}
		rc = mosquitto_loop(mosq, 100, 1);
		if(rc && !v->failed && !verify_stop) {
			snprintf(v->fail_reason, sizeof(v->fail_reason), "%s",
			         rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
			v->failed = true;
		}
		if(!v->connected && !v->failed && verify_now_ms() - start > 15000) {
			snprintf(v->fail_reason, sizeof(v->fail_reason), "no CONNACK within 15 s");
			v->failed = true;
		}
	}
	if(v->failed) {
		fprintf(stderr, "plantgate-verify: %s:%d: %s\n", cn->host, cn->port, v->fail_reason);
		if(v->n_msgs) {
			verify_summary(v);
		}
		goto out;
	}
	mosquitto_disconnect_v5(mosq, 0, NULL);
	status = -1; /* go on to the summary */
out:
	mosquitto_destroy(mosq);
	mosquitto_lib_cleanup();
	return status;
}

/* ---------------------------------------------------------------- main ---- */

static void verify_usage(FILE *f)
{
	fprintf(f,
	        "usage: plantgate-verify --keys FILE_OR_DIR [--keys ...] [--site S] [--quiet]\n"
	        "         (--broker HOST:PORT --cafile CA --cert CRT --key KEY --topic FILTER "
	        "[--topic ...]\n"
	        "          [--protocol 5|3.1.1] [--client-id ID] [--count N] [--duration SECONDS]\n"
	        "          [--record FILE]\n"
	        "         | --file CAPTURE)\n"
	        "\n"
	        "Checks the integrity envelope of bridged messages (docs/integrity.md).\n"
	        "  --keys       PEM public key(s) of the plant's bridge: a file with one or more\n"
	        "               keys, or a directory of *.pem / *.pub (all keys of a rotation)\n"
	        "  --site       only accept messages signed for this site\n"
	        "  --broker     subscribe to the cloud broker (TLS, client certificate)\n"
	        "  --count      stop after N messages;  --duration  stop after SECONDS\n"
	        "  --record     also write every received message to FILE (capture format)\n"
	        "  --file       read captured messages (JSON lines; - for stdin)\n"
	        "  --quiet      print only problems and the summary\n"
	        "  --version    print the version and exit\n"
	        "Exit: 0 all verified, 1 tampered/unsigned/unknown-key/gap, 2 usage or connection "
	        "error.\n");
}

int main(int argc, char **argv)
{
	static verify_t v;
	verify_conn_t cn = {.client_id = NULL, .port = 8883};
	const char *keys[16];
	int n_keys = 0;
	const char *broker = NULL, *file = NULL, *record = NULL;
	int64_t duration_s = 0;
	v.protocol = 5;
	static const struct option opts[] = {
	    {"keys", required_argument, NULL, 'k'},     {"site", required_argument, NULL, 's'},
	    {"broker", required_argument, NULL, 'b'},   {"cafile", required_argument, NULL, 'C'},
	    {"cert", required_argument, NULL, 'c'},     {"key", required_argument, NULL, 'K'},
	    {"topic", required_argument, NULL, 't'},    {"count", required_argument, NULL, 'n'},
	    {"duration", required_argument, NULL, 'd'}, {"file", required_argument, NULL, 'f'},
	    {"record", required_argument, NULL, 'r'},   {"client-id", required_argument, NULL, 'i'},
	    {"protocol", required_argument, NULL, 'p'}, {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},           {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0}};
	int opt;
	while((opt = getopt_long(argc, argv, "k:s:b:t:n:d:f:r:i:p:qh", opts, NULL)) != -1) {
		switch(opt) {
		case 'k':
			if(n_keys == 16) {
				fprintf(stderr, "plantgate-verify: at most 16 --keys\n");
				return 2;
			}
			keys[n_keys++] = optarg;
			break;
		case 's':
			v.site = optarg;
			break;
		case 'b':
			broker = optarg;
			break;
		case 'C':
			cn.cafile = optarg;
			break;
		case 'c':
			cn.cert = optarg;
			break;
		case 'K':
			cn.key = optarg;
			break;
		case 't':
			if(v.n_topics == VERIFY_MAX_TOPICS) {
				fprintf(stderr, "plantgate-verify: at most %d --topic\n", VERIFY_MAX_TOPICS);
				return 2;
			}
			v.topics[v.n_topics++] = optarg;
			break;
		case 'n':
			if(util_parse_i64(optarg, 1, INT64_MAX, &v.count)) {
				fprintf(stderr, "plantgate-verify: --count %s: expected a positive number\n",
				        optarg);
				return 2;
			}
			break;
		case 'd':
			if(util_parse_i64(optarg, 1, 100000000, &duration_s)) {
				fprintf(stderr, "plantgate-verify: --duration %s: expected seconds\n", optarg);
				return 2;
			}
			break;
		case 'f':
			file = optarg;
			break;
		case 'r':
			record = optarg;
			break;
		case 'i':
			cn.client_id = optarg;
			break;
		case 'p':
			if(strcmp(optarg, "5") == 0) {
				v.protocol = 5;
			} else if(strcmp(optarg, "3.1.1") == 0) {
				v.protocol = 4;
			} else {
				fprintf(stderr, "plantgate-verify: --protocol %s: expected 5 or 3.1.1\n", optarg);
				return 2;
			}
			break;
		case 'q':
			v.quiet = true;
			break;
		case 'h':
			verify_usage(stdout);
			return 0;
		case 'V':
			printf("plantgate-verify %s\n", PG_VERSION);
			return 0;
		default:
			verify_usage(stderr);
			return 2;
		}
	}
	const char *usage_err = NULL;
	if(optind != argc) {
		usage_err = "unexpected argument";
	} else if(!n_keys) {
		usage_err = "--keys is required: the plant's public signing key(s)";
	} else if(!broker == !file) {
		usage_err = "give either --broker (subscribe) or --file (a capture)";
	} else if(file && (v.n_topics || record || v.count || duration_s || cn.cafile)) {
		usage_err = "--topic, --record, --count, --duration and --cafile go with --broker";
	} else if(broker && (!cn.cafile || !cn.cert || !cn.key || !v.n_topics)) {
		usage_err = "--broker needs --cafile, --cert, --key and at least one --topic";
	}
	if(usage_err) {
		fprintf(stderr, "plantgate-verify: %s\n", usage_err);
		verify_usage(stderr);
		return 2;
	}
	if(broker) {
		static char host[256];
		const char *colon = strrchr(broker, ':');
		int64_t port = 8883;
		if(colon) {
			if(util_parse_i64(colon + 1, 1, 65535, &port) ||
			   (size_t)(colon - broker) >= sizeof(host) || colon == broker) {
				fprintf(stderr, "plantgate-verify: --broker %s: expected HOST:PORT\n", broker);
				return 2;
			}
			memcpy(host, broker, (size_t)(colon - broker));
			host[colon - broker] = '\0';
		} else if(util_strlcpy(host, broker, sizeof(host))) {
			fprintf(stderr, "plantgate-verify: --broker %s: host name too long\n", broker);
			return 2;
		}
		cn.host = host;
		cn.port = (int)port;
		cn.duration_ms = duration_s * 1000;
	}

	int status = 2;
	v.streams = hmap_new(verify_stream_free);
	v.records = hmap_new(verify_record_free);
	if(!v.streams || !v.records) {
		fprintf(stderr, "plantgate-verify: out of memory\n");
		goto out;
	}
	for(int i = 0; i < n_keys; i++) {
		if(verify_load_keys(&v, keys[i])) {
			goto out;
		}
	}
	if(record) {
		v.record = fopen(record, "a");
		if(!v.record) {
			fprintf(stderr, "plantgate-verify: --record %s: %s\n", record, strerror(errno));
			goto out;
		}
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = verify_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	status = file ? verify_file(&v, file) : verify_subscribe(&v, &cn);
	if(status < 0) {
		status = verify_summary(&v);
	}
out:
	if(v.record) {
		fclose(v.record);
	}
	hmap_free(v.streams);
	hmap_free(v.records);
	envelope_keyset_free(&v.keys);
	return status;
}
