/*
 * est_csr.c — decode and check PKCS#10 requests and issue device
 * certificates with scripts/pki's device profile (see est_csr.h).
 *
 * The profile is certs/openssl.cnf [device_ext], built with the same
 * X509V3 configuration strings `openssl ca` uses, so a certificate from
 * plantgate-est and one from `scripts/pki device` differ only in key, serial
 * and dates.
 */
#include "est_csr.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "util.h"

const char *est_strerror(est_err_t e)
{
	switch(e) {
	case EST_OK:
		return "ok";
	case EST_E_MALFORMED:
		return "malformed request";
	case EST_E_SIGNATURE:
		return "request signature does not verify";
	case EST_E_KEYTYPE:
		return "key type not allowed";
	case EST_E_IDENTITY:
		return "identity mismatch";
	case EST_E_TOKEN:
		return "enrollment token not accepted";
	case EST_E_REPLAY:
		return "enrollment token already used";
	case EST_E_CERT:
		return "client certificate not accepted";
	case EST_E_RATE:
		return "rate limited";
	case EST_E_INTERNAL:
		return "internal error";
	}
	return "?";
}

static est_err_t csr_fail(est_err_t e, char *why, size_t whylen, const char *msg)
{
	util_strlcpy(why, msg, whylen);
	return e;
}

long est_b64_decode_loose(const char *in, size_t len, unsigned char *out, size_t outlen)
{
	char *b64 = malloc(len + 1);
	if(!b64) {
		return -1;
	}
	size_t n = 0;
	for(size_t i = 0; i < len; i++) {
		if(in[i] != ' ' && in[i] != '\t' && in[i] != '\r' && in[i] != '\n') {
			b64[n++] = in[i];
		}
	}
	long got = n ? envelope_b64_decode(b64, n, out, outlen) : 0;
	free(b64);
	return n && got == 0 ? -1 : got;
}

est_err_t est_csr_decode(const char *body, size_t len, X509_REQ **out, char *why, size_t whylen)
{
	*out = NULL;
	if(len > EST_BODY_MAX) {
		return csr_fail(EST_E_MALFORMED, why, whylen, "request body larger than 16 KiB");
	}
	const char *p = body, *end = body + len;
	static const char begin[] = "-----BEGIN CERTIFICATE REQUEST-----";
	static const char fin[] = "-----END CERTIFICATE REQUEST-----";
	while(p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
		p++;
	}
	if((size_t)(end - p) >= sizeof(begin) - 1 && memcmp(p, begin, sizeof(begin) - 1) == 0) {
		p += sizeof(begin) - 1;
		const char *q = p;
		end = NULL;
		for(; q + sizeof(fin) - 1 <= body + len; q++) {
			if(memcmp(q, fin, sizeof(fin) - 1) == 0) {
				end = q;
				break;
			}
		}
		if(!end) {
			return csr_fail(EST_E_MALFORMED, why, whylen,
			                "PEM request without its END CERTIFICATE REQUEST line");
		}
	}
	unsigned char *der = malloc(len + 1);
	est_err_t rc = EST_E_MALFORMED;
	if(!der) {
		rc = csr_fail(EST_E_INTERNAL, why, whylen, "out of memory");
		goto out;
	}
	long got = est_b64_decode_loose(p, (size_t)(end - p), der, len + 1);
	if(got == 0) {
		csr_fail(rc, why, whylen, "empty request body; send the base64 DER PKCS#10 request");
		goto out;
	}
	if(got < 0) {
		csr_fail(rc, why, whylen, "request body is not base64 (RFC 7030: base64 of the DER PKCS#10)");
		goto out;
	}
	const unsigned char *dp = der;
	X509_REQ *req = d2i_X509_REQ(NULL, &dp, got);
	if(!req) {
		csr_fail(rc, why, whylen, "request body is base64 but not a DER PKCS#10 request");
		goto out;
	}
	if(dp != der + got) {
		X509_REQ_free(req);
		csr_fail(rc, why, whylen, "trailing bytes after the PKCS#10 request");
		goto out;
	}
	*out = req;
	rc = EST_OK;
out:
	free(der);
	return rc;
}

/* EC P-256 / P-384 or RSA 3072..8192: what scripts/pki makes and mosquitto's
 * TLS accepts; no DSA, no short RSA, no exotic curves. */
static est_err_t csr_key_ok(EVP_PKEY *pk, char *why, size_t whylen)
{
	int bits = EVP_PKEY_get_bits(pk);
	if(EVP_PKEY_is_a(pk, "EC")) {
		char curve[64] = "";
		size_t cl = 0;
		if(EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve),
		                                  &cl) != 1) {
			return csr_fail(EST_E_KEYTYPE, why, whylen, "EC key without a named curve");
		}
		if(strcmp(curve, "prime256v1") == 0 || strcmp(curve, "secp384r1") == 0) {
			return EST_OK;
		}
		util_snprintf(why, whylen, "EC key on curve %.40s; use P-256 or P-384", curve);
		return EST_E_KEYTYPE;
	}
	if(EVP_PKEY_is_a(pk, "RSA")) {
		if(bits >= 3072 && bits <= 8192) {
			return EST_OK;
		}
		util_snprintf(why, whylen, "RSA key of %d bits; use EC P-256 or RSA 3072..8192", bits);
		return EST_E_KEYTYPE;
	}
	util_snprintf(why, whylen, "%s key; use EC P-256 (or P-384, or RSA 3072..8192)",
	              EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "unknown");
	return EST_E_KEYTYPE;
}

est_err_t est_csr_check(X509_REQ *req, const char *identity, char *why, size_t whylen)
{
	EVP_PKEY *pk = X509_REQ_get0_pubkey(req);
	if(!pk) {
		return csr_fail(EST_E_MALFORMED, why, whylen, "request without a usable public key");
	}
	est_err_t rc = csr_key_ok(pk, why, whylen);
	if(rc) {
		return rc;
	}
	if(X509_REQ_verify(req, pk) != 1) {
		return csr_fail(EST_E_SIGNATURE, why, whylen,
		                "request signature does not verify with its own key");
	}
	X509_NAME *nm = X509_REQ_get_subject_name(req);
	int i = -1, seen = 0;
	while((i = X509_NAME_get_index_by_NID(nm, NID_commonName, i)) >= 0) {
		ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i));
		unsigned char *u = NULL;
		int ul = ASN1_STRING_to_UTF8(&u, d);
		bool same = ul >= 0 && (size_t)ul == strlen(identity) && memcmp(u, identity, (size_t)ul) == 0;
		OPENSSL_free(u);
		if(!same || ++seen > 1) {
			util_snprintf(why, whylen,
			              "request subject names a different identity than %.64s (leave the "
			              "subject empty or use CN=%.64s)",
			              identity, identity);
			return EST_E_IDENTITY;
		}
	}
	return EST_OK;
}

static int csr_add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if(!ext) {
		return -1;
	}
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

static int csr_add_name(X509_NAME *nm, const char *field, const char *v)
{
	if(!v || !*v) {
		return 0;
	}
	return X509_NAME_add_entry_by_txt(nm, field, MBSTRING_UTF8, (const unsigned char *)v, -1, -1,
	                                  0) == 1
	           ? 0
	           : -1;
}

X509 *est_issue(X509 *issuer, EVP_PKEY *issuer_key, X509_REQ *req, const est_subject_t *s,
                time_t now, long days, const unsigned char serial_rand[EST_SERIAL_BYTES],
                char *why, size_t whylen)
{
	X509 *cert = X509_new();
	X509_NAME *nm = X509_NAME_new();
	BIGNUM *bn = NULL;
	ASN1_INTEGER *serial = NULL;
	bool ok = false;
	char san[128];
	unsigned char sb[EST_SERIAL_BYTES];
	if(!cert || !nm) {
		goto out;
	}
	memcpy(sb, serial_rand, sizeof(sb));
	sb[0] = (unsigned char)((sb[0] & 0x7F) | 0x40); /* positive, always 16 bytes */
	bn = BN_bin2bn(sb, (int)sizeof(sb), NULL);
	serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	if(!serial || X509_set_version(cert, X509_VERSION_3) != 1 ||
	   X509_set_serialNumber(cert, serial) != 1) {
		goto out;
	}
	/* Subject in the order of openssl.cnf's policy_plantgate: L, OU, CN. */
	if(csr_add_name(nm, "L", s->site) || csr_add_name(nm, "OU", s->line) ||
	   csr_add_name(nm, "CN", s->identity) || X509_set_subject_name(cert, nm) != 1 ||
	   X509_set_issuer_name(cert, X509_get_subject_name(issuer)) != 1) {
		goto out;
	}
	if(!X509_time_adj_ex(X509_getm_notBefore(cert), 0, 0, &now) ||
	   !X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, &now)) {
		goto out;
	}
	if(X509_set_pubkey(cert, X509_REQ_get0_pubkey(req)) != 1) {
		goto out;
	}
	if(util_snprintf(san, sizeof(san), "URI:urn:plantgate:device:%s", s->identity) < 0) {
		goto out;
	}
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	if(csr_add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
	   csr_add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature") ||
	   csr_add_ext(cert, &ctx, NID_ext_key_usage, "clientAuth") ||
	   csr_add_ext(cert, &ctx, NID_subject_key_identifier, "hash") ||
	   csr_add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always") ||
	   csr_add_ext(cert, &ctx, NID_subject_alt_name, san)) {
		goto out;
	}
	if(X509_sign(cert, issuer_key, EVP_sha256()) <= 0) {
		goto out;
	}
	ok = true;
out:
	if(!ok) {
		util_strlcpy(why, "could not build or sign the certificate (OpenSSL error)", whylen);
		X509_free(cert);
		cert = NULL;
	}
	X509_NAME_free(nm);
	BN_free(bn);
	ASN1_INTEGER_free(serial);
	return cert;
}

int est_serial_hex(X509 *cert, char *out, size_t outlen)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	int rc = -1;
	if(hex) {
		const char *h = hex[0] == '0' && hex[1] == '\0' ? "00" : hex;
		rc = util_strlcpy(out, h, outlen);
	}
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

int est_index_row(X509 *cert, char *out, size_t outlen)
{
	char serial[128], dn[1024];
	const ASN1_TIME *na = X509_get0_notAfter(cert);
	if(est_serial_hex(cert, serial, sizeof(serial)) ||
	   !X509_NAME_oneline(X509_get_subject_name(cert), dn, (int)sizeof(dn))) {
		return -1;
	}
	return util_snprintf(out, outlen, "V\t%.*s\t\t%s\test\t%s\n", ASN1_STRING_length(na),
	                     (const char *)ASN1_STRING_get0_data(na), serial, dn) < 0
	           ? -1
	           : 0;
}

char *est_index_revoke(const char *index, size_t len, const char *serial, time_t now)
{
	struct tm tm;
	char full[32];
	if(!gmtime_r(&now, &tm) || strftime(full, sizeof(full), "%Y%m%d%H%M%SZ", &tm) != 15) {
		return NULL;
	}
	const char *when = full + 2; /* UTCTime, as openssl ca writes it */
	size_t cap = len + 64;
	char *out = malloc(cap + 1);
	if(!out) {
		return NULL;
	}
	size_t o = 0;
	bool done = false;
	const char *p = index, *end = index + len;
	while(p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		/* fields: status, expiry, revocation, serial, file, dn */
		const char *f[6];
		size_t fl[6];
		int nf = 0;
		const char *q = p;
		while(nf < 6) {
			const char *t = memchr(q, '\t', (size_t)(le - q));
			f[nf] = q;
			fl[nf] = (size_t)((t ? t : le) - q);
			nf++;
			if(!t) {
				break;
			}
			q = t + 1;
		}
		if(!done && nf == 6 && fl[0] == 1 && f[0][0] == 'V' && fl[3] == strlen(serial) &&
		   memcmp(f[3], serial, fl[3]) == 0) {
			int n = snprintf(out + o, cap + 1 - o, "R\t%.*s\t%s,superseded\t%.*s\n", (int)fl[1],
			                 f[1], when, (int)(le - f[3]), f[3]);
			if(n < 0 || (size_t)n > cap - o) {
				free(out);
				return NULL;
			}
			o += (size_t)n;
			done = true;
		} else {
			size_t l = (size_t)(le - p) + (nl ? 1 : 0);
			memcpy(out + o, p, l);
			o += l;
		}
		p = nl ? nl + 1 : end;
	}
	out[o] = '\0';
	if(!done) {
		free(out);
		return NULL;
	}
	return out;
}

STACK_OF(X509) *est_certs_only_decode(const char *body, size_t len, char *why, size_t whylen)
{
	STACK_OF(X509) *out = NULL;
	PKCS7 *p7 = NULL;
	unsigned char *der = len <= 4 * EST_BODY_MAX ? malloc(len + 1) : NULL;
	long got = der ? est_b64_decode_loose(body, len, der, len + 1) : -1;
	const unsigned char *dp = der;
	if(got <= 0 || !(p7 = d2i_PKCS7(NULL, &dp, got)) || dp != der + got) {
		util_strlcpy(why, "the response is not base64 of a DER PKCS#7", whylen);
		goto done;
	}
	STACK_OF(X509) *certs = PKCS7_type_is_signed(p7) && p7->d.sign ? p7->d.sign->cert : NULL;
	if(!certs || sk_X509_num(certs) < 1) {
		util_strlcpy(why, "the PKCS#7 response holds no certificate", whylen);
		goto done;
	}
	out = X509_chain_up_ref(certs);
	if(!out) {
		util_strlcpy(why, "out of memory", whylen);
	}
done:
	PKCS7_free(p7);
	free(der);
	return out;
}

static const struct {
	const char *name;
	int code;
} crl_reasons[] = {
    {"unspecified", CRL_REASON_UNSPECIFIED},
    {"keyCompromise", CRL_REASON_KEY_COMPROMISE},
    {"CACompromise", CRL_REASON_CA_COMPROMISE},
    {"affiliationChanged", CRL_REASON_AFFILIATION_CHANGED},
    {"superseded", CRL_REASON_SUPERSEDED},
    {"cessationOfOperation", CRL_REASON_CESSATION_OF_OPERATION},
    {"certificateHold", CRL_REASON_CERTIFICATE_HOLD},
};

/* One revoked row ("R", expiry, "time[,reason]", serial, "est", dn) into crl. */
static int crl_add_row(X509_CRL *crl, char *const f[6])
{
	char when[32];
	const char *comma = strchr(f[2], ',');
	size_t wl = comma ? (size_t)(comma - f[2]) : strlen(f[2]);
	if(wl == 0 || wl >= sizeof(when)) {
		return 0; /* unreadable revocation time: openssl ca would refuse it too */
	}
	memcpy(when, f[2], wl);
	when[wl] = '\0';
	BIGNUM *bn = NULL;
	X509_REVOKED *rv = X509_REVOKED_new();
	ASN1_TIME *t = ASN1_TIME_new();
	ASN1_INTEGER *serial = NULL;
	int rc = -1;
	if(!rv || !t || !BN_hex2bn(&bn, f[3]) || !(serial = BN_to_ASN1_INTEGER(bn, NULL)) ||
	   ASN1_TIME_set_string_X509(t, when) != 1 || X509_REVOKED_set_serialNumber(rv, serial) != 1 ||
	   X509_REVOKED_set_revocationDate(rv, t) != 1) {
		goto out;
	}
	for(size_t i = 0; comma && i < sizeof(crl_reasons) / sizeof(crl_reasons[0]); i++) {
		if(strcmp(comma + 1, crl_reasons[i].name) == 0 && crl_reasons[i].code != CRL_REASON_UNSPECIFIED) {
			ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();
			if(!e || ASN1_ENUMERATED_set(e, crl_reasons[i].code) != 1 ||
			   X509_REVOKED_add1_ext_i2d(rv, NID_crl_reason, e, 0, 0) != 1) {
				ASN1_ENUMERATED_free(e);
				goto out;
			}
			ASN1_ENUMERATED_free(e);
		}
	}
	if(X509_CRL_add0_revoked(crl, rv) != 1) {
		goto out;
	}
	rv = NULL;
	rc = 0;
out:
	X509_REVOKED_free(rv);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	return rc;
}

int est_index_split(char *line, char *f[6])
{
	int nf = 0;
	for(char *p = line; nf < 6; nf++) {
		f[nf] = p;
		char *tab = strchr(p, '\t');
		if(!tab) {
			return nf + 1;
		}
		*tab = '\0';
		p = tab + 1;
	}
	return nf;
}

bool est_index_next(char **cur, char *f[6])
{
	while(*cur && **cur) {
		char *line = *cur;
		char *nl = strchr(line, '\n');
		if(nl) {
			*nl = '\0';
			*cur = nl + 1;
		} else {
			*cur = line + strlen(line);
		}
		if(est_index_split(line, f) == 6) {
			return true;
		}
	}
	return false;
}

char est_index_status(const char *index, size_t len, const char *serial)
{
	char *copy = malloc(len + 1);
	char st = 0;
	if(!copy) {
		return 0;
	}
	memcpy(copy, index, len);
	copy[len] = '\0';
	char *f[6];
	for(char *cur = copy; !st && est_index_next(&cur, f);) {
		if(strcmp(f[3], serial) == 0 && strlen(f[0]) == 1) {
			st = f[0][0];
		}
	}
	free(copy);
	return st;
}

bool est_index_resendable(const char *index, size_t len, const char *old_serial,
                          const char *identity, char *newest, size_t n)
{
	char *copy = malloc(len + 1);
	bool superseded = false, found = false;
	char best_exp[32] = "";
	if(!copy) {
		return false;
	}
	memcpy(copy, index, len);
	copy[len] = '\0';
	char *f[6];
	for(char *cur = copy; est_index_next(&cur, f);) {
		const char *cn = strstr(f[5], "/CN=");
		size_t il = strlen(identity);
		bool mine = cn && strncmp(cn + 4, identity, il) == 0 &&
		            (cn[4 + il] == '\0' || cn[4 + il] == '/');
		if(!mine) {
			continue;
		}
		if(strcmp(f[0], "R") == 0 && strcmp(f[3], old_serial) == 0) {
			const char *comma = strchr(f[2], ',');
			superseded = comma && strcmp(comma + 1, "superseded") == 0;
		}
		/* Expiry times of one CA's rows share a format; compare as text
		 * after widening UTCTime (YYMMDD...) to four-digit years. */
		char exp[32];
		if(strlen(f[1]) == 13) {
			util_snprintf(exp, sizeof(exp), "%s%s", f[1][0] < '5' ? "20" : "19", f[1]);
		} else {
			util_strlcpy(exp, f[1], sizeof(exp));
		}
		if(strcmp(f[0], "V") == 0 && strcmp(f[4], "est") == 0 && strcmp(exp, best_exp) > 0) {
			util_strlcpy(best_exp, exp, sizeof(best_exp));
			found = util_strlcpy(newest, f[3], n) == 0;
		}
	}
	free(copy);
	return superseded && found;
}

X509_CRL *est_crl_build(X509 *issuer, EVP_PKEY *key, const char *index, size_t len, time_t now,
                        long days, long number)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	char *copy = malloc(len + 1);
	bool ok = false;
	if(!crl || !t || !num || !copy || X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	   X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) != 1 ||
	   !X509_time_adj_ex(t, 0, 0, &now) || X509_CRL_set1_lastUpdate(crl, t) != 1 ||
	   !X509_time_adj_ex(t, (int)days, 0, &now) || X509_CRL_set1_nextUpdate(crl, t) != 1) {
		goto out;
	}
	memcpy(copy, index, len);
	copy[len] = '\0';
	char *f[6];
	for(char *cur = copy; est_index_next(&cur, f);) {
		if(strcmp(f[0], "R") == 0 && strcmp(f[4], "est") == 0 && crl_add_row(crl, f)) {
			goto out;
		}
	}
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, NULL, NULL, crl, 0);
	X509_EXTENSION *aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier,
	                                          "keyid:always");
	int akiok = aki ? X509_CRL_add_ext(crl, aki, -1) : 0;
	X509_EXTENSION_free(aki);
	if(akiok != 1 || ASN1_INTEGER_set(num, number) != 1 ||
	   X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1 || X509_CRL_sort(crl) != 1 ||
	   X509_CRL_sign(crl, key, EVP_sha256()) <= 0) {
		goto out;
	}
	ok = true;
out:
	if(!ok) {
		X509_CRL_free(crl);
		crl = NULL;
	}
	free(copy);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(num);
	return crl;
}

char *est_b64_lines(const unsigned char *der, size_t dl, size_t *len)
{
	size_t rl = (dl + 2) / 3 * 4;
	char *raw = malloc(rl + 1);
	char *out = raw ? malloc(rl + rl / 64 + 2) : NULL;
	if(!out) {
		free(raw);
		return NULL;
	}
	rl = envelope_b64_encode(der, dl, raw);
	size_t o = 0;
	for(size_t i = 0; i < rl; i += 64) {
		size_t k = rl - i < 64 ? rl - i : 64;
		memcpy(out + o, raw + i, k);
		o += k;
		out[o++] = '\n';
	}
	out[o] = '\0';
	if(len) {
		*len = o;
	}
	free(raw);
	return out;
}

char *est_certs_only_b64(X509 *const *certs, size_t n, size_t *len)
{
	PKCS7 *p7 = PKCS7_new();
	unsigned char *der = NULL;
	char *out = NULL;
	if(!p7 || PKCS7_set_type(p7, NID_pkcs7_signed) != 1 ||
	   PKCS7_content_new(p7, NID_pkcs7_data) != 1) {
		goto done;
	}
	for(size_t i = 0; i < n; i++) {
		if(PKCS7_add_certificate(p7, certs[i]) != 1) {
			goto done;
		}
	}
	int dl = i2d_PKCS7(p7, &der);
	if(dl > 0) {
		out = est_b64_lines(der, (size_t)dl, len);
	}
done:
	OPENSSL_free(der);
	PKCS7_free(p7);
	return out;
}
