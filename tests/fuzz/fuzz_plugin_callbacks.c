/*
 * fuzz_plugin_callbacks.c — libFuzzer target for the plugin's glue
 * (plugin/plugin.c, auth.c, acl.c, control.c, provenance.c): the input is a
 * script of broker events — connects with one of a set of certificates
 * (devices, hostile names, a CA, none), client ids, protocol versions and
 * session kinds, disconnects, publishes with random (and forged) properties,
 * subscribes, deliveries, wills, reloads to one of three policies (one of
 * them broken), ticks, session expiries — run in random order against one
 * plugin instance made per input.
 *
 * The plugin calls broker functions (mosquitto_client_*, set_username, kick,
 * broker_publish_copy, callback registration, logging).  This file supplies
 * a small fake of exactly those — the one place a fake broker is acceptable:
 * the integration tests use the real one.  The fake also checks what the
 * real broker could not survive or what would break a promise, and aborts:
 *  - the plugin refuses a session that has no connection during the reload
 *    pass (mosquitto 2.0.11 then lists it twice for expiry and crashes);
 *  - the plugin kicks a client id whose session has no connection (same);
 *  - a message leaves the MESSAGE callback, or a will leaves through
 *    broker_publish_copy, without exactly one plantgate-device equal to the
 *    sender's identity;
 *  - a connection is admitted with a certificate that is a CA, or whose
 *    identity differs from the username the plugin set.
 * ASan/UBSan catch the rest (use after free of records, leaks at cleanup).
 */
#define _GNU_SOURCE /* provenance.c, included below, uses dladdr */
#include <openssl/evp.h>
#include <stdarg.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The plugin's glue, compiled into this target (its callbacks are static or
 * hidden in the .so). */
#include "../../plugin/acl.c"
#include "../../plugin/auth.c"
#include "../../plugin/control.c"
#include "../../plugin/plugin.c"
#include "../../plugin/provenance.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------ fake broker */

struct mosquitto {
	char *id;
	char *username;
	char *address; /* NULL: restored from persistence */
	X509 *cert;    /* NULL: offline, or connected without a certificate */
	int protocol;  /* 3, 4 or 5 */
	bool clean;
	bool connected;
	bool admitted;
};

#define FZ_CTX 8
static struct {
	struct mosquitto ctx[FZ_CTX];
	MOSQ_FUNC_generic_callback cb[MOSQ_EVT_DISCONNECT + 1];
	void *userdata;
	bool in_reload;
	const struct mosquitto *will_ctx; /* whose will is being checked */
} fz;

/* Silent, unless PG_FUZZ_LOG is set (to see why an input did what it did). */
void mosquitto_log_printf(int level, const char *fmt, ...)
{
	(void)level;
	if(getenv("PG_FUZZ_LOG")) {
		va_list ap;
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
}

void mosquitto_free(void *mem)
{
	free(mem);
}

const char *mosquitto_client_address(const struct mosquitto *c)
{
	return c ? c->address : NULL;
}

bool mosquitto_client_clean_session(const struct mosquitto *c)
{
	return c ? c->clean : true;
}

const char *mosquitto_client_id(const struct mosquitto *c)
{
	return c ? c->id : NULL;
}

void *mosquitto_client_certificate(const struct mosquitto *c)
{
	if(!c || !c->cert) {
		return NULL;
	}
	X509_up_ref(c->cert);
	return c->cert;
}

int mosquitto_client_protocol_version(const struct mosquitto *c)
{
	return c ? c->protocol : 0;
}

const char *mosquitto_client_username(const struct mosquitto *c)
{
	return c ? c->username : NULL;
}

int mosquitto_set_username(struct mosquitto *c, const char *username)
{
	char *u = username ? strdup(username) : NULL;
	if(username && !u) {
		return MOSQ_ERR_NOMEM;
	}
	free(c->username);
	c->username = u;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_callback_register(mosquitto_plugin_id_t *id, int event, MOSQ_FUNC_generic_callback cb,
                                const void *event_data, void *userdata)
{
	(void)id;
	(void)event_data;
	if(event < 0 || event > MOSQ_EVT_DISCONNECT) {
		return MOSQ_ERR_INVAL;
	}
	fz.cb[event] = cb;
	fz.userdata = userdata;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_callback_unregister(mosquitto_plugin_id_t *id, int event, MOSQ_FUNC_generic_callback cb,
                                  const void *event_data)
{
	(void)id;
	(void)cb;
	(void)event_data;
	if(event >= 0 && event <= MOSQ_EVT_DISCONNECT) {
		fz.cb[event] = NULL;
	}
	return MOSQ_ERR_SUCCESS;
}

/* Exactly one plantgate-device, equal to `identity`. */
static void check_stamp(const mosquitto_property *props, const char *identity)
{
	int n = 0;
	for(const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
		char *k = NULL, *v = NULL;
		if(mosquitto_property_identifier(p) == MQTT_PROP_USER_PROPERTY &&
		   mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &k, &v, false) &&
		   !strcmp(k, PG_PROP_DEVICE)) {
			if(!identity || strcmp(v, identity)) {
				abort(); /* a stamp that is not the sender's */
			}
			n++;
		}
		free(k);
		free(v);
	}
	if(n != 1) {
		abort();
	}
}

int mosquitto_broker_publish_copy(const char *clientid, const char *topic, int payloadlen, const void *payload,
                                  int qos, bool retain, mosquitto_property *properties)
{
	(void)clientid;
	(void)retain;
	if(!topic || payloadlen < 0 || (payloadlen > 0 && !payload) || qos < 0 || qos > 2) {
		return MOSQ_ERR_INVAL;
	}
	/* $SYS counters carry no stamp; a will must carry its sender's. */
	if(strncmp(topic, "$SYS/", 5) != 0) {
		if(!fz.will_ctx) {
			abort(); /* the plugin published a device message outside a will check */
		}
		check_stamp(properties, fz.will_ctx->username);
	}
	mosquitto_property_free_all(&properties);
	return MOSQ_ERR_SUCCESS;
}

static struct mosquitto *by_id(const char *id)
{
	for(int i = 0; i < FZ_CTX; i++) {
		if(fz.ctx[i].id && !strcmp(fz.ctx[i].id, id)) {
			return &fz.ctx[i];
		}
	}
	return NULL;
}

static void ctx_free(struct mosquitto *c)
{
	free(c->id);
	free(c->username);
	free(c->address);
	X509_free(c->cert);
	memset(c, 0, sizeof(*c));
}

static int ev_acl(struct mosquitto *c, int access, const char *topic, uint32_t len, uint8_t qos, bool retain);

/* The will check mosquitto makes (src/context.c, context__send_will). */
static void send_will(struct mosquitto *c)
{
	fz.will_ctx = c;
	ev_acl(c, MOSQ_ACL_WRITE, "plant/hq/l1/sensor-1/status", 4, 1, false);
	fz.will_ctx = NULL;
}

static void disconnect(struct mosquitto *c)
{
	struct mosquitto_evt_disconnect ed = {.client = c, .reason = 0};
	if(!c->connected) {
		return;
	}
	fz.cb[MOSQ_EVT_DISCONNECT](MOSQ_EVT_DISCONNECT, &ed, fz.userdata);
	c->connected = false;
	X509_free(c->cert);
	c->cert = NULL;
	send_will(c);
}

int mosquitto_kick_client_by_clientid(const char *clientid, bool with_will)
{
	(void)with_will;
	struct mosquitto *c = clientid ? by_id(clientid) : NULL;
	if(!c) {
		return MOSQ_ERR_NOT_FOUND;
	}
	if(!c->connected) {
		abort(); /* disconnecting an offline session twice crashes mosquitto 2.0.11 */
	}
	disconnect(c);
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------- fixtures */

static EVP_PKEY *fz_key;
static X509 *fz_ca;
#define FZ_CERTS 9
static X509 *fz_certs[FZ_CERTS];
static char fz_dir[64], fz_policy[128], fz_revoked[128];

static const char *const fz_ids[] = {"sensor-1", "sensor-2", "sensor-1-a", "eng-1", "cam-1", "cam-1-2",
                                     "sensor-9", "x y", "hmi-1", "+"};

static X509 *fz_cert(const char *cn, const char *site, const char *ext_nid_value, int nid, long serial)
{
	X509 *c = X509_new();
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), 86400L * 365);
	X509_NAME *n = X509_get_subject_name(c);
	if(site) {
		X509_NAME_add_entry_by_txt(n, "L", MBSTRING_UTF8, (const unsigned char *)site, -1, -1, 0);
		X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8, (const unsigned char *)"l1", -1, -1, 0);
	}
	if(cn) {
		X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	}
	X509_set_issuer_name(c, fz_ca ? X509_get_subject_name(fz_ca) : n);
	X509_set_pubkey(c, fz_key);
	if(ext_nid_value) {
		X509V3_CTX v3;
		X509V3_set_ctx(&v3, fz_ca ? fz_ca : c, c, NULL, NULL, 0);
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, ext_nid_value);
		if(e) {
			X509_add_ext(c, e, -1);
			X509_EXTENSION_free(e);
		}
	}
	X509_sign(c, fz_key, EVP_sha256());
	return c;
}

static const char fz_policy_a[] = "default deny\n"
                                  "unknown-devices refuse\n"
                                  "role sensor\n"
                                  "  limit rate<=5/s\n"
                                  "  publish plant/%{site}/%{line}/%{id}/#\n"
                                  "  subscribe plant/%{site}/%{line}/%{id}/config\n"
                                  "  read plant/%{site}/%{line}/%{id}/config\n"
                                  "end\n"
                                  "role eng\n"
                                  "  publish plant/+/+/+/config\n"
                                  "  subscribe plant/#\n"
                                  "  read plant/#\n"
                                  "end\n"
                                  "device sensor-1 role sensor site=hq line=l1\n"
                                  "device sensor-2 role sensor\n"
                                  "device sensor-9 role sensor site=hq line=l1\n"
                                  "device eng-1 role eng\n"
                                  "devices matching cam-* role sensor\n";
static const char fz_policy_b[] = "default deny\n"
                                  "unknown-devices role eng\n"
                                  "role eng\n"
                                  "  publish plant/#\n"
                                  "  subscribe plant/+/+/+/config\n"
                                  "  read plant/#\n"
                                  "end\n"
                                  "device sensor-1 role eng\n";
static const char fz_policy_bad[] = "default deny\nrole x\n  publish a/#\n";

static void fz_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if(!f) {
		abort();
	}
	fputs(text, f);
	fclose(f);
}

static void fz_setup(void)
{
	if(fz_key) {
		return;
	}
	fz_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	fz_ca = fz_cert("fuzz CA", NULL, "critical,CA:TRUE", NID_basic_constraints, 1);
	fz_certs[0] = fz_cert("sensor-1", "hq", NULL, 0, 2);
	fz_certs[1] = fz_cert("sensor-2", "hq", NULL, 0, 3);
	fz_certs[2] = fz_cert("eng-1", NULL, NULL, 0, 4);
	fz_certs[3] = fz_cert("cam-1", "hq", NULL, 0, 5);
	fz_certs[4] = fz_cert("sensor-9", "hq", NULL, 0, 6);
	fz_certs[5] = fz_cert("x y", NULL, NULL, 0, 7);
	fz_certs[6] = fz_cert("sensor-ca", NULL, "critical,CA:TRUE", NID_basic_constraints, 8);
	fz_certs[7] = fz_cert(NULL, NULL, NULL, 0, 9);
	fz_certs[8] = fz_cert("hmi-1", NULL, "critical,digitalSignature,keyCertSign", NID_key_usage, 10);
	snprintf(fz_dir, sizeof(fz_dir), "/tmp/pg-fuzz-plugin-XXXXXX");
	if(!mkdtemp(fz_dir)) {
		abort();
	}
	snprintf(fz_policy, sizeof(fz_policy), "%s/policy.conf", fz_dir);
	snprintf(fz_revoked, sizeof(fz_revoked), "%s/revoked.txt", fz_dir);
}

/* ------------------------------------------------------------- the script */

typedef struct {
	const uint8_t *p;
	size_t n;
} fz_in_t;

static uint8_t take(fz_in_t *in)
{
	if(!in->n) {
		return 0;
	}
	in->n--;
	return *in->p++;
}

static void take_str(fz_in_t *in, char *out, size_t outlen)
{
	static const char alphabet[] = "plant/hq/l1/sensor-1/config#+$ab\"\\ ";
	size_t len = take(in) % (outlen - 1), o = 0;
	while(o < len && in->n) {
		uint8_t b = take(in);
		out[o++] = b < 200 ? alphabet[b % (sizeof(alphabet) - 1)] : (char)b;
	}
	out[o] = '\0';
}

static const char *const fz_topics[] = {"plant/hq/l1/sensor-1/config", "plant/hq/l1/sensor-1/telemetry/t",
                                        "plant/hq/l1/cam-1/x", "plant/#", "$share/g/plant/+/+/+/config",
                                        "$SYS/x", "$CONTROL/dynamic-security/v1", "plant/hq/l1/+/config"};

static int ev_acl(struct mosquitto *c, int access, const char *topic, uint32_t len, uint8_t qos, bool retain)
{
	static const char payload[64];
	struct mosquitto_evt_acl_check ed = {.client = c, .topic = topic, .payload = payload, .access = access,
	                                     .payloadlen = len % sizeof(payload), .qos = qos, .retain = retain};
	return fz.cb[MOSQ_EVT_ACL_CHECK](MOSQ_EVT_ACL_CHECK, &ed, fz.userdata);
}

static int basic_auth(struct mosquitto *c)
{
	struct mosquitto_evt_basic_auth ed = {.client = c, .username = c->username, .password = NULL};
	return fz.cb[MOSQ_EVT_BASIC_AUTH](MOSQ_EVT_BASIC_AUTH, &ed, fz.userdata);
}

static void op_connect(fz_in_t *in)
{
	uint8_t b = take(in);
	const char *cid = fz_ids[b % (sizeof(fz_ids) / sizeof(fz_ids[0]))];
	int certi = take(in) % (FZ_CERTS + 1);
	struct mosquitto *old = by_id(cid), *c = NULL;
	for(int i = 0; i < FZ_CTX && !c; i++) {
		if(!fz.ctx[i].id) {
			c = &fz.ctx[i];
		}
	}
	if(!c) {
		return;
	}
	c->id = strdup(cid);
	c->address = strdup("127.0.0.1");
	c->cert = certi < FZ_CERTS ? fz_certs[certi] : NULL;
	if(c->cert) {
		X509_up_ref(c->cert);
	}
	c->protocol = 3 + take(in) % 3;
	c->clean = take(in) & 1;
	if(take(in) & 1) {
		c->username = strdup("claimed-name");
	}
	int rc = basic_auth(c);
	if(rc != MOSQ_ERR_SUCCESS) {
		ctx_free(c); /* mosquitto drops a refused connection */
		return;
	}
	if(certi == 6 || certi == 8 || certi == 5 || certi == 7 || certi == FZ_CERTS) {
		abort(); /* a CA, an illegal identity, no CN or no certificate got in */
	}
	c->connected = true;
	c->admitted = true;
	if(old) { /* takeover (src/handle_connect.c, connect__on_authorised) */
		if(old->connected) {
			send_will(old);
			struct mosquitto_evt_disconnect ed = {.client = old};
			fz.cb[MOSQ_EVT_DISCONNECT](MOSQ_EVT_DISCONNECT, &ed, fz.userdata);
		}
		ctx_free(old);
	}
}

static struct mosquitto *pick(fz_in_t *in)
{
	struct mosquitto *c = &fz.ctx[take(in) % FZ_CTX];
	return c->id ? c : NULL;
}

static void op_publish(fz_in_t *in)
{
	struct mosquitto *c = pick(in);
	if(!c || !c->connected) {
		return;
	}
	char topic[48];
	const char *t = fz_topics[take(in) % (sizeof(fz_topics) / sizeof(fz_topics[0]))];
	if(take(in) & 1) {
		take_str(in, topic, sizeof(topic));
		t = topic;
	}
	uint8_t qos = take(in) % 3, len = take(in);
	if(ev_acl(c, MOSQ_ACL_WRITE, t, len, qos, len & 1) != MOSQ_ERR_SUCCESS) {
		return;
	}
	mosquitto_property *props = NULL;
	int nprops = take(in) % 5;
	for(int i = 0; i < nprops; i++) {
		char v[24];
		take_str(in, v, sizeof(v));
		switch(take(in) % 4) {
		case 0:
			mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, PG_PROP_DEVICE, v);
			break;
		case 1:
			mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, PG_PROP_RECEIVED, v);
			break;
		case 2:
			mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, v);
			break;
		default:
			mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, (uint32_t)len);
			break;
		}
	}
	static char payload[256];
	struct mosquitto_evt_message ed = {.client = c, .topic = (char *)t, .payload = payload,
	                                   .properties = props, .payloadlen = len, .qos = qos};
	if(fz.cb[MOSQ_EVT_MESSAGE](MOSQ_EVT_MESSAGE, &ed, fz.userdata) == MOSQ_ERR_SUCCESS) {
		check_stamp(ed.properties, c->username);
	}
	mosquitto_property_free_all(&ed.properties);
}

static void op_reload(fz_in_t *in)
{
	uint8_t b = take(in);
	fz_write(fz_policy, b % 3 == 0 ? fz_policy_a : b % 3 == 1 ? fz_policy_b : fz_policy_bad);
	fz_write(fz_revoked, (b & 4) ? "identity sensor-9\nidentity sensor-2\n" : "# nothing revoked\n");
	struct mosquitto_evt_reload er = {0};
	fz.cb[MOSQ_EVT_RELOAD](MOSQ_EVT_RELOAD, &er, fz.userdata);
	/* src/security_default.c, mosquitto_security_apply_default: BASIC_AUTH for
	 * every context, offline ones included. */
	for(int i = 0; i < FZ_CTX; i++) {
		struct mosquitto *c = &fz.ctx[i];
		if(!c->id) {
			continue;
		}
		if(basic_auth(c) != MOSQ_ERR_SUCCESS) {
			if(!c->connected) {
				abort(); /* refusing an offline session crashes mosquitto 2.0.11 */
			}
			disconnect(c);
		}
	}
	struct mosquitto_evt_tick et = {0};
	fz.cb[MOSQ_EVT_TICK](MOSQ_EVT_TICK, &et, fz.userdata);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in_t in = {data, size};
	fz_setup();
	fz_write(fz_policy, fz_policy_a);
	fz_write(fz_revoked, "# nothing revoked\n");
	struct mosquitto_opt opts[] = {
		{"policy", fz_policy},           {"revocation_file", fz_revoked}, {"audit_log", "/dev/null"},
		{"clientid", "prefix"},          {"rate_messages", "20"},         {"flood_disconnect", "5"},
		{"stamp_received", "true"},      {"max_packet_size", "100"},      {"offline_sessions", "3"},
		{"sys_interval", "0"},
	};
	void *ud = NULL;
	memset(&fz, 0, sizeof(fz));
	if(mosquitto_plugin_init(NULL, &ud, opts, (int)(sizeof(opts) / sizeof(opts[0]))) != MOSQ_ERR_SUCCESS) {
		abort();
	}
	for(int steps = 0; in.n && steps < 200; steps++) {
		struct mosquitto *c;
		char topic[48];
		switch(take(&in) % 9) {
		case 0:
			op_connect(&in);
			break;
		case 1:
			if((c = pick(&in)) != NULL) {
				disconnect(c);
				if(c->clean && c->protocol != 5) {
					ctx_free(c); /* no session left */
				}
			}
			break;
		case 2:
			op_publish(&in);
			break;
		case 3:
			if((c = pick(&in)) != NULL && c->connected) {
				take_str(&in, topic, sizeof(topic));
				ev_acl(c, MOSQ_ACL_SUBSCRIBE, take(&in) & 1 ? topic : fz_topics[take(&in) % 8], 0, take(&in) % 3,
				       false);
			}
			break;
		case 4:
			if((c = pick(&in)) != NULL) { /* a delivery, also to an offline session */
				ev_acl(c, MOSQ_ACL_READ, fz_topics[take(&in) % 8], take(&in), take(&in) % 3, false);
			}
			break;
		case 5:
			op_reload(&in);
			break;
		case 6: {
			struct mosquitto_evt_tick et = {0};
			fz.cb[MOSQ_EVT_TICK](MOSQ_EVT_TICK, &et, fz.userdata);
			break;
		}
		case 7:
			if((c = pick(&in)) != NULL && !c->connected) {
				if(take(&in) & 1) {
					send_will(c); /* after its will delay */
				}
				ctx_free(c); /* session expiry: the plugin is not told */
			}
			break;
		default:
			if((c = pick(&in)) != NULL && !c->connected && !c->address) {
				ctx_free(c);
			} else if(c && !c->connected) {
				/* as if restored from persistence: no address */
				free(c->address);
				c->address = NULL;
			}
			break;
		}
	}
	mosquitto_plugin_cleanup(ud, opts, (int)(sizeof(opts) / sizeof(opts[0])));
	for(int i = 0; i < FZ_CTX; i++) {
		ctx_free(&fz.ctx[i]);
	}
	return 0;
}
