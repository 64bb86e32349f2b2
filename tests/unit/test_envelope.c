/*
 * test_envelope.c — the integrity envelope (common/envelope.c) against the
 * repository's test vector (tests/vectors/envelope-v1.json, made by an
 * independent Python implementation and the openssl command line): the
 * signed bytes, key id and Ed25519 signature are recomputed exactly and
 * verified; each signed field altered makes verification fail; hostile
 * property values, JSON wrappers and capture lines are refused, not
 * misread; the JSON wrapper and capture lines round-trip; ECDSA P-256 and
 * key sets (rotation) work.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "envelope.h"
#include "json.h"

/* The vector, as read from the repository. */
typedef struct vec {
	char *priv_pem, *pub_pem, *kid, *site, *device, *topic, *cloud_topic, *payload_b64;
	char *tbs_hex, *sig_b64, *wrapper;
	int64_t seq, rx, ts;
	unsigned char payload[256];
	size_t payload_len;
	envelope_prop_t props[ENVELOPE_NPROPS];
	size_t nprops;
} vec_t;

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if(!f) {
		return NULL;
	}
	char *buf = malloc(1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if(buf) {
		buf[n] = '\0';
	}
	*len = n;
	return buf;
}

static int str_member(json_in_t *in, char **dst)
{
	free(*dst);
	return json_string(in, dst, NULL);
}

static void vec_load(vec_t *v)
{
	memset(v, 0, sizeof(*v));
	const char *src = getenv("PG_SOURCE_DIR");
	char path[1024];
	snprintf(path, sizeof(path), "%s/tests/vectors/envelope-v1.json", src ? src : ".");
	size_t len = 0;
	char *text = read_all(path, &len);
	assert_non_null(text);
	json_in_t in;
	json_in_init(&in, text, len);
	bool first = true;
	char *key;
	assert_int_equal(json_expect(&in, '{'), 0);
	while(json_member(&in, &first, &key) == 1) {
		int r = 0;
		if(!strcmp(key, "private_key_pem")) {
			r = str_member(&in, &v->priv_pem);
		} else if(!strcmp(key, "public_key_pem")) {
			r = str_member(&in, &v->pub_pem);
		} else if(!strcmp(key, "kid")) {
			r = str_member(&in, &v->kid);
		} else if(!strcmp(key, "signed_bytes_hex")) {
			r = str_member(&in, &v->tbs_hex);
		} else if(!strcmp(key, "signature_b64")) {
			r = str_member(&in, &v->sig_b64);
		} else if(!strcmp(key, "json_wrapper")) {
			r = str_member(&in, &v->wrapper);
		} else if(!strcmp(key, "inputs")) {
			bool f2 = true;
			char *k2;
			assert_int_equal(json_expect(&in, '{'), 0);
			while(json_member(&in, &f2, &k2) == 1) {
				if(!strcmp(k2, "site")) {
					r |= str_member(&in, &v->site);
				} else if(!strcmp(k2, "device")) {
					r |= str_member(&in, &v->device);
				} else if(!strcmp(k2, "topic")) {
					r |= str_member(&in, &v->topic);
				} else if(!strcmp(k2, "cloud_topic")) {
					r |= str_member(&in, &v->cloud_topic);
				} else if(!strcmp(k2, "payload_b64")) {
					r |= str_member(&in, &v->payload_b64);
				} else if(!strcmp(k2, "seq")) {
					r |= json_int(&in, 1, INT64_MAX, &v->seq);
				} else if(!strcmp(k2, "rx_ms")) {
					r |= json_int(&in, 0, INT64_MAX, &v->rx);
				} else if(!strcmp(k2, "ts_ms")) {
					r |= json_int(&in, 0, INT64_MAX, &v->ts);
				} else {
					r |= json_skip(&in);
				}
				free(k2);
			}
		} else if(!strcmp(key, "mqtt5_user_properties")) {
			bool f2 = true;
			assert_int_equal(json_expect(&in, '['), 0);
			while(json_element(&in, &f2) == 1) {
				bool f3 = true;
				char *n = NULL, *val = NULL;
				assert_int_equal(json_expect(&in, '['), 0);
				assert_int_equal(json_element(&in, &f3), 1);
				assert_int_equal(json_string(&in, &n, NULL), 0);
				assert_int_equal(json_element(&in, &f3), 1);
				assert_int_equal(json_string(&in, &val, NULL), 0);
				assert_int_equal(json_element(&in, &f3), 0);
				assert_true(v->nprops < ENVELOPE_NPROPS);
				v->props[v->nprops].name = n;
				v->props[v->nprops].value = val;
				v->nprops++;
			}
		} else {
			r = json_skip(&in);
		}
		assert_int_equal(r, 0);
		free(key);
	}
	assert_true(json_at_end(&in));
	free(text);
	assert_non_null(v->priv_pem);
	assert_non_null(v->payload_b64);
	long pl = envelope_b64_decode(v->payload_b64, strlen(v->payload_b64), v->payload,
	                              sizeof(v->payload));
	assert_true(pl > 0);
	v->payload_len = (size_t)pl;
	assert_int_equal(v->nprops, ENVELOPE_NPROPS);
}

static void vec_free(vec_t *v)
{
	char **s[] = {&v->priv_pem, &v->pub_pem, &v->kid, &v->site, &v->device, &v->topic,
	              &v->cloud_topic, &v->payload_b64, &v->tbs_hex, &v->sig_b64, &v->wrapper};
	for(size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		free(*s[i]);
	}
	for(size_t i = 0; i < v->nprops; i++) {
		free((char *)v->props[i].name);
		free((char *)v->props[i].value);
	}
}

static envelope_key_t *load_key(const char *pem, bool priv)
{
	envelope_key_t *k = NULL;
	char err[512];
	assert_int_equal(envelope_key_from_pem(pem, strlen(pem), priv, &k, err, sizeof(err)),
	                 ENVELOPE_OK);
	return k;
}

static void keyset_of(envelope_keyset_t *ks, const char *pub_pem)
{
	size_t added;
	char err[512];
	memset(ks, 0, sizeof(*ks));
	assert_int_equal(envelope_keyset_add_pem(ks, pub_pem, strlen(pub_pem), &added, err,
	                                         sizeof(err)),
	                 ENVELOPE_OK);
	assert_int_equal(added, 1);
}

static void vec_envelope(const vec_t *v, envelope_t *e)
{
	memset(e, 0, sizeof(*e));
	e->site = v->site;
	e->device = v->device;
	e->topic = v->topic;
	e->seq = v->seq;
	e->rx_ms = v->rx;
	e->ts_ms = v->ts;
}

/* The vector's bytes, key id and (deterministic) signature, recomputed. */
static void vector_recomputed(void **state)
{
	vec_t v;
	vec_load(&v);
	envelope_key_t *k = load_key(v.priv_pem, true);
	assert_string_equal(envelope_key_kid(k), v.kid);
	assert_int_equal(envelope_key_alg(k), ENVELOPE_ALG_ED25519);
	envelope_key_t *pub = load_key(v.pub_pem, false);
	assert_string_equal(envelope_key_kid(pub), v.kid); /* same id from either half */
	envelope_key_free(pub);

	envelope_t e;
	vec_envelope(&v, &e);
	assert_int_equal(envelope_sign(&e, k, v.cloud_topic, v.payload, v.payload_len), ENVELOPE_OK);
	unsigned char *tbs;
	size_t tlen;
	assert_int_equal(envelope_signed_bytes(&e, v.cloud_topic, v.payload, v.payload_len, &tbs,
	                                       &tlen),
	                 ENVELOPE_OK);
	char *hex = malloc(2 * tlen + 1);
	for(size_t i = 0; i < tlen; i++) {
		snprintf(hex + 2 * i, 3, "%02x", tbs[i]);
	}
	assert_string_equal(hex, v.tbs_hex);
	free(hex);
	free(tbs);
	char sig[ENVELOPE_SIG_B64_MAX];
	envelope_b64_encode(e.sig, e.sig_len, sig);
	assert_string_equal(sig, v.sig_b64);

	envelope_keyset_t ks;
	keyset_of(&ks, v.pub_pem);
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, v.payload, v.payload_len),
	                 ENVELOPE_OK);

	/* The properties we would send are exactly the vector's. */
	envelope_props_t p;
	envelope_to_props(&e, &p);
	for(size_t i = 0; i < ENVELOPE_NPROPS; i++) {
		assert_string_equal(p.p[i].name, v.props[i].name);
		assert_string_equal(p.p[i].value, v.props[i].value);
	}
	/* And the JSON wrapper, byte for byte. */
	char *json;
	size_t jlen;
	assert_int_equal(envelope_to_json(&e, v.payload, v.payload_len, &json, &jlen), ENVELOPE_OK);
	assert_string_equal(json, v.wrapper);
	assert_int_equal(jlen, strlen(v.wrapper));
	free(json);
	envelope_keyset_free(&ks);
	envelope_key_free(k);
	vec_free(&v);
}

/* The vector as received: from properties and from the JSON wrapper. */
static void vector_parsed_and_verified(void **state)
{
	vec_t v;
	vec_load(&v);
	envelope_keyset_t ks;
	keyset_of(&ks, v.pub_pem);
	envelope_t e;
	char why[256];
	assert_int_equal(envelope_from_props(&e, v.props, v.nprops, why, sizeof(why)), ENVELOPE_OK);
	assert_string_equal(e.site, v.site);
	assert_string_equal(e.device, v.device);
	assert_int_equal(e.seq, v.seq);
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, v.payload, v.payload_len),
	                 ENVELOPE_OK);
	envelope_clear(&e);

	assert_int_equal(envelope_from_json(&e, v.wrapper, strlen(v.wrapper), why, sizeof(why)),
	                 ENVELOPE_OK);
	assert_int_equal(e.payload_len, v.payload_len);
	assert_memory_equal(e.payload, v.payload, v.payload_len);
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, e.payload, e.payload_len),
	                 ENVELOPE_OK);
	envelope_clear(&e);
	envelope_keyset_free(&ks);
	vec_free(&v);
}

/* Every signed field, altered alone, fails verification. */
static void tamper_each_field(void **state)
{
	vec_t v;
	vec_load(&v);
	envelope_keyset_t ks;
	keyset_of(&ks, v.pub_pem);
	envelope_t e;
	char why[256];
	assert_int_equal(envelope_from_props(&e, v.props, v.nprops, why, sizeof(why)), ENVELOPE_OK);
	const envelope_t good = e;
	unsigned char pay[256];
	memcpy(pay, v.payload, v.payload_len);
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len), ENVELOPE_OK);

	e.site = "kyoto";
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	e = good;
	e.device = "press-08";
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	e = good;
	e.device = ""; /* "no device" is not "any device" */
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	e = good;
	e.topic = "plant/osaka/line-3/press-07/telemetry/temq";
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	e = good;
	assert_int_equal(envelope_verify(&e, &ks, "sites/osaka/other", pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	pay[3] ^= 1;
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	pay[3] ^= 1;
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len - 1),
	                 ENVELOPE_BAD_SIGNATURE);
	e.seq++;
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	e = good;
	e.rx_ms--;
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	e = good;
	e.ts_ms += 1000;
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	e = good;
	e.sig[10] ^= 0x40;
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	e = good;
	e.sig_len--;
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	e = good;
	memcpy(e.kid, "0000000000000000", 16);
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_UNKNOWN_KEY);
	e = good;
	/* Moving bytes between adjacent fields keeps the concatenation but not
	 * the length prefixes. */
	e.site = "osakap";
	e.device = "ress-07";
	assert_int_equal(envelope_verify(&e, &ks, v.cloud_topic, pay, v.payload_len),
	                 ENVELOPE_BAD_SIGNATURE);
	e = good;
	envelope_clear(&e);
	envelope_keyset_free(&ks);
	vec_free(&v);
}

/* Parse the vector's properties with property `name` replaced by `value`
 * (NULL: removed); returns the parser's verdict. */
static envelope_rc_t props_with(const vec_t *v, const char *name, const char *value)
{
	envelope_prop_t p[ENVELOPE_NPROPS + 2];
	size_t n = 0;
	for(size_t i = 0; i < v->nprops; i++) {
		if(strcmp(v->props[i].name, name) == 0) {
			if(value) {
				p[n].name = name;
				p[n++].value = value;
			}
		} else {
			p[n++] = v->props[i];
		}
	}
	envelope_t e;
	char why[256] = "";
	envelope_rc_t rc = envelope_from_props(&e, p, n, why, sizeof(why));
	if(rc == ENVELOPE_MALFORMED || rc == ENVELOPE_UNSIGNED) {
		assert_true(why[0] != '\0');
	}
	envelope_clear(&e);
	return rc;
}

static void hostile_properties(void **state)
{
	vec_t v;
	vec_load(&v);
	static const struct {
		const char *name, *value;
	} bad[] = {
	    {"plantgate-seq", "0"},         {"plantgate-seq", "-1"},
	    {"plantgate-seq", "+1"},        {"plantgate-seq", " 1"},
	    {"plantgate-seq", "1 "},        {"plantgate-seq", "01"},
	    {"plantgate-seq", "0x10"},      {"plantgate-seq", "9223372036854775808"},
	    {"plantgate-seq", ""},          {"plantgate-rx", "1e3"},
	    {"plantgate-ts", "12.5"},       {"plantgate-v", "2"},
	    {"plantgate-v", "01"},          {"plantgate-kid", "4B7C8F8BE64630FF"},
	    {"plantgate-kid", "4b7c8f8be64630f"}, {"plantgate-kid", "4b7c8f8be64630ffa"},
	    {"plantgate-sig", ""},          {"plantgate-sig", "not base64!"},
	    {"plantgate-sig", "QQ"},        {"plantgate-sig", "QR=="}, /* unused bits set */
	    {"plantgate-sig", "QQ==QQ=="},  {"plantgate-site", ""},
	    {"plantgate-site", "\xff\xfe"}, {"plantgate-topic", ""},
	    {"plantgate-device", "\xc0\xaf"},
	};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if(props_with(&v, bad[i].name, bad[i].value) != ENVELOPE_MALFORMED) {
			fail_msg("%s=\"%s\" was accepted", bad[i].name, bad[i].value);
		}
	}
	/* A signature longer than any we make. */
	char longsig[400];
	memset(longsig, 'A', 200);
	longsig[200] = '\0';
	assert_int_equal(props_with(&v, "plantgate-sig", longsig), ENVELOPE_MALFORMED);
	/* Each field missing. */
	for(size_t i = 0; i < v.nprops; i++) {
		envelope_rc_t rc = props_with(&v, v.props[i].name, NULL);
		assert_int_equal(rc, ENVELOPE_MALFORMED);
	}
	/* Repeated, even with the same value: never "the first one wins". */
	envelope_prop_t p[ENVELOPE_NPROPS + 1];
	memcpy(p, v.props, sizeof(v.props));
	p[ENVELOPE_NPROPS] = v.props[2];
	envelope_t e;
	char why[256];
	assert_int_equal(envelope_from_props(&e, p, ENVELOPE_NPROPS + 1, why, sizeof(why)),
	                 ENVELOPE_MALFORMED);
	assert_non_null(strstr(why, "plantgate-device"));
	/* Other properties, also other plantgate-* ones, are ignored. */
	envelope_prop_t q[ENVELOPE_NPROPS + 2];
	memcpy(q, v.props, sizeof(v.props));
	q[ENVELOPE_NPROPS] = (envelope_prop_t){"plantgate-received", "123"};
	q[ENVELOPE_NPROPS + 1] = (envelope_prop_t){"unit", "C"};
	assert_int_equal(envelope_from_props(&e, q, ENVELOPE_NPROPS + 2, why, sizeof(why)),
	                 ENVELOPE_OK);
	envelope_clear(&e);
	/* No envelope at all: what an unsigned bridge sends. */
	envelope_prop_t u[2] = {{"plantgate-seq", "12"}, {"plantgate-device", "press-07"}};
	assert_int_equal(envelope_from_props(&e, u, 2, why, sizeof(why)), ENVELOPE_UNSIGNED);
	assert_int_equal(envelope_from_props(&e, NULL, 0, why, sizeof(why)), ENVELOPE_UNSIGNED);
	/* An empty device is allowed: the plant gave none. */
	assert_int_equal(props_with(&v, "plantgate-device", ""), ENVELOPE_OK);
	vec_free(&v);
}

static envelope_rc_t json_verdict(const char *text)
{
	envelope_t e;
	char why[256] = "";
	envelope_rc_t rc = envelope_from_json(&e, text, strlen(text), why, sizeof(why));
	envelope_clear(&e);
	return rc;
}

static void json_wrapper_hostile(void **state)
{
	vec_t v;
	vec_load(&v);
	/* Ordinary payloads are "unsigned", whatever they look like. */
	assert_int_equal(json_verdict(""), ENVELOPE_UNSIGNED);
	assert_int_equal(json_verdict("21.5"), ENVELOPE_UNSIGNED);
	assert_int_equal(json_verdict("{\"t\":21.5,\"v\":3.3}"), ENVELOPE_UNSIGNED);
	assert_int_equal(json_verdict("{\"sig\":1}"), ENVELOPE_UNSIGNED);
	assert_int_equal(json_verdict("{not json"), ENVELOPE_UNSIGNED);
	assert_int_equal(json_verdict("[1,2,3]"), ENVELOPE_UNSIGNED);

	/* The wrapper with one thing changed. */
	static const struct {
		const char *from, *to;
	} edits[] = {
	    {"\"seq\":4711", "\"seq\":4711.0"},
	    {"\"seq\":4711", "\"seq\":\"4711\""},
	    {"\"seq\":4711", "\"seq\":-4711"},
	    {"\"seq\":4711", "\"seq\":04711"},
	    {"\"seq\":4711", "\"seq\":99999999999999999999"},
	    {"\"v\":1", "\"v\":2"},
	    {"\"site\":\"osaka\"", "\"site\":\"osa\\u0000ka\""},
	    {"\"site\":\"osaka\"", "\"site\":\"\\ud800\""},
	    {"\"site\":\"osaka\"", "\"site\":\"osaka\",\"site\":\"osaka\""},
	    {"\"kid\":\"", "\"kid\":\"X"},
	    {"\"device\":\"press-07\",", ""},
	    {"\"payload_b64\":\"", "\"payload_b64\":\"@"},
	    {"\"rx\":", "\"rx\":[1],\"rx2\":"},
	};
	for(size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		char buf[2048];
		const char *at = strstr(v.wrapper, edits[i].from);
		assert_non_null(at);
		snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - v.wrapper), v.wrapper, edits[i].to,
		         at + strlen(edits[i].from));
		/* Malformed; or, when the edit broke the JSON itself, not a
		 * wrapper at all.  Never accepted. */
		envelope_rc_t rc = json_verdict(buf);
		if(rc != ENVELOPE_MALFORMED && !(rc == ENVELOPE_UNSIGNED && strstr(edits[i].to, "04711"))) {
			fail_msg("accepted (%d): %s", rc, buf);
		}
	}
	/* Trailing junk after a wrapper. */
	char buf[2048];
	snprintf(buf, sizeof(buf), "%s}", v.wrapper);
	assert_int_equal(json_verdict(buf), ENVELOPE_MALFORMED);
	/* White space and unknown members are fine; so are escapes that decode
	 * to the same text. */
	snprintf(buf, sizeof(buf), " \n%.*s,\"extra\":{\"a\":[1,2,{\"b\":null}]}}\n",
	         (int)strlen(v.wrapper) - 1, v.wrapper);
	assert_int_equal(json_verdict(buf), ENVELOPE_OK);
	const char *at = strstr(v.wrapper, "\"osaka\"");
	snprintf(buf, sizeof(buf), "%.*s\"\\u006fsaka\"%s", (int)(at - v.wrapper), v.wrapper,
	         at + 7);
	envelope_t e;
	char why[256];
	assert_int_equal(envelope_from_json(&e, buf, strlen(buf), why, sizeof(why)), ENVELOPE_OK);
	assert_string_equal(e.site, "osaka");
	envelope_clear(&e);
	/* Deep nesting in an unknown member is refused, not recursed into. */
	char deep[600];
	size_t n = (size_t)snprintf(deep, sizeof(deep), "{\"sig\":\"AA==\",\"payload_b64\":\"\",\"x\":");
	for(int i = 0; i < 200; i++) {
		deep[n++] = '[';
	}
	deep[n] = '\0';
	assert_int_equal(json_verdict(deep), ENVELOPE_MALFORMED);
	vec_free(&v);
}

/* A fresh key of each kind signs and verifies, and the wrapper round-trips
 * with a payload holding every byte value. */
static void roundtrip_algorithms(void **state)
{
	const char *types[] = {"ED25519", "EC"};
	unsigned char payload[256];
	for(int i = 0; i < 256; i++) {
		payload[i] = (unsigned char)i;
	}
	for(int t = 0; t < 2; t++) {
		EVP_PKEY *pk = t == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, types[t])
		                      : EVP_PKEY_Q_keygen(NULL, NULL, types[t], "P-256");
		assert_non_null(pk);
		char *pem = NULL, *pub = NULL;
		size_t len;
		FILE *f = open_memstream(&pem, &len);
		PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
		fclose(f);
		f = open_memstream(&pub, &len);
		PEM_write_PUBKEY(f, pk);
		fclose(f);
		EVP_PKEY_free(pk);
		envelope_key_t *k = load_key(pem, true);
		assert_int_equal(envelope_key_alg(k), t == 0 ? ENVELOPE_ALG_ED25519
		                                             : ENVELOPE_ALG_ECDSA_P256);
		envelope_keyset_t ks;
		keyset_of(&ks, pub);
		assert_string_equal(envelope_key_kid(ks.keys[0]), envelope_key_kid(k));
		envelope_t e = {.site = "s\"ite\\", .device = "dev\n\x01", .topic = "p/t", .seq = 1,
		                .rx_ms = 0, .ts_ms = INT64_MAX};
		assert_int_equal(envelope_sign(&e, k, "c/t", payload, sizeof(payload)), ENVELOPE_OK);
		assert_int_equal(envelope_verify(&e, &ks, "c/t", payload, sizeof(payload)),
		                 ENVELOPE_OK);
		char *json;
		size_t jlen;
		assert_int_equal(envelope_to_json(&e, payload, sizeof(payload), &json, &jlen),
		                 ENVELOPE_OK);
		/* envelope_json_max_len bounds the wrapper from above, closely (only
		 * the numbers and the signature may be shorter than their widest). */
		for(size_t n = 0; n <= 5; n++) {
			char *j2;
			size_t l2, bound = envelope_json_max_len(e.site, e.device, e.topic, n);
			assert_int_equal(envelope_to_json(&e, payload, n, &j2, &l2), ENVELOPE_OK);
			assert_true(l2 <= bound);
			assert_true(bound - l2 <= 100);
			free(j2);
		}
		assert_true(jlen <= envelope_json_max_len(e.site, e.device, e.topic, sizeof(payload)));
		envelope_t back;
		char why[256];
		assert_int_equal(envelope_from_json(&back, json, jlen, why, sizeof(why)), ENVELOPE_OK);
		assert_string_equal(back.site, e.site);
		assert_string_equal(back.device, e.device);
		assert_int_equal(back.ts_ms, INT64_MAX);
		assert_int_equal(back.payload_len, sizeof(payload));
		assert_memory_equal(back.payload, payload, sizeof(payload));
		assert_int_equal(envelope_verify(&back, &ks, "c/t", back.payload, back.payload_len),
		                 ENVELOPE_OK);
		envelope_clear(&back);
		free(json);
		/* The public half cannot sign. */
		assert_int_equal(envelope_sign(&e, ks.keys[0], "c/t", payload, 1), ENVELOPE_ERR_KEY);
		envelope_keyset_free(&ks);
		envelope_key_free(k);
		free(pem);
		free(pub);
	}
}

/* Key sets: several keys in one text (rotation), duplicates skipped, other
 * key types refused. */
static void keysets(void **state)
{
	vec_t v;
	vec_load(&v);
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char *pub = NULL;
	size_t len;
	FILE *f = open_memstream(&pub, &len);
	PEM_write_PUBKEY(f, pk);
	fclose(f);
	EVP_PKEY_free(pk);
	char both[4096];
	snprintf(both, sizeof(both), "old key:\n%s\nnew key:\n%s%s", v.pub_pem, pub, v.pub_pem);
	envelope_keyset_t ks = {0};
	size_t added;
	char err[512];
	assert_int_equal(envelope_keyset_add_pem(&ks, both, strlen(both), &added, err, sizeof(err)),
	                 ENVELOPE_OK);
	assert_int_equal(added, 2);
	assert_non_null(envelope_keyset_find(&ks, v.kid));
	assert_null(envelope_keyset_find(&ks, "0123456789abcdef"));
	envelope_keyset_free(&ks);
	free(pub);

	assert_int_equal(envelope_keyset_add_pem(&ks, "hello", 5, &added, err, sizeof(err)),
	                 ENVELOPE_ERR_KEY);
	envelope_keyset_free(&ks);
	const char *bad[] = {"RSA", "EC"};
	for(int i = 0; i < 2; i++) {
		pk = i == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
		            : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		assert_non_null(pk);
		char *pem = NULL;
		f = open_memstream(&pem, &len);
		PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
		fclose(f);
		EVP_PKEY_free(pk);
		envelope_key_t *k = NULL;
		assert_int_equal(envelope_key_from_pem(pem, strlen(pem), true, &k, err, sizeof(err)),
		                 ENVELOPE_ERR_KEY);
		assert_null(k);
		assert_non_null(strstr(err, i == 0 ? "only Ed25519" : "P-256"));
		(void)bad;
		free(pem);
	}
	/* A public key where a private one is needed, and garbage. */
	envelope_key_t *k = NULL;
	assert_int_equal(envelope_key_from_pem(v.pub_pem, strlen(v.pub_pem), true, &k, err,
	                                       sizeof(err)),
	                 ENVELOPE_ERR_KEY);
	assert_int_equal(envelope_key_from_pem("", 0, false, &k, err, sizeof(err)),
	                 ENVELOPE_ERR_KEY);
	vec_free(&v);
}

static void capture_lines(void **state)
{
	unsigned char payload[3] = {0, 0xff, '"'};
	envelope_prop_t props[3] = {{"plantgate-device", "a"}, {"plantgate-device", "b\"\n"},
	                            {"k", ""}};
	char *line;
	size_t len;
	assert_int_equal(envelope_capture_format("a/b", payload, 3, props, 3, &line, &len),
	                 ENVELOPE_OK);
	assert_null(memchr(line, '\n', len));
	envelope_capture_t c;
	char why[256];
	assert_int_equal(envelope_capture_parse(&c, line, len, why, sizeof(why)), ENVELOPE_OK);
	assert_string_equal(c.topic, "a/b");
	assert_int_equal(c.len, 3);
	assert_memory_equal(c.payload, payload, 3);
	assert_int_equal(c.nprops, 3); /* both copies kept */
	assert_string_equal(c.props[1].value, "b\"\n");
	envelope_capture_clear(&c);
	free(line);

	const char *ok[] = {
	    "{\"topic\":\"t\",\"payload_b64\":\"\"}",
	    "{\"payload_b64\":\"QQ==\",\"topic\":\"t\",\"props\":[],\"qos\":1,\"retain\":false}",
	};
	for(size_t i = 0; i < 2; i++) {
		assert_int_equal(envelope_capture_parse(&c, ok[i], strlen(ok[i]), why, sizeof(why)),
		                 ENVELOPE_OK);
		envelope_capture_clear(&c);
	}
	const char *bad[] = {
	    "",
	    "{}",
	    "{\"topic\":\"t\"}",
	    "{\"topic\":\"t\",\"payload_b64\":\"Q\"}",
	    "{\"topic\":\"t\",\"topic\":\"u\",\"payload_b64\":\"\"}",
	    "{\"topic\":1,\"payload_b64\":\"\"}",
	    "{\"topic\":\"t\",\"payload_b64\":\"\",\"props\":{\"a\":\"b\"}}",
	    "{\"topic\":\"t\",\"payload_b64\":\"\",\"props\":[[\"a\"]]}",
	    "{\"topic\":\"t\",\"payload_b64\":\"\",\"props\":[[\"a\",\"b\",\"c\"]]}",
	    "{\"topic\":\"t\",\"payload_b64\":\"\",\"props\":[[\"a\",1]]}",
	    "{\"topic\":\"t\",\"payload_b64\":\"\",\"props\":[],\"props\":[]}",
	    "{\"topic\":\"t\",\"payload_b64\":\"\"} x",
	    "{\"topic\":\"t\\u0000\",\"payload_b64\":\"\"}",
	};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if(envelope_capture_parse(&c, bad[i], strlen(bad[i]), why, sizeof(why)) !=
		   ENVELOPE_MALFORMED) {
			fail_msg("accepted: %s", bad[i]);
		}
		envelope_capture_clear(&c);
	}
}

static void base64_strict(void **state)
{
	unsigned char out[16];
	char enc[32];
	const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *exp[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for(int i = 0; i < 7; i++) {
		envelope_b64_encode((const unsigned char *)in[i], strlen(in[i]), enc);
		assert_string_equal(enc, exp[i]);
		long n = envelope_b64_decode(exp[i], strlen(exp[i]), out, sizeof(out));
		assert_int_equal(n, (long)strlen(in[i]));
		assert_memory_equal(out, in[i], (size_t)n);
	}
	const char *bad[] = {"Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zg==Zg==", "Zm 9", "Zm9\n", "=Zg="};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if(envelope_b64_decode(bad[i], strlen(bad[i]), out, sizeof(out)) >= 0) {
			fail_msg("accepted: %s", bad[i]);
		}
	}
	assert_int_equal(envelope_b64_decode("Zm9vYmFy", 8, out, 5), -1); /* no room */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(vector_recomputed),    cmocka_unit_test(vector_parsed_and_verified),
	    cmocka_unit_test(tamper_each_field),    cmocka_unit_test(hostile_properties),
	    cmocka_unit_test(json_wrapper_hostile), cmocka_unit_test(roundtrip_algorithms),
	    cmocka_unit_test(keysets),              cmocka_unit_test(capture_lines),
	    cmocka_unit_test(base64_strict),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
