/*
 * envelope.c — the integrity envelope, version 1 (see envelope.h and
 * docs/integrity.md): the canonical signed bytes, Ed25519 / ECDSA P-256
 * signatures through OpenSSL's EVP interface, key ids, and the three
 * encodings (MQTT 5 user properties, the JSON wrapper, capture lines) in
 * both directions.  Every parser treats its input as hostile: fields are
 * length-checked, UTF-8-checked and parsed exactly; a field given twice is an
 * error, never "the first one wins".
 */
#include "envelope.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"

struct envelope_key {
	EVP_PKEY *pkey;
	int alg;
	bool priv;
	char kid[ENVELOPE_KID_LEN + 1];
};

const char *envelope_strerror(envelope_rc_t rc)
{
	switch(rc) {
	case ENVELOPE_OK:
		return "ok";
	case ENVELOPE_UNSIGNED:
		return "no integrity envelope";
	case ENVELOPE_MALFORMED:
		return "malformed integrity envelope";
	case ENVELOPE_BAD_SIGNATURE:
		return "signature does not match the message";
	case ENVELOPE_UNKNOWN_KEY:
		return "signed with a key that is not in the key set";
	case ENVELOPE_ERR_KEY:
		return "unusable key";
	case ENVELOPE_ERR_NOMEM:
		return "out of memory";
	case ENVELOPE_ERR_CRYPTO:
		return "cryptographic library error";
	}
	return "?";
}

void envelope_clear(envelope_t *e)
{
	if(!e) {
		return;
	}
	free(e->owned_);
	memset(e, 0, sizeof(*e));
}

/* ------------------------------------------------------------- helpers ---- */

static void why_set(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void why_set(char *why, size_t whylen, const char *fmt, ...)
{
	if(!why || !whylen) {
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static void ssl_reason(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256] = "";
	if(e) {
		ERR_error_string_n(e, buf, sizeof(buf));
	}
	ERR_clear_error();
	why_set(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static const char b64tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t envelope_b64_encode(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0, i = 0;
	for(; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64tab[v >> 18];
		out[o++] = b64tab[(v >> 12) & 63];
		out[o++] = b64tab[(v >> 6) & 63];
		out[o++] = b64tab[v & 63];
	}
	if(i < len) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
		out[o++] = b64tab[v >> 18];
		out[o++] = b64tab[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64tab[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_val(char c)
{
	if(c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if(c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if(c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	if(c == '+') {
		return 62;
	}
	if(c == '/') {
		return 63;
	}
	return -1;
}

long envelope_b64_decode(const char *in, size_t n, unsigned char *out, size_t outlen)
{
	if(n % 4) {
		return -1;
	}
	size_t o = 0;
	for(size_t i = 0; i < n; i += 4) {
		bool last = i + 4 == n;
		int v[4];
		int pad = 0;
		for(int k = 0; k < 4; k++) {
			if(in[i + k] == '=' && last && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if(pad) {
				return -1; /* data after '=' */
			}
			v[k] = b64_val(in[i + k]);
			if(v[k] < 0) {
				return -1;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		             (uint32_t)v[3];
		if((pad == 1 && (w & 0xFF)) || (pad == 2 && (w & 0xFFFF))) {
			return -1; /* non-canonical: unused bits set */
		}
		size_t take = 3 - (size_t)pad;
		if(o + take > outlen) {
			return -1;
		}
		out[o++] = (unsigned char)(w >> 16);
		if(take > 1) {
			out[o++] = (unsigned char)(w >> 8);
		}
		if(take > 2) {
			out[o++] = (unsigned char)w;
		}
	}
	return (long)o;
}

int envelope_sha256(const void *buf, size_t len, unsigned char out[32])
{
	unsigned int n = 0;
	if(EVP_Digest(len ? buf : "", len, out, &n, EVP_sha256(), NULL) != 1 || n != 32) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* Exact decimal: digits only, no sign, no leading zero, within [min, max]. */
static int dec_parse(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if(!*s || (s[0] == '0' && s[1]) || strspn(s, "0123456789") != strlen(s)) {
		return -1;
	}
	return util_parse_i64(s, min, max, out);
}

static bool kid_valid(const char *kid)
{
	return strlen(kid) == ENVELOPE_KID_LEN &&
	       strspn(kid, "0123456789abcdef") == ENVELOPE_KID_LEN;
}

static bool text_valid(const char *s, bool empty_ok)
{
	size_t n = strlen(s);
	return (empty_ok || n > 0) && n <= ENVELOPE_FIELD_MAX && util_utf8_valid(s, n);
}

/* Check a complete parsed envelope; NULL strings count as missing. */
static envelope_rc_t envelope_validate(const envelope_t *e, char *why, size_t whylen)
{
	if(e->version != ENVELOPE_VERSION) {
		why_set(why, whylen, "unsupported envelope version %lld (this verifier knows %d)",
		        (long long)e->version, ENVELOPE_VERSION);
		return ENVELOPE_MALFORMED;
	}
	if(!e->site || !text_valid(e->site, false)) {
		why_set(why, whylen, "site missing, empty or not UTF-8");
		return ENVELOPE_MALFORMED;
	}
	if(!e->device || !text_valid(e->device, true)) {
		why_set(why, whylen, "device missing or not UTF-8");
		return ENVELOPE_MALFORMED;
	}
	if(!e->topic || !text_valid(e->topic, false)) {
		why_set(why, whylen, "plant topic missing, empty or not UTF-8");
		return ENVELOPE_MALFORMED;
	}
	if(e->seq < 1 || e->rx_ms < 0 || e->ts_ms < 0) {
		why_set(why, whylen, "seq, rx or ts missing or out of range");
		return ENVELOPE_MALFORMED;
	}
	if(!kid_valid(e->kid)) {
		why_set(why, whylen, "key id missing or not 16 lower-case hex characters");
		return ENVELOPE_MALFORMED;
	}
	if(e->sig_len == 0) {
		why_set(why, whylen, "signature missing");
		return ENVELOPE_MALFORMED;
	}
	return ENVELOPE_OK;
}

/* ---------------------------------------------------------------- keys ---- */

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1; /* never prompt on a terminal: encrypted keys are refused */
}

static envelope_rc_t key_wrap(EVP_PKEY *pkey, bool priv, envelope_key_t **out, char *err,
                              size_t errlen)
{
	int alg = 0;
	if(EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519) {
		alg = ENVELOPE_ALG_ED25519;
	} else if(EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
		char group[64] = "";
		size_t glen = 0;
		if(EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) == 1 &&
		   (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)) {
			alg = ENVELOPE_ALG_ECDSA_P256;
		} else {
			why_set(err, errlen, "EC key on curve '%s': only P-256 is accepted",
			        group[0] ? group : "?");
		}
	} else {
		why_set(err, errlen, "key type %s: only Ed25519 and ECDSA P-256 keys are accepted",
		        OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)));
	}
	if(!alg) {
		ERR_clear_error();
		EVP_PKEY_free(pkey);
		return ENVELOPE_ERR_KEY;
	}
	envelope_key_t *k = calloc(1, sizeof(*k));
	unsigned char *der = NULL;
	int dlen = i2d_PUBKEY(pkey, &der);
	unsigned char h[32];
	if(!k || dlen <= 0 || envelope_sha256(der, (size_t)dlen, h)) {
		ssl_reason(err, errlen, "cannot compute the key id");
		OPENSSL_free(der);
		free(k);
		EVP_PKEY_free(pkey);
		return k ? ENVELOPE_ERR_CRYPTO : ENVELOPE_ERR_NOMEM;
	}
	OPENSSL_free(der);
	char hex[65];
	util_hex(h, sizeof(h), hex);
	memcpy(k->kid, hex, ENVELOPE_KID_LEN);
	k->kid[ENVELOPE_KID_LEN] = '\0';
	k->pkey = pkey;
	k->alg = alg;
	k->priv = priv;
	*out = k;
	return ENVELOPE_OK;
}

envelope_rc_t envelope_key_from_pem(const char *pem, size_t len, bool private_key,
                                    envelope_key_t **out, char *err, size_t errlen)
{
	*out = NULL;
	if(len > 1u << 20) {
		why_set(err, errlen, "not a PEM key (larger than 1 MiB)");
		return ENVELOPE_ERR_KEY;
	}
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if(!bio) {
		return ENVELOPE_ERR_NOMEM;
	}
	EVP_PKEY *pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
	                             : PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if(!pkey) {
		ssl_reason(err, errlen,
		           private_key ? "no usable PEM private key (encrypted keys are not supported)"
		                       : "no PEM public key (-----BEGIN PUBLIC KEY-----)");
		return ENVELOPE_ERR_KEY;
	}
	return key_wrap(pkey, private_key, out, err, errlen);
}

void envelope_key_free(envelope_key_t *k)
{
	if(!k) {
		return;
	}
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *envelope_key_kid(const envelope_key_t *k)
{
	return k->kid;
}

int envelope_key_alg(const envelope_key_t *k)
{
	return k->alg;
}

const char *envelope_alg_name(int alg)
{
	switch(alg) {
	case ENVELOPE_ALG_ED25519:
		return "ed25519";
	case ENVELOPE_ALG_ECDSA_P256:
		return "ecdsa-p256";
	default:
		return "?";
	}
}

envelope_rc_t envelope_keyset_add(envelope_keyset_t *ks, envelope_key_t *k)
{
	if(envelope_keyset_find(ks, k->kid)) {
		envelope_key_free(k);
		return ENVELOPE_OK;
	}
	envelope_key_t **n = realloc(ks->keys, (ks->n + 1) * sizeof(*n));
	if(!n) {
		envelope_key_free(k);
		return ENVELOPE_ERR_NOMEM;
	}
	ks->keys = n;
	ks->keys[ks->n++] = k;
	return ENVELOPE_OK;
}

envelope_rc_t envelope_keyset_add_pem(envelope_keyset_t *ks, const char *pem, size_t len,
                                      size_t *added, char *err, size_t errlen)
{
	*added = 0;
	if(len > 1u << 24) {
		why_set(err, errlen, "key file larger than 16 MiB");
		return ENVELOPE_ERR_KEY;
	}
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if(!bio) {
		return ENVELOPE_ERR_NOMEM;
	}
	envelope_rc_t rc = ENVELOPE_OK;
	size_t found = 0;
	EVP_PKEY *pkey;
	while((pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL)) != NULL) {
		envelope_key_t *k = NULL;
		rc = key_wrap(pkey, false, &k, err, errlen);
		if(rc == ENVELOPE_OK) {
			size_t before = ks->n;
			rc = envelope_keyset_add(ks, k);
			*added += ks->n - before;
		}
		if(rc != ENVELOPE_OK) {
			break;
		}
		found++;
	}
	ERR_clear_error(); /* the end of the text reads as "no start line" */
	BIO_free(bio);
	if(rc == ENVELOPE_OK && found == 0) {
		why_set(err, errlen, "no PEM public key (-----BEGIN PUBLIC KEY-----) found");
		rc = ENVELOPE_ERR_KEY;
	}
	return rc;
}

const envelope_key_t *envelope_keyset_find(const envelope_keyset_t *ks, const char *kid)
{
	for(size_t i = 0; i < ks->n; i++) {
		if(strcmp(ks->keys[i]->kid, kid) == 0) {
			return ks->keys[i];
		}
	}
	return NULL;
}

void envelope_keyset_free(envelope_keyset_t *ks)
{
	if(!ks) {
		return;
	}
	for(size_t i = 0; i < ks->n; i++) {
		envelope_key_free(ks->keys[i]);
	}
	free(ks->keys);
	ks->keys = NULL;
	ks->n = 0;
}

/* --------------------------------------------------- signed byte layout ---- */

static unsigned char *put_field(unsigned char *p, const void *v, size_t n)
{
	p[0] = (unsigned char)(n >> 24);
	p[1] = (unsigned char)(n >> 16);
	p[2] = (unsigned char)(n >> 8);
	p[3] = (unsigned char)n;
	if(n) {
		memcpy(p + 4, v, n);
	}
	return p + 4 + n;
}

static void be64(unsigned char out[8], int64_t v)
{
	uint64_t u = (uint64_t)v;
	for(int i = 7; i >= 0; i--) {
		out[i] = (unsigned char)u;
		u >>= 8;
	}
}

envelope_rc_t envelope_signed_bytes(const envelope_t *e, const char *cloud_topic,
                                    const void *payload, size_t len, unsigned char **out,
                                    size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	const char *dev = e->device ? e->device : "";
	size_t ls = strlen(e->site), ld = strlen(dev), lt = strlen(e->topic),
	       lc = strlen(cloud_topic);
	if(ls > ENVELOPE_FIELD_MAX || ld > ENVELOPE_FIELD_MAX || lt > ENVELOPE_FIELD_MAX ||
	   lc > ENVELOPE_FIELD_MAX) {
		return ENVELOPE_MALFORMED;
	}
	unsigned char digest[32], seq[8], rx[8], ts[8];
	if(envelope_sha256(payload, len, digest)) {
		return ENVELOPE_ERR_CRYPTO;
	}
	be64(seq, e->seq);
	be64(rx, e->rx_ms);
	be64(ts, e->ts_ms);
	size_t total = ENVELOPE_MAGIC_LEN + 9 * 4 + ls + ld + lt + lc + 32 + 3 * 8 + ENVELOPE_KID_LEN;
	unsigned char *b = malloc(total);
	if(!b) {
		return ENVELOPE_ERR_NOMEM;
	}
	memcpy(b, ENVELOPE_MAGIC, ENVELOPE_MAGIC_LEN);
	unsigned char *p = b + ENVELOPE_MAGIC_LEN;
	p = put_field(p, e->site, ls);
	p = put_field(p, dev, ld);
	p = put_field(p, e->topic, lt);
	p = put_field(p, cloud_topic, lc);
	p = put_field(p, digest, 32);
	p = put_field(p, seq, 8);
	p = put_field(p, rx, 8);
	p = put_field(p, ts, 8);
	p = put_field(p, e->kid, ENVELOPE_KID_LEN);
	*out = b;
	*outlen = (size_t)(p - b);
	return ENVELOPE_OK;
}

envelope_rc_t envelope_sign(envelope_t *e, const envelope_key_t *k, const char *cloud_topic,
                            const void *payload, size_t len)
{
	if(!k->priv) {
		return ENVELOPE_ERR_KEY;
	}
	e->version = ENVELOPE_VERSION;
	memcpy(e->kid, k->kid, sizeof(e->kid));
	e->sig_len = 0;
	unsigned char *tbs;
	size_t tlen;
	envelope_rc_t rc = envelope_signed_bytes(e, cloud_topic, payload, len, &tbs, &tlen);
	if(rc) {
		return rc;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t slen = sizeof(e->sig);
	rc = ENVELOPE_ERR_CRYPTO;
	if(ctx &&
	   EVP_DigestSignInit(ctx, NULL, k->alg == ENVELOPE_ALG_ED25519 ? NULL : EVP_sha256(), NULL,
	                      k->pkey) == 1 &&
	   EVP_DigestSign(ctx, e->sig, &slen, tbs, tlen) == 1) {
		e->sig_len = slen;
		rc = ENVELOPE_OK;
	}
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	free(tbs);
	return rc;
}

envelope_rc_t envelope_verify(const envelope_t *e, const envelope_keyset_t *ks,
                              const char *cloud_topic, const void *payload, size_t len)
{
	const envelope_key_t *k = envelope_keyset_find(ks, e->kid);
	if(!k) {
		return ENVELOPE_UNKNOWN_KEY;
	}
	unsigned char *tbs;
	size_t tlen;
	envelope_rc_t rc = envelope_signed_bytes(e, cloud_topic, payload, len, &tbs, &tlen);
	if(rc == ENVELOPE_MALFORMED) {
		return ENVELOPE_BAD_SIGNATURE; /* a field too long was never signed */
	}
	if(rc) {
		return rc;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	rc = ENVELOPE_ERR_NOMEM;
	if(ctx) {
		rc = ENVELOPE_BAD_SIGNATURE;
		if(EVP_DigestVerifyInit(ctx, NULL, k->alg == ENVELOPE_ALG_ED25519 ? NULL : EVP_sha256(),
		                        NULL, k->pkey) == 1 &&
		   EVP_DigestVerify(ctx, e->sig, e->sig_len, tbs, tlen) == 1) {
			rc = ENVELOPE_OK;
		}
	}
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	free(tbs);
	return rc;
}

/* --------------------------------------------------------- properties ---- */

enum { P_V, P_SITE, P_DEVICE, P_TOPIC, P_SEQ, P_RX, P_TS, P_KID, P_SIG };
static const char *const prop_names[ENVELOPE_NPROPS] = {
    "plantgate-v",   "plantgate-site", "plantgate-device", "plantgate-topic", "plantgate-seq",
    "plantgate-rx",  "plantgate-ts",   "plantgate-kid",    "plantgate-sig"};

void envelope_to_props(const envelope_t *e, envelope_props_t *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->num[0], sizeof(out->num[0]), "%lld", (long long)e->version);
	snprintf(out->num[1], sizeof(out->num[1]), "%lld", (long long)e->seq);
	snprintf(out->num[2], sizeof(out->num[2]), "%lld", (long long)e->rx_ms);
	snprintf(out->num[3], sizeof(out->num[3]), "%lld", (long long)e->ts_ms);
	envelope_b64_encode(e->sig, e->sig_len, out->sig);
	const char *vals[ENVELOPE_NPROPS] = {out->num[0], e->site, e->device ? e->device : "",
	                                     e->topic,    out->num[1], out->num[2],
	                                     out->num[3], e->kid,      out->sig};
	for(int i = 0; i < ENVELOPE_NPROPS; i++) {
		out->p[i].name = prop_names[i];
		out->p[i].value = vals[i];
	}
}

/* Copy the strings of e (and the payload) into one block owned by e. */
static envelope_rc_t envelope_own(envelope_t *e, const char *site, const char *device,
                                  const char *topic, const unsigned char *payload, size_t plen)
{
	size_t ls = strlen(site) + 1, ld = strlen(device) + 1, lt = strlen(topic) + 1;
	char *a = malloc(ls + ld + lt + plen + 1);
	if(!a) {
		return ENVELOPE_ERR_NOMEM;
	}
	memcpy(a, site, ls);
	memcpy(a + ls, device, ld);
	memcpy(a + ls + ld, topic, lt);
	if(plen) {
		memcpy(a + ls + ld + lt, payload, plen);
	}
	free(e->owned_);
	e->owned_ = a;
	e->site = a;
	e->device = a + ls;
	e->topic = a + ls + ld;
	if(payload) {
		e->payload = (const unsigned char *)(a + ls + ld + lt);
		e->payload_len = plen;
	}
	return ENVELOPE_OK;
}

static envelope_rc_t sig_from_b64(envelope_t *e, const char *s, size_t n)
{
	unsigned char buf[ENVELOPE_SIG_MAX + 3];
	if(n == 0 || n > 4 * ((ENVELOPE_SIG_MAX + 2) / 3)) {
		return ENVELOPE_MALFORMED;
	}
	long got = envelope_b64_decode(s, n, buf, sizeof(buf));
	if(got <= 0 || got > ENVELOPE_SIG_MAX) {
		return ENVELOPE_MALFORMED;
	}
	memcpy(e->sig, buf, (size_t)got);
	e->sig_len = (size_t)got;
	return ENVELOPE_OK;
}

envelope_rc_t envelope_from_props(envelope_t *e, const envelope_prop_t *props, size_t n,
                                  char *why, size_t whylen)
{
	memset(e, 0, sizeof(*e));
	const char *val[ENVELOPE_NPROPS] = {NULL};
	for(size_t i = 0; i < n; i++) {
		if(!props[i].name || !props[i].value || strncmp(props[i].name, "plantgate-", 10) != 0) {
			continue;
		}
		for(int k = 0; k < ENVELOPE_NPROPS; k++) {
			if(strcmp(props[i].name, prop_names[k]) != 0) {
				continue;
			}
			if(val[k]) {
				why_set(why, whylen, "%s appears more than once", prop_names[k]);
				return ENVELOPE_MALFORMED;
			}
			val[k] = props[i].value;
		}
	}
	if(!val[P_SIG] && !val[P_V]) {
		why_set(why, whylen, "no plantgate-sig property");
		return ENVELOPE_UNSIGNED;
	}
	for(int k = 0; k < ENVELOPE_NPROPS; k++) {
		if(!val[k]) {
			why_set(why, whylen, "%s missing", prop_names[k]);
			return ENVELOPE_MALFORMED;
		}
	}
	envelope_t t = {0};
	if(dec_parse(val[P_V], 1, 1000000, &t.version) ||
	   dec_parse(val[P_SEQ], 1, INT64_MAX, &t.seq) ||
	   dec_parse(val[P_RX], 0, INT64_MAX, &t.rx_ms) ||
	   dec_parse(val[P_TS], 0, INT64_MAX, &t.ts_ms)) {
		why_set(why, whylen, "plantgate-v, -seq, -rx or -ts is not a plain decimal number");
		return ENVELOPE_MALFORMED;
	}
	if(!kid_valid(val[P_KID])) {
		why_set(why, whylen, "plantgate-kid is not 16 lower-case hex characters");
		return ENVELOPE_MALFORMED;
	}
	memcpy(t.kid, val[P_KID], ENVELOPE_KID_LEN + 1);
	if(sig_from_b64(&t, val[P_SIG], strlen(val[P_SIG]))) {
		why_set(why, whylen, "plantgate-sig is not a base64 signature");
		return ENVELOPE_MALFORMED;
	}
	t.site = val[P_SITE];
	t.device = val[P_DEVICE];
	t.topic = val[P_TOPIC];
	envelope_rc_t rc = envelope_validate(&t, why, whylen);
	if(rc) {
		return rc;
	}
	rc = envelope_own(&t, t.site, t.device, t.topic, NULL, 0);
	if(rc) {
		return rc;
	}
	*e = t;
	return ENVELOPE_OK;
}

/* -------------------------------------------------------- JSON wrapper ---- */

static void envelope_count(void *ctx, const char *s, size_t n)
{
	(void)s;
	*(size_t *)ctx += n;
}

/* Bytes of s as a JSON string, quotes included (as json_out_str writes it). */
static size_t envelope_json_str_len(const char *s)
{
	size_t n = 2;
	json_escape(s, strlen(s), 0, envelope_count, &n);
	return n;
}

size_t envelope_json_max_len(const char *site, const char *device, const char *topic,
                             size_t payload_len)
{
	/* The keys and punctuation of envelope_to_json, four numbers of at most
	 * 20 characters (v, seq, rx, ts), the quoted key id, payload and
	 * signature. */
	size_t keys = 5 + 8 + 10 + 9 + 7 + 6 + 6 + 7 + 15 + 7 + 1;
	return keys + 4 * 20 + (ENVELOPE_KID_LEN + 2) + (4 * ((payload_len + 2) / 3) + 2) +
	       (ENVELOPE_SIG_B64_MAX - 1 + 2) + envelope_json_str_len(site) +
	       envelope_json_str_len(device ? device : "") + envelope_json_str_len(topic);
}

envelope_rc_t envelope_to_json(const envelope_t *e, const void *payload, size_t len, char **out,
                               size_t *outlen)
{
	*out = NULL;
	char *b64 = malloc(4 * ((len + 2) / 3) + 1);
	char sig[ENVELOPE_SIG_B64_MAX];
	if(!b64) {
		return ENVELOPE_ERR_NOMEM;
	}
	size_t blen = envelope_b64_encode(payload, len, b64);
	size_t slen = envelope_b64_encode(e->sig, e->sig_len, sig);
	const char *dev = e->device ? e->device : "";
	json_out_t o = {0};
	json_out_raw(&o, "{\"v\":", 5);
	json_out_int(&o, e->version);
	json_out_raw(&o, ",\"site\":", 8);
	json_out_str(&o, e->site, strlen(e->site));
	json_out_raw(&o, ",\"device\":", 10);
	json_out_str(&o, dev, strlen(dev));
	json_out_raw(&o, ",\"topic\":", 9);
	json_out_str(&o, e->topic, strlen(e->topic));
	json_out_raw(&o, ",\"seq\":", 7);
	json_out_int(&o, e->seq);
	json_out_raw(&o, ",\"rx\":", 6);
	json_out_int(&o, e->rx_ms);
	json_out_raw(&o, ",\"ts\":", 6);
	json_out_int(&o, e->ts_ms);
	json_out_raw(&o, ",\"kid\":", 7);
	json_out_str(&o, e->kid, strlen(e->kid));
	json_out_raw(&o, ",\"payload_b64\":", 15);
	json_out_str(&o, b64, blen);
	json_out_raw(&o, ",\"sig\":", 7);
	json_out_str(&o, sig, slen);
	json_out_raw(&o, "}", 1);
	free(b64);
	*out = json_out_take(&o, outlen);
	return *out ? ENVELOPE_OK : ENVELOPE_ERR_NOMEM;
}

enum { J_V, J_SITE, J_DEVICE, J_TOPIC, J_SEQ, J_RX, J_TS, J_KID, J_PAYLOAD, J_SIG, J_COUNT };
static const char *const json_keys[J_COUNT] = {"v",  "site", "device", "topic",       "seq",
                                               "rx", "ts",   "kid",    "payload_b64", "sig"};

envelope_rc_t envelope_from_json(envelope_t *e, const void *buf, size_t len, char *why,
                                 size_t whylen)
{
	memset(e, 0, sizeof(*e));
	json_in_t in;
	json_in_init(&in, buf, len);
	if(!json_peek(&in, '{')) {
		why_set(why, whylen, "payload is not a JSON wrapper");
		return ENVELOPE_UNSIGNED;
	}
	in.p++;
	char *str[J_COUNT] = {NULL};
	size_t slen[J_COUNT] = {0};
	int64_t num[J_COUNT] = {0};
	bool seen[J_COUNT] = {false};
	const char *bad = NULL; /* first problem with a wrapper field */
	bool first = true, syntax = false;
	char *key = NULL;
	int r;
	envelope_rc_t rc = ENVELOPE_MALFORMED;
	unsigned char *payload = NULL;
	while((r = json_member(&in, &first, &key)) == 1) {
		int k;
		for(k = 0; k < J_COUNT && strcmp(key, json_keys[k]) != 0; k++) {
		}
		free(key);
		key = NULL;
		if(k == J_COUNT) {
			if(json_skip(&in)) {
				syntax = true;
				break;
			}
			continue;
		}
		if(seen[k] && !bad) {
			bad = json_keys[k];
		}
		bool is_num = k == J_V || k == J_SEQ || k == J_RX || k == J_TS;
		const char *at = in.p;
		int fr;
		if(is_num) {
			fr = json_int(&in, k == J_SEQ || k == J_V ? 1 : 0, INT64_MAX, &num[k]);
		} else {
			free(str[k]);
			str[k] = NULL;
			fr = json_peek(&in, '"') ? json_string(&in, &str[k], &slen[k]) : -1;
		}
		if(fr) {
			if(!bad) {
				bad = json_keys[k];
			}
			in.p = at; /* skip the whole value from its start */
			if(json_skip(&in)) {
				syntax = true;
				break;
			}
		}
		seen[k] = true;
	}
	if(r < 0 || syntax || !json_at_end(&in)) {
		/* Not JSON (or not only JSON): a wrapper is always well-formed, so
		 * this is an ordinary payload unless it claimed to be one. */
		rc = seen[J_SIG] && seen[J_PAYLOAD] ? ENVELOPE_MALFORMED : ENVELOPE_UNSIGNED;
		why_set(why, whylen, "%s", rc == ENVELOPE_UNSIGNED ? "payload is not a JSON wrapper"
		                                                   : "JSON wrapper: not valid JSON");
		goto out;
	}
	if(!seen[J_SIG] || !seen[J_PAYLOAD]) {
		rc = ENVELOPE_UNSIGNED;
		why_set(why, whylen, "JSON payload without \"sig\" and \"payload_b64\"");
		goto out;
	}
	if(bad) {
		why_set(why, whylen, "JSON wrapper: \"%s\" repeated or of the wrong type", bad);
		goto out;
	}
	for(int k = 0; k < J_COUNT; k++) {
		if(!seen[k]) {
			why_set(why, whylen, "JSON wrapper: \"%s\" missing", json_keys[k]);
			goto out;
		}
	}
	envelope_t t = {0};
	t.version = num[J_V];
	t.seq = num[J_SEQ];
	t.rx_ms = num[J_RX];
	t.ts_ms = num[J_TS];
	if(!kid_valid(str[J_KID])) {
		why_set(why, whylen, "JSON wrapper: \"kid\" is not 16 lower-case hex characters");
		goto out;
	}
	memcpy(t.kid, str[J_KID], ENVELOPE_KID_LEN + 1);
	if(sig_from_b64(&t, str[J_SIG], slen[J_SIG])) {
		why_set(why, whylen, "JSON wrapper: \"sig\" is not a base64 signature");
		goto out;
	}
	size_t pcap = 3 * (slen[J_PAYLOAD] / 4) + 1;
	payload = malloc(pcap);
	if(!payload) {
		rc = ENVELOPE_ERR_NOMEM;
		goto out;
	}
	long plen = envelope_b64_decode(str[J_PAYLOAD], slen[J_PAYLOAD], payload, pcap);
	if(plen < 0) {
		why_set(why, whylen, "JSON wrapper: \"payload_b64\" is not base64");
		goto out;
	}
	t.site = str[J_SITE];
	t.device = str[J_DEVICE];
	t.topic = str[J_TOPIC];
	rc = envelope_validate(&t, why, whylen);
	if(rc == ENVELOPE_OK) {
		rc = envelope_own(&t, t.site, t.device, t.topic, payload, (size_t)plen);
	}
	if(rc == ENVELOPE_OK) {
		*e = t;
	}
out:
	free(key);
	free(payload);
	for(int k = 0; k < J_COUNT; k++) {
		free(str[k]);
	}
	return rc;
}

/* ------------------------------------------------------- capture lines ---- */

envelope_rc_t envelope_capture_format(const char *topic, const void *payload, size_t len,
                                      const envelope_prop_t *props, size_t nprops, char **out,
                                      size_t *outlen)
{
	*out = NULL;
	char *b64 = malloc(4 * ((len + 2) / 3) + 1);
	if(!b64) {
		return ENVELOPE_ERR_NOMEM;
	}
	size_t blen = envelope_b64_encode(payload, len, b64);
	json_out_t o = {0};
	json_out_raw(&o, "{\"topic\":", 9);
	json_out_str(&o, topic, strlen(topic));
	json_out_raw(&o, ",\"payload_b64\":", 15);
	json_out_str(&o, b64, blen);
	json_out_raw(&o, ",\"props\":[", 10);
	for(size_t i = 0; i < nprops; i++) {
		json_out_raw(&o, i ? ",[" : "[", i ? 2 : 1);
		json_out_str(&o, props[i].name, strlen(props[i].name));
		json_out_raw(&o, ",", 1);
		json_out_str(&o, props[i].value, strlen(props[i].value));
		json_out_raw(&o, "]", 1);
	}
	json_out_raw(&o, "]}", 2);
	free(b64);
	*out = json_out_take(&o, outlen);
	return *out ? ENVELOPE_OK : ENVELOPE_ERR_NOMEM;
}

void envelope_capture_clear(envelope_capture_t *c)
{
	if(!c) {
		return;
	}
	for(size_t i = 0; i < c->nprops; i++) {
		free((char *)c->props[i].name);
		free((char *)c->props[i].value);
	}
	free(c->props);
	free(c->topic);
	free(c->payload);
	memset(c, 0, sizeof(*c));
}

/* One ["name","value"] pair appended to c->props. */
static int capture_pair(json_in_t *in, envelope_capture_t *c)
{
	bool first = true;
	char *name = NULL, *value = NULL;
	if(json_expect(in, '[') || json_element(in, &first) != 1 || json_string(in, &name, NULL) ||
	   json_element(in, &first) != 1 || json_string(in, &value, NULL) ||
	   json_element(in, &first) != 0) {
		goto bad;
	}
	envelope_prop_t *n = realloc(c->props, (c->nprops + 1) * sizeof(*n));
	if(!n) {
		goto bad;
	}
	c->props = n;
	c->props[c->nprops].name = name;
	c->props[c->nprops].value = value;
	c->nprops++;
	return 0;
bad:
	free(name);
	free(value);
	return -1;
}

envelope_rc_t envelope_capture_parse(envelope_capture_t *c, const char *line, size_t len,
                                     char *why, size_t whylen)
{
	memset(c, 0, sizeof(*c));
	json_in_t in;
	json_in_init(&in, line, len);
	bool first = true, have_payload = false;
	char *key = NULL, *b64 = NULL;
	size_t blen = 0;
	int r;
	if(json_expect(&in, '{')) {
		why_set(why, whylen, "not a JSON object");
		goto bad;
	}
	while((r = json_member(&in, &first, &key)) == 1) {
		if(strcmp(key, "topic") == 0) {
			if(c->topic || json_string(&in, &c->topic, NULL)) {
				why_set(why, whylen, "\"topic\" repeated or not a string");
				goto bad;
			}
		} else if(strcmp(key, "payload_b64") == 0) {
			if(have_payload || json_string(&in, &b64, &blen)) {
				why_set(why, whylen, "\"payload_b64\" repeated or not a string");
				goto bad;
			}
			have_payload = true;
		} else if(strcmp(key, "props") == 0) {
			bool f2 = true;
			int e;
			if(c->props || json_expect(&in, '[')) {
				why_set(why, whylen, "\"props\" repeated or not a list");
				goto bad;
			}
			while((e = json_element(&in, &f2)) == 1) {
				if(capture_pair(&in, c)) {
					why_set(why, whylen, "\"props\" must be a list of [\"name\",\"value\"]");
					goto bad;
				}
			}
			if(e < 0) {
				why_set(why, whylen, "\"props\" is not a valid list");
				goto bad;
			}
			if(!c->props) {
				c->props = malloc(1); /* present but empty: remember it was given */
				if(!c->props) {
					goto bad;
				}
			}
		} else if(json_skip(&in)) {
			why_set(why, whylen, "not valid JSON");
			goto bad;
		}
		free(key);
		key = NULL;
	}
	if(r < 0 || !json_at_end(&in)) {
		why_set(why, whylen, "not valid JSON");
		goto bad;
	}
	if(!c->topic || !have_payload) {
		why_set(why, whylen, "\"topic\" or \"payload_b64\" missing");
		goto bad;
	}
	c->payload = malloc(3 * (blen / 4) + 1);
	if(!c->payload) {
		goto bad;
	}
	long plen = envelope_b64_decode(b64, blen, c->payload, 3 * (blen / 4) + 1);
	if(plen < 0) {
		why_set(why, whylen, "\"payload_b64\" is not base64");
		goto bad;
	}
	c->len = (size_t)plen;
	free(b64);
	return ENVELOPE_OK;
bad:
	free(key);
	free(b64);
	envelope_capture_clear(c);
	return ENVELOPE_MALFORMED;
}
