/*
 * est_token.c — the enrollment token store (see est_token.h).
 */
#include "est_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "envelope.h"
#include "identity.h"
#include "util.h"

void est_tokens_free(est_tokens_t *t)
{
	if(!t) {
		return;
	}
	free(t->v);
	memset(t, 0, sizeof(*t));
}

static bool token_hex64(const char *s)
{
	if(strlen(s) != 64) {
		return false;
	}
	for(; *s; s++) {
		if(!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) {
			return false;
		}
	}
	return true;
}

/* 2..64 upper-case hex digits, as index.txt writes serials. */
static bool token_serial(const char *s)
{
	size_t n = strlen(s);
	if(n < 2 || n > 64) {
		return false;
	}
	for(; *s; s++) {
		if(!((*s >= '0' && *s <= '9') || (*s >= 'A' && *s <= 'F'))) {
			return false;
		}
	}
	return true;
}

/* identity/site/line: the plugin's rules, and scripts/pki's length limit. */
static int token_name(const conf_line_t *l, const char *what, const char *v, char *dst,
                      size_t dstlen, bool dash_empty, char *err, size_t errlen)
{
	if(dash_empty && strcmp(v, "-") == 0) {
		dst[0] = '\0';
		return 0;
	}
	const char *why = NULL;
	if(!identity_valid(v, strlen(v), EST_NAME_MAX, &why)) {
		return conf_error(l, err, errlen, "%s is not a valid name: %s", what, why);
	}
	return util_strlcpy(dst, v, dstlen) ? conf_error(l, err, errlen, "%s too long", what) : 0;
}

static int token_line(void *ud, const conf_line_t *l, char *err, size_t errlen)
{
	est_tokens_t *t = ud;
	if(strcmp(l->argv[0], "token") != 0) {
		return conf_error(l, err, errlen, "unknown keyword; expected `token HASH ID SITE LINE "
		                                  "EXPIRES unused|used` (made by scripts/pki enroll-token)");
	}
	if(l->argc != 7) {
		return conf_error(l, err, errlen, "%d words; expected `token HASH ID SITE LINE EXPIRES "
		                                  "unused|used`",
		                  l->argc);
	}
	est_token_t k;
	memset(&k, 0, sizeof(k));
	if(!token_hex64(l->argv[1])) {
		return conf_error(l, err, errlen, "the hash is not 64 lower-case hex digits (SHA-256)");
	}
	memcpy(k.hash, l->argv[1], 65);
	if(token_name(l, "identity", l->argv[2], k.id, sizeof(k.id), false, err, errlen) ||
	   token_name(l, "site", l->argv[3], k.site, sizeof(k.site), true, err, errlen) ||
	   token_name(l, "line", l->argv[4], k.line, sizeof(k.line), true, err, errlen)) {
		return -1;
	}
	if(util_parse_i64(l->argv[5], 0, INT64_C(253402300799), &k.expires)) {
		return conf_error(l, err, errlen, "expiry is not a time in unix seconds");
	}
	const char *st = l->argv[6];
	if(strcmp(st, "used") == 0) {
		k.used = true;
	} else if(strncmp(st, "used:", 5) == 0 && token_serial(st + 5)) {
		k.used = true;
		memcpy(k.serial, st + 5, strlen(st + 5) + 1);
	} else if(strcmp(st, "unused") != 0) {
		return conf_error(l, err, errlen, "state must be `unused`, `used` or `used:SERIAL`");
	}
	for(size_t i = 0; i < t->n; i++) {
		if(strcmp(t->v[i].hash, k.hash) == 0) {
			return conf_error(l, err, errlen, "duplicate token hash");
		}
	}
	if(t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 16;
		est_token_t *nv = realloc(t->v, nc * sizeof(*nv));
		if(!nv) {
			return conf_error(l, err, errlen, "out of memory");
		}
		t->v = nv;
		t->cap = nc;
	}
	t->v[t->n++] = k;
	return 0;
}

int est_tokens_parse(const char *name, const char *buf, size_t len, est_tokens_t *out, char *err,
                     size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if(conf_parse_buffer(name, buf, len, token_line, out, err, errlen)) {
		est_tokens_free(out);
		return -1;
	}
	return 0;
}

int est_tokens_load(const char *path, est_tokens_t *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	FILE *f = fopen(path, "re");
	if(!f) {
		return 0; /* no token issued yet */
	}
	fclose(f);
	if(conf_parse_file(path, token_line, out, err, errlen)) {
		est_tokens_free(out);
		return -1;
	}
	return 0;
}

char *est_tokens_format(const est_tokens_t *t, size_t *len)
{
	static const char head[] = "# plantgate enrollment tokens (scripts/pki enroll-token; "
	                           "plantgate-est marks them used)\n"
	                           "# token SHA256 IDENTITY SITE LINE EXPIRES unused|used[:SERIAL]\n";
	size_t cap = sizeof(head) + t->n * 400; /* a line is at most ~360 bytes */
	char *s = malloc(cap);
	if(!s) {
		return NULL;
	}
	size_t o = util_strlcpy(s, head, cap) ? 0 : strlen(head);
	for(size_t i = 0; i < t->n; i++) {
		const est_token_t *k = &t->v[i];
		int n = snprintf(s + o, cap - o, "token %s %s %s %s %lld %s%s%s\n", k->hash, k->id,
		                 k->site[0] ? k->site : "-", k->line[0] ? k->line : "-",
		                 (long long)k->expires, k->used ? "used" : "unused",
		                 k->used && k->serial[0] ? ":" : "", k->used ? k->serial : "");
		if(n < 0 || (size_t)n >= cap - o) {
			free(s);
			return NULL;
		}
		o += (size_t)n;
	}
	if(len) {
		*len = o;
	}
	return s;
}

est_err_t est_tokens_redeem(est_tokens_t *t, const char *identity, const char *token, int64_t now,
                            size_t *index, char *why, size_t whylen)
{
	unsigned char md[32];
	char hex[65];
	if(!token || !*token) {
		util_strlcpy(why, "no enrollment token given", whylen);
		return EST_E_TOKEN;
	}
	if(envelope_sha256(token, strlen(token), md)) {
		util_strlcpy(why, "cannot hash the token", whylen);
		return EST_E_INTERNAL;
	}
	util_hex(md, sizeof(md), hex);
	for(size_t i = 0; i < t->n; i++) {
		est_token_t *k = &t->v[i];
		if(CRYPTO_memcmp(k->hash, hex, 64) != 0) {
			continue;
		}
		if(strcmp(k->id, identity) != 0) {
			util_snprintf(why, whylen, "the token was issued for another identity than %.64s",
			              identity);
			return EST_E_IDENTITY;
		}
		if(k->used) {
			*index = i;
			util_strlcpy(why, "a token works once; ask the operator for a new one "
			                  "(scripts/pki enroll-token)",
			             whylen);
			return EST_E_REPLAY;
		}
		if(now >= k->expires) {
			util_strlcpy(why, "the token has expired; ask the operator for a new one "
			                  "(scripts/pki enroll-token)",
			             whylen);
			return EST_E_TOKEN;
		}
		k->used = true;
		*index = i;
		return EST_OK;
	}
	util_strlcpy(why, "unknown enrollment token", whylen);
	return EST_E_TOKEN;
}
