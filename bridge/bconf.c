/*
 * bconf.c — table-driven parser and checker of the bridge configuration
 * (see bconf.h).  A row per key says how many arguments it takes, how to
 * convert them and where the value goes; adding a key is adding a row.
 */
#include "bconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blog.h"
#include "conf.h"
#include "topic.h"
#include "tunproto.h"
#include "util.h"

#define BCONF_MAX_ERRORS 20

enum bconf_type { T_STRING, T_INT, T_DURATION, T_SIZE, T_BOOL, T_ENUM, T_PROFILE, T_FORWARD };

typedef struct bconf_enum {
	const char *name;
	int64_t value;
} bconf_enum_t;

static const bconf_enum_t tls_versions[] = {
    {"1.2", 12}, {"1.3", 13}, {"tlsv1.2", 12}, {"tlsv1.3", 13}, {NULL, 0}};
static const bconf_enum_t protocols[] = {{"5", 5}, {"3.1.1", 4}, {NULL, 0}};
static const bconf_enum_t transports[] = {
    {"tls", BCONF_TRANSPORT_TLS}, {"wss", BCONF_TRANSPORT_WSS}, {NULL, 0}};
static const bconf_enum_t when_full[] = {{"backpressure", BCONF_FULL_BACKPRESSURE},
                                         {"drop-oldest", BCONF_FULL_DROP_OLDEST},
                                         {NULL, 0}};
static const bconf_enum_t sign_algs[] = {{"auto", BCONF_SIGN_AUTO},
                                         {"ed25519", BCONF_SIGN_ED25519},
                                         {"ecdsa-p256", BCONF_SIGN_ECDSA_P256},
                                         {NULL, 0}};
/* Named values a T_DURATION row takes besides durations. */
static const bconf_enum_t commit_intervals[] = {{"auto", BCONF_COMMIT_AUTO}, {NULL, 0}};
static const bconf_enum_t log_levels[] = {{"debug", BLOG_DEBUG},
                                          {"info", BLOG_INFO},
                                          {"warn", BLOG_WARN},
                                          {"error", BLOG_ERROR},
                                          {NULL, 0}};

/* The cloud profiles (bconf.h).  Sources, cited in docs/bridge.md:
 * AWS IoT Core "AWS IoT Core message broker and protocol limits and quotas";
 * Azure IoT Hub "Communicate with an IoT hub using the MQTT protocol" and
 * "IoT Hub quotas and throttling".  A profile's row is all there is to it:
 * cloud_profile names it, and its index is the value bconf_t keeps. */
static const bconf_profile_desc_t bconf_profiles[] = {
    {.name = "generic", .cloud = "the cloud broker",
     .max_payload = 256u * 1024 * 1024, .max_slashes = -1, .ws_path = "/mqtt"},
    {.name = "aws-iot", .cloud = "AWS IoT Core",
     .max_payload = 128u * 1024, .max_topic = 256, .max_slashes = 7,
     .ingest_prefix = "$aws/rules/", .max_client_id = 128, .client_id_no_dollar = true,
     .max_rate = 100, .max_inflight = 100, .max_bytes_per_s = 512u * 1024,
     .alpn_443 = "x-amzn-mqtt-ca",
     .ws_refused = "AWS IoT Core takes MQTT over WebSockets only with SigV4 or a custom "
                   "authorizer, not with the client certificate this bridge uses: use "
                   "`cloud_transport tls` with `cloud_port 443` and `cloud_alpn x-amzn-mqtt-ca` "
                   "(it also passes an HTTP proxy through cloud_proxy)"},
    {.name = "azure-iot-hub", .cloud = "Azure IoT Hub",
     .max_payload = 256u * 1024, .max_slashes = -1, .max_client_id = 128,
     .max_keepalive_s = 1177, .protocol = 4, .ws_path = "/$iothub/websocket", .hub = true,
     .d2c_topic = "devices/%s/messages/events/"},
};

#define BCONF_NPROFILES (sizeof(bconf_profiles) / sizeof(bconf_profiles[0]))

typedef struct bconf_row {
	const char *name;
	enum bconf_type type;
	size_t offset;
	bool required;
	bool repeat;              /* may appear more than once (forward) */
	int64_t min, max;         /* T_INT, T_DURATION (ms), T_SIZE */
	const bconf_enum_t *enums; /* T_ENUM; T_DURATION: named values besides durations */
	const char *def;          /* default in file syntax, or NULL */
	const char *help;         /* what it is, for "missing" messages */
} bconf_row_t;

#define OFF(f) offsetof(bconf_t, f)

/* Indexed by enum bconf_key. */
static const bconf_row_t rows[BK_COUNT] = {
    [BK_PLANT_HOST] = {"plant_host", T_STRING, OFF(plant_host), true, false, 0, 0, NULL, NULL,
                       "the plant broker's address"},
    [BK_PLANT_PORT] = {"plant_port", T_INT, OFF(plant_port), false, false, 1, 65535, NULL,
                       "8883", NULL},
    [BK_PLANT_CAFILE] = {"plant_cafile", T_STRING, OFF(plant_cafile), true, false, 0, 0, NULL,
                         NULL, "the plant CA certificate that signed the plant broker's cert"},
    [BK_PLANT_CERTFILE] = {"plant_certfile", T_STRING, OFF(plant_certfile), true, false, 0, 0,
                           NULL, NULL, "the bridge's own client certificate for the plant"},
    [BK_PLANT_KEYFILE] = {"plant_keyfile", T_STRING, OFF(plant_keyfile), true, false, 0, 0, NULL,
                          NULL, "the private key of plant_certfile"},
    [BK_PLANT_CLIENT_ID] = {"plant_client_id", T_STRING, OFF(plant_client_id), false, false, 0,
                            0, NULL, "plantgate-bridge", NULL},
    [BK_PLANT_KEEPALIVE] = {"plant_keepalive", T_DURATION, OFF(plant_keepalive_ms), false,
                            false, 5000, 65535000, NULL, "30s", NULL},
    [BK_CLOUD_HOST] = {"cloud_host", T_STRING, OFF(cloud_host), true, false, 0, 0, NULL, NULL,
                       "the cloud endpoint's host name"},
    [BK_CLOUD_PORT] = {"cloud_port", T_INT, OFF(cloud_port), false, false, 1, 65535, NULL,
                       "8883", NULL},
    [BK_CLOUD_CAFILE] = {"cloud_cafile", T_STRING, OFF(cloud_cafile), false, false, 0, 0, NULL,
                         NULL, NULL},
    [BK_CLOUD_USE_SYSTEM_TRUST] = {"cloud_use_system_trust", T_BOOL,
                                   OFF(cloud_use_system_trust), false, false, 0, 0, NULL, "no",
                                   NULL},
    [BK_CLOUD_CERTFILE] = {"cloud_certfile", T_STRING, OFF(cloud_certfile), true, false, 0, 0,
                           NULL, NULL, "the bridge's client certificate for the cloud"},
    [BK_CLOUD_KEYFILE] = {"cloud_keyfile", T_STRING, OFF(cloud_keyfile), true, false, 0, 0, NULL,
                          NULL, "the private key of cloud_certfile"},
    [BK_CLOUD_TLS_VERSION] = {"cloud_tls_version", T_ENUM, OFF(cloud_tls_version), false, false,
                              0, 0, tls_versions, "1.2", NULL},
    [BK_CLOUD_ALPN] = {"cloud_alpn", T_STRING, OFF(cloud_alpn), false, false, 0, 0, NULL, NULL,
                       NULL},
    [BK_CLOUD_PROTOCOL] = {"cloud_protocol", T_ENUM, OFF(cloud_protocol), false, false, 0, 0,
                           protocols, "5", NULL},
    [BK_CLOUD_CLIENT_ID] = {"cloud_client_id", T_STRING, OFF(cloud_client_id), false, false, 0,
                            0, NULL, "plantgate-bridge", NULL},
    [BK_CLOUD_KEEPALIVE] = {"cloud_keepalive", T_DURATION, OFF(cloud_keepalive_ms), false,
                            false, 5000, 65535000, NULL, "60s", NULL},
    [BK_CLOUD_PROFILE] = {"cloud_profile", T_PROFILE, OFF(cloud_profile), false, false, 0, 0,
                          NULL, "generic", NULL},
    [BK_CLOUD_AZURE_HUB] = {"cloud_azure_hub", T_STRING, OFF(cloud_azure_hub), false, false, 0,
                            0, NULL, NULL, NULL},
    [BK_CLOUD_TRANSPORT] = {"cloud_transport", T_ENUM, OFF(cloud_transport), false, false, 0,
                            0, transports, "tls", NULL},
    [BK_CLOUD_WS_PATH] = {"cloud_ws_path", T_STRING, OFF(cloud_ws_path), false, false, 0, 0,
                          NULL, NULL, NULL},
    [BK_CLOUD_PROXY] = {"cloud_proxy", T_STRING, OFF(cloud_proxy), false, false, 0, 0, NULL,
                        NULL, NULL},
    [BK_CLOUD_PROXY_AUTH_FILE] = {"cloud_proxy_auth_file", T_STRING, OFF(cloud_proxy_auth_file),
                                  false, false, 0, 0, NULL, NULL, NULL},
    [BK_CLOUD_PROXY_CAFILE] = {"cloud_proxy_cafile", T_STRING, OFF(cloud_proxy_cafile), false,
                               false, 0, 0, NULL, NULL, NULL},
    [BK_CLOUD_NO_PROXY] = {"cloud_no_proxy", T_STRING, OFF(cloud_no_proxy), false, false, 0, 0,
                           NULL, NULL, NULL},
    [BK_FORWARD] = {"forward", T_FORWARD, OFF(whitelist), true, true, 0, 0, NULL, NULL,
                    "at least one forward rule: nothing would be forwarded"},
    [BK_QUEUE_PATH] = {"queue_path", T_STRING, OFF(queue_path), true, false, 0, 0, NULL, NULL,
                       "the SQLite file of the durable queue"},
    [BK_QUEUE_MAX_BYTES] = {"queue_max_bytes", T_SIZE, OFF(queue_max_bytes), false, false, 4096,
                            INT64_MAX, NULL, "1G", NULL},
    [BK_QUEUE_MAX_MESSAGES] = {"queue_max_messages", T_INT, OFF(queue_max_messages), false,
                               false, 1, 1000000000, NULL, "1000000", NULL},
    [BK_QUEUE_WHEN_FULL] = {"queue_when_full", T_ENUM, OFF(queue_when_full), false, false, 0, 0,
                            when_full, "backpressure", NULL},
    [BK_QUEUE_MIN_FREE_DISK] = {"queue_min_free_disk", T_SIZE, OFF(queue_min_free_disk), false,
                                false, 0, INT64_MAX, NULL, "64M", NULL},
    [BK_QUEUE_COMMIT_INTERVAL] = {"queue_commit_interval", T_DURATION,
                                  OFF(queue_commit_interval_ms), false, false, 0, 1000,
                                  commit_intervals, "auto", NULL},
    [BK_DRAIN_RATE] = {"drain_rate", T_INT, OFF(drain_rate), false, false, 0, 1000000, NULL,
                       "1000", NULL},
    [BK_DRAIN_INFLIGHT] = {"drain_inflight", T_INT, OFF(drain_inflight), false, false, 1, 65535,
                           NULL, "20", NULL},
    [BK_DRAIN_BYTE_RATE] = {"drain_byte_rate", T_SIZE, OFF(drain_byte_rate), false, false, 0,
                            INT64_MAX, NULL, "0", NULL},
    [BK_DEAD_LETTER_AFTER] = {"dead_letter_after", T_INT, OFF(dead_letter_after), false, false,
                              0, 1000, NULL, "5", NULL},
    [BK_RECONNECT_MIN] = {"reconnect_min", T_DURATION, OFF(reconnect_min_ms), false, false, 100,
                          3600000, NULL, "1s", NULL},
    [BK_RECONNECT_MAX] = {"reconnect_max", T_DURATION, OFF(reconnect_max_ms), false, false, 100,
                          86400000, NULL, "60s", NULL},
    [BK_LOG_LEVEL] = {"log_level", T_ENUM, OFF(log_level), false, false, 0, 0, log_levels,
                      "info", NULL},
    [BK_HTTP_LISTEN] = {"http_listen", T_STRING, OFF(http_listen), false, false, 0, 0, NULL,
                        BCONF_HTTP_LISTEN_DEFAULT, NULL},
    [BK_HTTP_TLS_CERT] = {"http_tls_cert", T_STRING, OFF(http_tls_cert), false, false, 0, 0,
                          NULL, NULL, NULL},
    [BK_HTTP_TLS_KEY] = {"http_tls_key", T_STRING, OFF(http_tls_key), false, false, 0, 0, NULL,
                         NULL, NULL},
    [BK_HTTP_TLS_CLIENT_CA] = {"http_tls_client_ca", T_STRING, OFF(http_tls_client_ca), false,
                               false, 0, 0, NULL, NULL, NULL},
    [BK_HTTP_MAX_CONNECTIONS] = {"http_max_connections", T_INT, OFF(http_max_connections), false,
                                 false, 4, 4096, NULL, "64", NULL},
    [BK_QUEUE_WARN_MESSAGES] = {"queue_warn_messages", T_INT, OFF(queue_warn_messages), false,
                                false, 1, 1000000000, NULL, NULL, NULL},
    [BK_QUEUE_WARN_AGE] = {"queue_warn_age", T_DURATION, OFF(queue_warn_age_ms), false, false,
                           1000, 30LL * 86400 * 1000, NULL, "5m", NULL},
    [BK_USER] = {"user", T_STRING, OFF(user), false, false, 0, 0, NULL, "plantgate", NULL},
    [BK_ALLOW_ROOT] = {"allow_root", T_BOOL, OFF(allow_root), false, false, 0, 0, NULL, "no",
                       NULL},
    [BK_SITE_ID] = {"site_id", T_STRING, OFF(site_id), false, false, 0, 0, NULL, NULL, NULL},
    [BK_SIGN_KEY] = {"sign_key", T_STRING, OFF(sign_key), false, false, 0, 0, NULL, NULL,
                     NULL},
    [BK_SIGN_ALGORITHM] = {"sign_algorithm", T_ENUM, OFF(sign_algorithm), false, false, 0, 0,
                           sign_algs, "auto", NULL},
};

const char *bconf_key_name(enum bconf_key k)
{
	return k < BK_COUNT ? rows[k].name : "?";
}

const char *bconf_profile_name(int64_t profile)
{
	return profile >= 0 && (size_t)profile < BCONF_NPROFILES ? bconf_profiles[profile].name : "?";
}

/* Parse state: the config being built and the error list. */
typedef struct bconf_ctx {
	bconf_t *cfg;
	const char *name;
	char *err;
	size_t errlen;
	int errors;
} bconf_ctx_t;

static void ctx_add(bconf_ctx_t *c, const char *msg)
{
	c->errors++;
	if(c->errors > BCONF_MAX_ERRORS) {
		return;
	}
	size_t used = strlen(c->err);
	if(used + 1 < c->errlen) {
		snprintf(c->err + used, c->errlen - used, "%s\n", msg);
	}
}

static void ctx_errf(bconf_ctx_t *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ctx_errf(bconf_ctx_t *c, int line, const char *fmt, ...)
{
	char msg[1024], full[1400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if(line > 0) {
		snprintf(full, sizeof(full), "%s:%d: %s", c->name, line, msg);
	} else {
		snprintf(full, sizeof(full), "%s: %s", c->name, msg);
	}
	ctx_add(c, full);
}

static const bconf_row_t *row_find(const char *name, enum bconf_key *k)
{
	for(int i = 0; i < BK_COUNT; i++) {
		if(strcmp(rows[i].name, name) == 0) {
			*k = (enum bconf_key)i;
			return &rows[i];
		}
	}
	return NULL;
}

/* The entry of e (may be NULL) named `name`; NULL when none. */
static const bconf_enum_t *enum_by_name(const bconf_enum_t *e, const char *name)
{
	for(; e && e->name; e++) {
		if(!strcmp(e->name, name)) {
			return e;
		}
	}
	return NULL;
}

/* The entry of e (may be NULL) with `value`; NULL when none. */
static const bconf_enum_t *enum_by_value(const bconf_enum_t *e, int64_t value)
{
	for(; e && e->name; e++) {
		if(e->value == value) {
			return e;
		}
	}
	return NULL;
}

static void enum_list(const bconf_enum_t *e, char *out, size_t outlen)
{
	out[0] = '\0';
	for(; e->name; e++) {
		size_t used = strlen(out);
		snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", e->name);
	}
}

/* Convert `v` for row r into the field; 0 or -1 with why. */
static int row_set(bconf_t *cfg, const bconf_row_t *r, int line, int argc, char *const *argv,
                   char *why, size_t whylen)
{
	void *field = (char *)cfg + r->offset;
	const char *v = argc > 0 ? argv[0] : "";
	switch(r->type) {
	case T_STRING: {
		if(!*v) {
			snprintf(why, whylen, "%s: the value is empty", r->name);
			return -1;
		}
		char *d = strdup(v);
		if(!d) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		free(*(char **)field);
		*(char **)field = d;
		return 0;
	}
	case T_INT:
		if(util_parse_i64(v, r->min, r->max, (int64_t *)field)) {
			snprintf(why, whylen, "%s '%s': expected a whole number from %lld to %lld", r->name,
			         v, (long long)r->min, (long long)r->max);
			return -1;
		}
		return 0;
	case T_DURATION: {
		int64_t ms;
		const bconf_enum_t *named = enum_by_name(r->enums, v);
		if(named) {
			*(int64_t *)field = named->value;
			return 0;
		}
		if(util_parse_duration_ms(v, &ms) || ms < r->min || ms > r->max) {
			char names[256] = "";
			if(r->enums) {
				enum_list(r->enums, names, sizeof(names));
			}
			snprintf(why, whylen,
			         "%s '%s': expected %s%sa duration such as 500ms, 30s, 5m or 2h, from %lldms "
			         "to %llds",
			         r->name, v, names, names[0] ? " or " : "", (long long)r->min,
			         (long long)(r->max / 1000));
			return -1;
		}
		*(int64_t *)field = ms;
		return 0;
	}
	case T_SIZE: {
		uint64_t sz;
		if(util_parse_size(v, (uint64_t)r->max, &sz) || sz < (uint64_t)r->min) {
			snprintf(why, whylen,
			         "%s '%s': expected a size such as 64M or 2G (at least %lld bytes)", r->name,
			         v, (long long)r->min);
			return -1;
		}
		*(uint64_t *)field = sz;
		return 0;
	}
	case T_BOOL:
		if(!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on")) {
			*(bool *)field = true;
		} else if(!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off")) {
			*(bool *)field = false;
		} else {
			snprintf(why, whylen, "%s '%s': expected yes or no", r->name, v);
			return -1;
		}
		return 0;
	case T_ENUM: {
		const bconf_enum_t *e = enum_by_name(r->enums, v);
		if(e) {
			*(int64_t *)field = e->value;
			return 0;
		}
		char list[256];
		enum_list(r->enums, list, sizeof(list));
		snprintf(why, whylen, "%s '%s': expected one of %s", r->name, v, list);
		return -1;
	}
	case T_PROFILE:
		for(size_t i = 0; i < BCONF_NPROFILES; i++) {
			if(!strcmp(bconf_profiles[i].name, v)) {
				*(int64_t *)field = (int64_t)i;
				return 0;
			}
		}
		{
			char list[256] = "";
			for(size_t i = 0; i < BCONF_NPROFILES; i++) {
				size_t used = strlen(list);
				snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
				         bconf_profiles[i].name);
			}
			snprintf(why, whylen, "%s '%s': expected one of %s", r->name, v, list);
		}
		return -1;
	case T_FORWARD: {
		wl_rule_t rule;
		if(whitelist_rule_parse(&rule, argc, argv, why, whylen)) {
			return -1;
		}
		rule.line = line;
		return whitelist_add((whitelist_t *)field, &rule, why, whylen);
	}
	}
	snprintf(why, whylen, "internal error: bad row type");
	return -1;
}

static int on_line(void *ud, const conf_line_t *l, char *err, size_t errlen)
{
	bconf_ctx_t *c = ud;
	enum bconf_key k;
	const bconf_row_t *r = row_find(l->argv[0], &k);
	char why[1024];
	(void)err;
	(void)errlen;
	if(!r) {
		ctx_errf(c, l->line, "unknown key '%s' (see docs/bridge.md for the list)", l->argv[0]);
	} else if(!r->repeat && c->cfg->line[k]) {
		ctx_errf(c, l->line, "'%s' is duplicate (first set at line %d)", r->name,
		         c->cfg->line[k]);
	} else if(r->type != T_FORWARD && l->argc != 2) {
		ctx_errf(c, l->line, "'%s' takes exactly one value, got %d", r->name, l->argc - 1);
	} else if(row_set(c->cfg, r, l->line, l->argc - 1, l->argv + 1, why, sizeof(why))) {
		ctx_errf(c, l->line, "%s", why);
	} else if(!c->cfg->line[k]) {
		c->cfg->line[k] = l->line;
	}
	return c->errors >= BCONF_MAX_ERRORS ? -1 : 0;
}

static int apply_defaults(bconf_t *cfg)
{
	char why[256];
	for(int i = 0; i < BK_COUNT; i++) {
		if(cfg->line[i] || !rows[i].def) {
			continue;
		}
		char *argv[1] = {(char *)rows[i].def};
		if(row_set(cfg, &rows[i], 0, 1, argv, why, sizeof(why))) {
			return -1;
		}
	}
	return 0;
}

static bool starts_with(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* True for 127.0.0.0/8 and ::1. */
static bool addr_is_loopback(const char *ip)
{
	struct in_addr a4;
	struct in6_addr a6;
	if(inet_pton(AF_INET, ip, &a4) == 1) {
		return (ntohl(a4.s_addr) >> 24) == 127;
	}
	return inet_pton(AF_INET6, ip, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* http_listen: "off" or IP:PORT ([IPv6]:PORT); remote access only with TLS
 * and a required client certificate. */
static void validate_http(bconf_ctx_t *c)
{
	bconf_t *cfg = c->cfg;
	int line = cfg->line[BK_HTTP_LISTEN];
	free(cfg->http_host);
	cfg->http_host = NULL;
	cfg->http_port = 0;
	bool tls = cfg->http_tls_cert || cfg->http_tls_key || cfg->http_tls_client_ca;
	if(tls && !(cfg->http_tls_cert && cfg->http_tls_key)) {
		ctx_errf(c, cfg->line[BK_HTTP_TLS_CERT] ? cfg->line[BK_HTTP_TLS_CERT]
		                                        : cfg->line[BK_HTTP_TLS_KEY] ? cfg->line[BK_HTTP_TLS_KEY]
		                                                                     : cfg->line[BK_HTTP_TLS_CLIENT_CA],
		         "HTTP TLS needs both http_tls_cert and http_tls_key");
	}
	if(!cfg->http_listen || strcmp(cfg->http_listen, "off") == 0) {
		return;
	}
	char host[128];
	const char *v = cfg->http_listen, *colon;
	size_t hlen;
	if(v[0] == '[') {
		const char *end = strchr(v, ']');
		colon = end && end[1] == ':' ? end + 1 : NULL;
		v++;
		hlen = end ? (size_t)(end - v) : 0;
	} else {
		colon = strrchr(v, ':');
		hlen = colon ? (size_t)(colon - v) : 0;
		if(colon && memchr(v, ':', hlen)) {
			colon = NULL; /* a bare IPv6 address needs brackets */
		}
	}
	int64_t port = 0;
	unsigned char buf[sizeof(struct in6_addr)];
	if(colon && hlen < sizeof(host)) {
		memcpy(host, v, hlen);
		host[hlen] = '\0';
	}
	if(!colon || hlen == 0 || hlen >= sizeof(host) || util_parse_i64(colon + 1, 1, 65535, &port) ||
	   (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)) {
		ctx_errf(c, line,
		         "http_listen '%s': expected off, or an IP address and a port such as "
		         "127.0.0.1:9464 or [::1]:9464",
		         cfg->http_listen);
		return;
	}
	if(!addr_is_loopback(host) && !(cfg->http_tls_cert && cfg->http_tls_key &&
	                                 cfg->http_tls_client_ca)) {
		ctx_errf(c, line,
		         "http_listen %s is reachable from other hosts: the status page and metrics "
		         "are served beyond this host only over TLS with a required client "
		         "certificate; set http_tls_cert, http_tls_key and http_tls_client_ca, or listen "
		         "on 127.0.0.1",
		         cfg->http_listen);
		return;
	}
	cfg->http_host = strdup(host);
	cfg->http_port = port;
}

/* The integrity envelope's keys: a signing bridge names its site; the site
 * is an identity-like word (it is compared by people and tools). */
static void validate_signing(bconf_ctx_t *c)
{
	bconf_t *cfg = c->cfg;
	const char *site = cfg->site_id;
	if(site && (strlen(site) > 64 ||
	            strspn(site, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") !=
	                strlen(site))) {
		ctx_errf(c, cfg->line[BK_SITE_ID],
		         "site_id '%s': use 1..64 characters from A-Z a-z 0-9 . _ - :", site);
	}
	if(cfg->sign_key && !site) {
		ctx_errf(c, cfg->line[BK_SIGN_KEY],
		         "sign_key needs 'site_id': the plant's name, signed into every message so a "
		         "cloud consumer knows where it came from");
	}
	if(!cfg->sign_key && cfg->sign_algorithm != BCONF_SIGN_AUTO) {
		ctx_errf(c, cfg->line[BK_SIGN_ALGORITHM],
		         "sign_algorithm without sign_key: set sign_key to the bridge's signing key "
		         "(scripts/pki signing-key NAME makes one)");
	}
}

const char *const bconf_azure_suffixes[] = {".azure-devices.net", ".azure-devices.cn",
                                            ".azure-devices.us", ".azure-devices.de", NULL};

const bconf_profile_desc_t *bconf_profile(int64_t profile)
{
	return &bconf_profiles[profile >= 0 && (size_t)profile < BCONF_NPROFILES ? profile : 0];
}

/* cloud_transport, cloud_ws_path and the proxy keys (tunnel.c carries them
 * out; tunproto.c parses them). */
static void validate_transport(bconf_ctx_t *c)
{
	bconf_t *cfg = c->cfg;
	const char *why = NULL;
	const bconf_profile_desc_t *tr = bconf_profile(cfg->cloud_profile);
	if(cfg->cloud_transport == BCONF_TRANSPORT_WSS && !tr->ws_path) {
		ctx_errf(c, cfg->line[BK_CLOUD_TRANSPORT], "%s: %s",
		         bconf_profile_name(cfg->cloud_profile), tr->ws_refused);
	}
	const char *path = cfg->cloud_ws_path;
	if(cfg->line[BK_CLOUD_WS_PATH] && cfg->cloud_transport != BCONF_TRANSPORT_WSS) {
		ctx_errf(c, cfg->line[BK_CLOUD_WS_PATH],
		         "cloud_ws_path is only used with `cloud_transport wss`");
	}
	if(path) {
		size_t n = strlen(path);
		bool ok = n >= 1 && n <= 255 && path[0] == '/';
		for(size_t i = 0; ok && i < n; i++) {
			ok = path[i] > 0x20 && path[i] < 0x7F && path[i] != '"' && path[i] != '\\';
		}
		if(!ok) {
			ctx_errf(c, cfg->line[BK_CLOUD_WS_PATH],
			         "cloud_ws_path '%s': expected an HTTP path such as /mqtt (starts with '/', "
			         "printable ASCII without blanks, quotes or backslashes, at most 255 "
			         "characters)",
			         path);
		}
	}
	tunproto_url_t url;
	if(cfg->cloud_proxy && tunproto_url_parse(cfg->cloud_proxy, &url, &why)) {
		ctx_errf(c, cfg->line[BK_CLOUD_PROXY], "cloud_proxy '%s': %s", cfg->cloud_proxy, why);
	}
	static const enum bconf_key need_proxy[] = {BK_CLOUD_PROXY_AUTH_FILE, BK_CLOUD_PROXY_CAFILE,
	                                            BK_CLOUD_NO_PROXY};
	for(size_t i = 0; !cfg->cloud_proxy && i < sizeof(need_proxy) / sizeof(need_proxy[0]); i++) {
		if(cfg->line[need_proxy[i]]) {
			ctx_errf(c, cfg->line[need_proxy[i]], "%s without cloud_proxy: set cloud_proxy to "
			         "http://HOST:PORT of the plant's proxy, or remove it",
			         rows[need_proxy[i]].name);
		}
	}
	if(cfg->cloud_proxy_cafile && cfg->cloud_proxy && strncasecmp(cfg->cloud_proxy, "https:", 6)) {
		ctx_errf(c, cfg->line[BK_CLOUD_PROXY_CAFILE],
		         "cloud_proxy_cafile is only used with an https:// proxy");
	}
	char bad[128];
	if(cfg->cloud_no_proxy && tunproto_no_proxy_check(cfg->cloud_no_proxy, bad, sizeof(bad))) {
		ctx_errf(c, cfg->line[BK_CLOUD_NO_PROXY],
		         "cloud_no_proxy: '%s' is not a host name, .domain, IP address, network "
		         "(10.0.0.0/8) or *",
		         bad);
	}
}

/* Characters (code points) of a UTF-8 string. */
static size_t bconf_utf8_chars(const char *s)
{
	size_t n = 0;
	for(; *s; s++) {
		n += ((unsigned char)*s & 0xC0) != 0x80;
	}
	return n;
}

/* The cloud profile's limits on the connection (bconf_profile_desc_t). */
static void validate_profile(bconf_ctx_t *c)
{
	bconf_t *cfg = c->cfg;
	const bconf_profile_desc_t *p = bconf_profile(cfg->cloud_profile);
	const char *cid = cfg->cloud_client_id;
	int cid_line = cfg->line[BK_CLOUD_CLIENT_ID];
	int pline = cfg->line[BK_CLOUD_PROFILE];
	if(!p->hub && cfg->cloud_azure_hub) {
		ctx_errf(c, cfg->line[BK_CLOUD_AZURE_HUB],
		         "cloud_azure_hub is only meaningful with `cloud_profile azure-iot-hub`");
	}
	if(p->max_client_id && cid && (p->hub ? bconf_utf8_chars(cid) : strlen(cid)) > p->max_client_id) {
		ctx_errf(c, cid_line, "%s: cloud_client_id is %zu %s long, %s allows %zu", p->name,
		         p->hub ? bconf_utf8_chars(cid) : strlen(cid), p->hub ? "characters" : "bytes",
		         p->cloud, p->max_client_id);
	}
	if(p->client_id_no_dollar && cid && cid[0] == '$') {
		ctx_errf(c, cid_line, "%s: cloud_client_id must not start with '$' (%s reserves it)",
		         p->name, p->cloud);
	}
	if(p->max_rate && (cfg->drain_rate == 0 || cfg->drain_rate > p->max_rate)) {
		ctx_errf(c, cfg->line[BK_DRAIN_RATE] ? cfg->line[BK_DRAIN_RATE] : pline,
		         "%s: drain_rate must be 1..%lld messages/s (%s's per-connection publish limit)",
		         p->name, (long long)p->max_rate, p->cloud);
	}
	if(p->max_bytes_per_s &&
	   (cfg->drain_byte_rate == 0 || cfg->drain_byte_rate > p->max_bytes_per_s)) {
		ctx_errf(c, cfg->line[BK_DRAIN_BYTE_RATE] ? cfg->line[BK_DRAIN_BYTE_RATE] : pline,
		         "%s: drain_byte_rate must be 1..%llu bytes/s (%s's per-connection limit)",
		         p->name, (unsigned long long)p->max_bytes_per_s, p->cloud);
	}
	if(p->max_inflight && cfg->drain_inflight > p->max_inflight) {
		ctx_errf(c, cfg->line[BK_DRAIN_INFLIGHT],
		         "%s: drain_inflight must be at most %lld (%s's unacknowledged QoS 1 limit)",
		         p->name, (long long)p->max_inflight, p->cloud);
	}
	if(p->max_keepalive_s && cfg->cloud_keepalive_ms / 1000 > p->max_keepalive_s) {
		ctx_errf(c, cfg->line[BK_CLOUD_KEEPALIVE] ? cfg->line[BK_CLOUD_KEEPALIVE] : pline,
		         "%s: cloud_keepalive must be at most %llds (%s closes longer ones)", p->name,
		         (long long)p->max_keepalive_s, p->cloud);
	}
	if(p->alpn_443 && cfg->cloud_transport == BCONF_TRANSPORT_TLS && cfg->cloud_port == 443 &&
	   (!cfg->cloud_alpn || strcmp(cfg->cloud_alpn, p->alpn_443) != 0)) {
		ctx_errf(c, cfg->line[BK_CLOUD_PORT], "%s: MQTT over port 443 needs `cloud_alpn %s`",
		         p->name, p->alpn_443);
	}
	if(p->protocol && cfg->cloud_protocol != p->protocol) {
		ctx_errf(c, cfg->line[BK_CLOUD_PROTOCOL] ? cfg->line[BK_CLOUD_PROTOCOL] : pline,
		         "%s: %s speaks MQTT 3.1.1 only: set `cloud_protocol 3.1.1`", p->name, p->cloud);
	}
	if(!p->hub) {
		return;
	}
	if(!cfg->cloud_azure_hub) {
		ctx_errf(c, pline, "%s: missing 'cloud_azure_hub' (the hub's host name, such as "
		                   "<hub>.azure-devices.net, or just the hub name)", p->name);
	}
	if(!cfg->line[BK_CLOUD_CLIENT_ID]) {
		ctx_errf(c, pline, "%s: set 'cloud_client_id' to the device id registered in the hub",
		         p->name);
	}
	const char *hub = cfg->cloud_azure_hub;
	bool known = hub && !strchr(hub, '.');
	for(size_t i = 0; hub && !known && bconf_azure_suffixes[i]; i++) {
		size_t hl = strlen(hub), sl = strlen(bconf_azure_suffixes[i]);
		known = hl > sl && strcmp(hub + hl - sl, bconf_azure_suffixes[i]) == 0;
	}
	if(hub && !known) {
		ctx_errf(c, cfg->line[BK_CLOUD_AZURE_HUB],
		         "cloud_azure_hub '%s': expected the hub name or its full host name ending in "
		         ".azure-devices.net (or the sovereign clouds' .azure-devices.cn, "
		         ".azure-devices.us, .azure-devices.de)",
		         hub);
	}
	if(hub && known && cid) {
		char user[1024];
		/* The username is the hub's full host name, sovereign clouds included. */
		if(util_snprintf(user, sizeof(user), "%s%s/%s/?api-version=2021-04-12", hub,
		                 strchr(hub, '.') ? "" : bconf_azure_suffixes[0], cid) >= 0) {
			free(cfg->cloud_username);
			cfg->cloud_username = strdup(user);
		}
	}
}

/* The cloud profile's limits on one forward rule. */
static void validate_rule_profile(bconf_ctx_t *c, wl_rule_t *r)
{
	bconf_t *cfg = c->cfg;
	const bconf_profile_desc_t *p = bconf_profile(cfg->cloud_profile);
	const char *cid = cfg->cloud_client_id;
	if(r->max_payload > p->max_payload) {
		ctx_errf(c, r->line, "%s: max-payload=%llu exceeds the cloud's limit of %llu bytes",
		         p->name, (unsigned long long)r->max_payload, (unsigned long long)p->max_payload);
	}
	if(!r->max_payload) {
		r->max_payload = p->max_payload;
	}
	if(p->max_slashes >= 0) {
		int sl = whitelist_max_slashes(r);
		if(r->to && p->ingest_prefix && starts_with(r->to, p->ingest_prefix)) {
			sl -= 3; /* $aws/rules/<rule>/: Basic Ingest, not counted */
		}
		if(sl > p->max_slashes) {
			ctx_errf(c, r->line,
			         "%s: cloud topics of this rule have %d '/', %s allows %d: use strip= or a "
			         "shorter prefix=",
			         p->name, sl, p->cloud, p->max_slashes);
		}
	}
	if(p->d2c_topic) {
		char want[512]; /* d2c_topic with the device id for its "%s" */
		const char *at = strstr(p->d2c_topic, "%s");
		snprintf(want, sizeof(want), "%.*s%s%s", (int)(at - p->d2c_topic), p->d2c_topic,
		         cid ? cid : "", at + 2);
		if(!r->to || !starts_with(r->to, want) || strchr(r->to + strlen(want), '/')) {
			ctx_errf(c, r->line,
			         "%s: every rule must send to the device-to-cloud topic: add `to=%s`",
			         p->name, want);
		}
	}
}

/* Cross-key checks and the cloud profile's limits. */
static void validate(bconf_ctx_t *c)
{
	bconf_t *cfg = c->cfg;
	for(int i = 0; i < BK_COUNT; i++) {
		if(rows[i].required && !cfg->line[i]) {
			ctx_errf(c, 0, "missing '%s': %s", rows[i].name, rows[i].help);
		}
	}
	if(!cfg->cloud_cafile && !cfg->cloud_use_system_trust) {
		ctx_errf(c, 0,
		         "missing 'cloud_cafile': the cloud's CA is pinned by default; name the CA "
		         "file, or set `cloud_use_system_trust yes` to trust the system store");
	}
	if(cfg->reconnect_min_ms > cfg->reconnect_max_ms) {
		ctx_errf(c, cfg->line[BK_RECONNECT_MAX] ? cfg->line[BK_RECONNECT_MAX] : cfg->line[BK_RECONNECT_MIN],
		         "reconnect_max (%lldms) is below reconnect_min (%lldms)",
		         (long long)cfg->reconnect_max_ms, (long long)cfg->reconnect_min_ms);
	}
	const char *cid = cfg->cloud_client_id;
	int cid_line = cfg->line[BK_CLOUD_CLIENT_ID];
	if(cid && (strchr(cid, '+') || strchr(cid, '#') || strchr(cid, '/'))) {
		ctx_errf(c, cid_line, "cloud_client_id '%s' must not contain '+', '#' or '/'", cid);
	}
	if(cfg->plant_client_id &&
	   (strchr(cfg->plant_client_id, '+') || strchr(cfg->plant_client_id, '#'))) {
		ctx_errf(c, cfg->line[BK_PLANT_CLIENT_ID],
		         "plant_client_id must not contain '+' or '#'");
	}
	validate_signing(c);
	validate_transport(c);
	validate_profile(c);
	validate_http(c);
	if(cfg->queue_warn_messages > cfg->queue_max_messages) {
		ctx_errf(c, cfg->line[BK_QUEUE_WARN_MESSAGES],
		         "queue_warn_messages (%lld) is above queue_max_messages (%lld): /healthz "
		         "would never warn",
		         (long long)cfg->queue_warn_messages, (long long)cfg->queue_max_messages);
	}
	if(cfg->user && strcmp(cfg->user, "root") == 0 && !cfg->allow_root) {
		ctx_errf(c, cfg->line[BK_USER],
		         "user root: the bridge parses what the plant and the cloud send it and must not "
		         "keep root's privileges; name an unprivileged user (default plantgate), or set "
		         "`allow_root yes` if you really must");
	}
	for(size_t i = 0; i < cfg->whitelist.count; i++) {
		wl_rule_t *r = &cfg->whitelist.rules[i];
		for(size_t j = 0; j < i; j++) {
			if(topic_filter_covers(cfg->whitelist.rules[j].filter, r->filter)) {
				ctx_errf(c, r->line,
				         "this rule never matches: the rule at line %d ('%s') covers '%s' "
				         "and comes first; put the more specific rule first",
				         cfg->whitelist.rules[j].line, cfg->whitelist.rules[j].filter,
				         r->filter);
				break;
			}
		}
		validate_rule_profile(c, r);
	}
}

static int load_common(bconf_ctx_t *c, int rc, const char *parse_err)
{
	if(rc && c->errors == 0) {
		ctx_add(c, parse_err); /* the tokenizer's own error, already file:line */
	}
	if(c->errors == 0) {
		if(apply_defaults(c->cfg)) {
			ctx_errf(c, 0, "internal error: bad default");
		} else {
			if(bconf_profile(c->cfg->cloud_profile)->protocol && !c->cfg->line[BK_CLOUD_PROTOCOL]) {
				c->cfg->cloud_protocol = bconf_profile(c->cfg->cloud_profile)->protocol;
			}
			bconf_t *cf = c->cfg;
			if(cf->cloud_transport == BCONF_TRANSPORT_WSS && !cf->line[BK_CLOUD_PORT]) {
				cf->cloud_port = 443; /* where HTTPS, and so wss, is let out */
			}
			const bconf_profile_desc_t *tr = bconf_profile(cf->cloud_profile);
			if(cf->cloud_transport == BCONF_TRANSPORT_WSS && !cf->cloud_ws_path && tr->ws_path) {
				cf->cloud_ws_path = strdup(tr->ws_path);
			}
			if(bconf_profile(c->cfg->cloud_profile)->max_rate && !c->cfg->line[BK_DRAIN_RATE]) {
				c->cfg->drain_rate = bconf_profile(c->cfg->cloud_profile)->max_rate;
			}
			if(!c->cfg->line[BK_DRAIN_BYTE_RATE]) {
				c->cfg->drain_byte_rate = bconf_profile(c->cfg->cloud_profile)->max_bytes_per_s;
			}
			if(!c->cfg->line[BK_QUEUE_WARN_MESSAGES]) {
				/* 80% of the limit, at least 1 */
				c->cfg->queue_warn_messages = c->cfg->queue_max_messages / 5 * 4 +
				                              c->cfg->queue_max_messages % 5 * 4 / 5;
				if(c->cfg->queue_warn_messages < 1) {
					c->cfg->queue_warn_messages = 1;
				}
			}
			validate(c);
		}
	}
	if(c->errors > BCONF_MAX_ERRORS) {
		size_t used = strlen(c->err);
		snprintf(c->err + used, c->errlen - used, "%s: ... and %d more errors\n", c->name,
		         c->errors - BCONF_MAX_ERRORS);
	}
	if(c->errors) {
		bconf_free(c->cfg);
	}
	return c->errors;
}

int bconf_load_buffer(const char *name, const char *text, size_t len, bconf_t *cfg, char *err,
                      size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	err[0] = '\0';
	bconf_ctx_t c = {.cfg = cfg, .name = name, .err = err, .errlen = errlen};
	cfg->path = strdup(name);
	char perr[1200] = "";
	int rc = conf_parse_buffer(name, text, len, on_line, &c, perr, sizeof(perr));
	return load_common(&c, rc, perr);
}

int bconf_load(const char *path, bconf_t *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	err[0] = '\0';
	bconf_ctx_t c = {.cfg = cfg, .name = path, .err = err, .errlen = errlen};
	cfg->path = strdup(path);
	char perr[1200] = "";
	int rc = conf_parse_file(path, on_line, &c, perr, sizeof(perr));
	return load_common(&c, rc, perr);
}

static int check_file(const bconf_t *cfg, enum bconf_key k, char *err, size_t errlen)
{
	const char *p = *(char *const *)((const char *)cfg + rows[k].offset);
	if(!p) {
		return 0;
	}
	struct stat st;
	const char *why = NULL;
	if(stat(p, &st) != 0) {
		why = strerror(errno);
	} else if(!S_ISREG(st.st_mode)) {
		why = "not a regular file";
	} else if(access(p, R_OK) != 0) {
		why = strerror(errno);
	}
	if(!why) {
		return 0;
	}
	size_t used = strlen(err);
	if(cfg->line[k]) {
		snprintf(err + used, errlen - used, "%s:%d: %s '%s': cannot read: %s\n", cfg->path,
		         cfg->line[k], rows[k].name, p, why);
	} else {
		snprintf(err + used, errlen - used, "%s: %s '%s': cannot read: %s\n", cfg->path,
		         rows[k].name, p, why);
	}
	return 1;
}

/* A private key that group or others may read is refused: on a shared host
 * anyone in that group could impersonate the bridge. */
static int check_key_mode(const bconf_t *cfg, enum bconf_key k, char *err, size_t errlen)
{
	const char *p = *(char *const *)((const char *)cfg + rows[k].offset);
	struct stat st;
	if(!p || stat(p, &st) != 0 || !S_ISREG(st.st_mode) || !(st.st_mode & (S_IRGRP | S_IROTH))) {
		return 0;
	}
	size_t used = strlen(err);
	snprintf(err + used, errlen - used,
	         "%s:%d: %s '%s': %s readable by %s (mode %04o): run `chmod 600 %s` "
	         "(owned by the user the bridge runs as)\n",
	         cfg->path, cfg->line[k], rows[k].name, p,
	         k == BK_CLOUD_PROXY_AUTH_FILE ? "the proxy credentials are" : "the private key is",
	         (st.st_mode & S_IROTH) ? "every user" : "its group", (unsigned)(st.st_mode & 07777),
	         p);
	return 1;
}

int bconf_check_files(const bconf_t *cfg, char *err, size_t errlen)
{
	static const enum bconf_key files[] = {BK_PLANT_CAFILE,  BK_PLANT_CERTFILE,   BK_PLANT_KEYFILE,
	                                       BK_CLOUD_CAFILE,  BK_CLOUD_CERTFILE,   BK_CLOUD_KEYFILE,
	                                       BK_HTTP_TLS_CERT, BK_HTTP_TLS_KEY, BK_HTTP_TLS_CLIENT_CA,
	                                       BK_CLOUD_PROXY_AUTH_FILE, BK_CLOUD_PROXY_CAFILE};
	static const enum bconf_key keys[] = {BK_PLANT_KEYFILE, BK_CLOUD_KEYFILE, BK_HTTP_TLS_KEY,
	                                      BK_CLOUD_PROXY_AUTH_FILE};
	int n = 0;
	for(size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		n += check_file(cfg, files[i], err, errlen);
	}
	for(size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		n += check_key_mode(cfg, keys[i], err, errlen);
	}
	if(cfg->queue_path) {
		char dir[4096];
		util_strlcpy(dir, cfg->queue_path, sizeof(dir));
		char *slash = strrchr(dir, '/');
		if(!slash) {
			util_strlcpy(dir, ".", sizeof(dir));
		} else if(slash == dir) {
			dir[1] = '\0';
		} else {
			*slash = '\0';
		}
		struct stat st;
		if(stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
			size_t used = strlen(err);
			snprintf(err + used, errlen - used,
			         "%s:%d: queue_path '%s': directory '%s' does not exist or is not "
			         "writable\n",
			         cfg->path, cfg->line[BK_QUEUE_PATH], cfg->queue_path, dir);
			n++;
		}
	}
	return n;
}

static void print_word(FILE *out, const char *s)
{
	bool quote = !*s || strpbrk(s, " \t\"\\") != NULL || s[0] == '#';
	if(!quote) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for(; *s; s++) {
		if(*s == '"' || *s == '\\') {
			fputc('\\', out);
		}
		fputc(*s, out);
	}
	fputc('"', out);
}

void bconf_print(const bconf_t *cfg, FILE *out)
{
	for(int i = 0; i < BK_COUNT; i++) {
		const bconf_row_t *r = &rows[i];
		const void *field = (const char *)cfg + r->offset;
		if(r->type == T_FORWARD) {
			for(size_t j = 0; j < cfg->whitelist.count; j++) {
				char buf[4096];
				if(whitelist_rule_format(&cfg->whitelist.rules[j], buf, sizeof(buf)) == 0) {
					fprintf(out, "forward %s\n", buf);
				}
			}
			continue;
		}
		switch(r->type) {
		case T_STRING:
			if(*(char *const *)field) {
				fprintf(out, "%s ", r->name);
				print_word(out, *(char *const *)field);
				fputc('\n', out);
			}
			break;
		case T_INT:
			fprintf(out, "%s %lld\n", r->name, (long long)*(const int64_t *)field);
			break;
		case T_DURATION: {
			const bconf_enum_t *e = enum_by_value(r->enums, *(const int64_t *)field);
			if(e) {
				fprintf(out, "%s %s\n", r->name, e->name);
			} else {
				fprintf(out, "%s %lldms\n", r->name, (long long)*(const int64_t *)field);
			}
			break;
		}
		case T_SIZE:
			fprintf(out, "%s %llu\n", r->name, (unsigned long long)*(const uint64_t *)field);
			break;
		case T_BOOL:
			fprintf(out, "%s %s\n", r->name, *(const bool *)field ? "yes" : "no");
			break;
		case T_ENUM: {
			const bconf_enum_t *e = enum_by_value(r->enums, *(const int64_t *)field);
			if(e) {
				fprintf(out, "%s %s\n", r->name, e->name);
			}
			break;
		}
		case T_PROFILE:
			fprintf(out, "%s %s\n", r->name, bconf_profile_name(*(const int64_t *)field));
			break;
		case T_FORWARD:
			break;
		}
	}
}

void bconf_free(bconf_t *cfg)
{
	if(!cfg) {
		return;
	}
	for(int i = 0; i < BK_COUNT; i++) {
		if(rows[i].type == T_STRING) {
			char **f = (char **)((char *)cfg + rows[i].offset);
			free(*f);
		}
	}
	whitelist_clear(&cfg->whitelist);
	free(cfg->cloud_username);
	free(cfg->http_host);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

bool bconf_cloud_topic_ok(const bconf_t *cfg, const char *topic, const char **why)
{
	const bconf_profile_desc_t *p = bconf_profile(cfg->cloud_profile);
	if(!topic_valid_name(topic)) {
		*why = "bad-cloud-topic";
		return false;
	}
	/* Basic Ingest ($aws/rules/<rule>/...): the prefix counts toward
	 * neither the length nor the depth. */
	const char *counted = topic;
	if(p->ingest_prefix && starts_with(topic, p->ingest_prefix)) {
		const char *rule_end = strchr(topic + strlen(p->ingest_prefix), '/');
		counted = rule_end ? rule_end + 1 : topic + strlen(topic);
	}
	if(p->max_topic && strlen(counted) > p->max_topic) {
		*why = "cloud-topic-too-long";
		return false;
	}
	if(p->max_slashes >= 0) {
		int slashes = 0;
		for(const char *q = counted; *q; q++) {
			slashes += *q == '/';
		}
		if(slashes > p->max_slashes) {
			*why = "cloud-topic-too-deep";
			return false;
		}
	}
	return true;
}
