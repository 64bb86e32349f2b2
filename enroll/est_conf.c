/*
 * est_conf.c — plantgate-est's configuration (see est_conf.h).
 */
#include "est_conf.h"

#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "util.h"

typedef struct conf_state {
	est_conf_t *c;
	unsigned seen; /* bit per directive */
} conf_state_t;

typedef int (*conf_set_fn)(est_conf_t *c, const conf_line_t *l, char *err, size_t errlen);

static int set_path(char *dst, const conf_line_t *l, char *err, size_t errlen)
{
	if(l->argv[1][0] != '/') {
		return conf_error(l, err, errlen, "`%s` needs an absolute path", l->argv[0]);
	}
	return util_strlcpy(dst, l->argv[1], EST_PATH_MAX)
	           ? conf_error(l, err, errlen, "path longer than %d bytes", EST_PATH_MAX - 1)
	           : 0;
}

static int set_listen(est_conf_t *c, const conf_line_t *l, char *err, size_t errlen)
{
	const char *v = l->argv[1];
	const char *colon = strrchr(v, ':');
	int64_t port;
	if(!colon || colon == v || util_parse_i64(colon + 1, 1, 65535, &port)) {
		return conf_error(l, err, errlen, "`listen` wants HOST:PORT, e.g. listen 10.0.0.5:8443 "
		                                  "(an address of the plant LAN, never 0.0.0.0 on a "
		                                  "host that also faces the WAN)");
	}
	const char *h = v;
	size_t hl = (size_t)(colon - v);
	if(h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if(hl == 0 || hl >= sizeof(c->listen_host)) {
		return conf_error(l, err, errlen, "`listen` host is empty or too long");
	}
	memcpy(c->listen_host, h, hl);
	c->listen_host[hl] = '\0';
	c->listen_port = (int)port;
	return 0;
}

static int set_tls_cert(est_conf_t *c, const conf_line_t *l, char *e, size_t n) { return set_path(c->tls_cert, l, e, n); }
static int set_tls_key(est_conf_t *c, const conf_line_t *l, char *e, size_t n) { return set_path(c->tls_key, l, e, n); }
static int set_pki_dir(est_conf_t *c, const conf_line_t *l, char *e, size_t n) { return set_path(c->pki_dir, l, e, n); }
static int set_ca_cert(est_conf_t *c, const conf_line_t *l, char *e, size_t n) { return set_path(c->ca_cert, l, e, n); }
static int set_issuer_cert(est_conf_t *c, const conf_line_t *l, char *e, size_t n) { return set_path(c->issuer_cert, l, e, n); }
static int set_issuer_key(est_conf_t *c, const conf_line_t *l, char *e, size_t n) { return set_path(c->issuer_key, l, e, n); }
static int set_tokens(est_conf_t *c, const conf_line_t *l, char *e, size_t n) { return set_path(c->tokens, l, e, n); }
static int set_audit_log(est_conf_t *c, const conf_line_t *l, char *e, size_t n) { return set_path(c->audit_log, l, e, n); }

static int set_cert_days(est_conf_t *c, const conf_line_t *l, char *err, size_t errlen)
{
	int64_t d;
	if(util_parse_i64(l->argv[1], 1, 3650, &d)) {
		return conf_error(l, err, errlen, "`cert_days` wants a number of days from 1 to 3650");
	}
	c->cert_days = (long)d;
	return 0;
}

static int set_old_cert(est_conf_t *c, const conf_line_t *l, char *err, size_t errlen)
{
	if(strcmp(l->argv[1], "expire") == 0) {
		c->old_cert = EST_OLD_EXPIRE;
	} else if(strcmp(l->argv[1], "revoke") == 0) {
		c->old_cert = EST_OLD_REVOKE;
	} else {
		return conf_error(l, err, errlen, "`old_cert` is `expire` or `revoke`");
	}
	return 0;
}

static int set_rate(const conf_line_t *l, uint32_t *n, int64_t *ms, char *err, size_t errlen)
{
	int64_t v, d;
	if(util_parse_i64(l->argv[1], 1, 1000000, &v) || util_parse_duration_ms(l->argv[2], &d) ||
	   d < 1000 || d > INT64_C(86400000) * 7) {
		return conf_error(l, err, errlen, "`%s` wants COUNT PERIOD, e.g. `%s 5 1h` (1 s .. 7 d)",
		                  l->argv[0], l->argv[0]);
	}
	*n = (uint32_t)v;
	*ms = d;
	return 0;
}

static int set_rate_identity(est_conf_t *c, const conf_line_t *l, char *e, size_t n) { return set_rate(l, &c->rate_identity, &c->rate_identity_ms, e, n); }
static int set_rate_address(est_conf_t *c, const conf_line_t *l, char *e, size_t n) { return set_rate(l, &c->rate_address, &c->rate_address_ms, e, n); }

static const struct {
	const char *name;
	int args; /* words after the name */
	conf_set_fn set;
} conf_table[] = {
    {"listen", 1, set_listen},
    {"tls_cert", 1, set_tls_cert},
    {"tls_key", 1, set_tls_key},
    {"pki_dir", 1, set_pki_dir},
    {"ca_cert", 1, set_ca_cert},
    {"issuer_cert", 1, set_issuer_cert},
    {"issuer_key", 1, set_issuer_key},
    {"tokens", 1, set_tokens},
    {"audit_log", 1, set_audit_log},
    {"cert_days", 1, set_cert_days},
    {"old_cert", 1, set_old_cert},
    {"rate_identity", 2, set_rate_identity},
    {"rate_address", 2, set_rate_address},
};

static int conf_line(void *ud, const conf_line_t *l, char *err, size_t errlen)
{
	conf_state_t *st = ud;
	for(size_t i = 0; i < sizeof(conf_table) / sizeof(conf_table[0]); i++) {
		if(strcmp(l->argv[0], conf_table[i].name) != 0) {
			continue;
		}
		if(st->seen & (1u << i)) {
			return conf_error(l, err, errlen, "`%s` is duplicate", l->argv[0]);
		}
		st->seen |= 1u << i;
		if(l->argc != conf_table[i].args + 1) {
			return conf_error(l, err, errlen, "`%s` takes %d value%s", l->argv[0],
			                  conf_table[i].args, conf_table[i].args == 1 ? "" : "s");
		}
		return conf_table[i].set(st->c, l, err, errlen);
	}
	return conf_error(l, err, errlen, "unknown directive; see config/est.conf for the list");
}

static void conf_defaults(est_conf_t *c)
{
	memset(c, 0, sizeof(*c));
	c->cert_days = 90;
	c->old_cert = EST_OLD_REVOKE;
	c->rate_identity = 5;
	c->rate_identity_ms = 3600 * 1000;
	c->rate_address = 30;
	c->rate_address_ms = 60 * 1000;
}

static int conf_finish(const char *name, est_conf_t *c, char *err, size_t errlen)
{
	const char *miss = !c->listen_port ? "listen"
	                   : !c->tls_cert[0] ? "tls_cert"
	                   : !c->tls_key[0] ? "tls_key"
	                   : !c->pki_dir[0] ? "pki_dir"
	                   : !c->issuer_key[0] ? "issuer_key"
	                                       : NULL;
	if(miss) {
		util_snprintf(err, errlen, "%s: `%s` is required (see config/est.conf)", name, miss);
		return -1;
	}
	if((!c->ca_cert[0] && util_snprintf(c->ca_cert, EST_PATH_MAX, "%s/ca.crt", c->pki_dir) < 0) ||
	   (!c->issuer_cert[0] && util_strlcpy(c->issuer_cert, c->ca_cert, EST_PATH_MAX)) ||
	   (!c->tokens[0] &&
	    util_snprintf(c->tokens, EST_PATH_MAX, "%s/enroll-tokens.txt", c->pki_dir) < 0)) {
		util_snprintf(err, errlen, "%s: pki_dir is too long", name);
		return -1;
	}
	return 0;
}

int est_conf_parse(const char *name, const char *buf, size_t len, est_conf_t *c, char *err,
                   size_t errlen)
{
	conf_defaults(c);
	conf_state_t st = {.c = c};
	if(conf_parse_buffer(name, buf, len, conf_line, &st, err, errlen)) {
		return -1;
	}
	return conf_finish(name, c, err, errlen);
}

int est_conf_load(const char *path, est_conf_t *c, char *err, size_t errlen)
{
	conf_defaults(c);
	conf_state_t st = {.c = c};
	if(conf_parse_file(path, conf_line, &st, err, errlen)) {
		return -1;
	}
	return conf_finish(path, c, err, errlen);
}
