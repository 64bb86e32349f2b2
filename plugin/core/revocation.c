/*
 * revocation.c — the plugin's revocation list and CRL (see revocation.h).
 */
#include "revocation.h"

#include <ctype.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "hmap.h"
#include "identity.h"
#include "util.h"

struct revocation {
	hmap_t *serials;    /* uppercase hex -> (void*)1 */
	hmap_t *sha256;     /* lowercase hex */
	hmap_t *identities; /* identity */
	X509_CRL *crl;
	size_t entries;
};

static void *const PRESENT = (void *)1;

void revocation_free(revocation_t *r)
{
	if(!r) {
		return;
	}
	hmap_free(r->serials);
	hmap_free(r->sha256);
	hmap_free(r->identities);
	X509_CRL_free(r->crl);
	free(r);
}

static revocation_t *revocation_new(void)
{
	revocation_t *r = calloc(1, sizeof(*r));
	if(!r) {
		return NULL;
	}
	r->serials = hmap_new(NULL);
	r->sha256 = hmap_new(NULL);
	r->identities = hmap_new(NULL);
	if(!r->serials || !r->sha256 || !r->identities) {
		revocation_free(r);
		return NULL;
	}
	return r;
}

static bool all_hex(const char *s, bool upper)
{
	if(!*s) {
		return false;
	}
	for(; *s; s++) {
		if(!isxdigit((unsigned char)*s) || (upper ? islower((unsigned char)*s) : isupper((unsigned char)*s))) {
			return false;
		}
	}
	return true;
}

static int on_line(void *ud, const conf_line_t *l, char *err, size_t errlen)
{
	revocation_t *r = ud;
	char norm[IDENTITY_MAX + 1];
	const char *why;
	if(l->argc != 2) {
		return conf_error(l, err, errlen,
		                  "expected `serial HEX`, `sha256 HEX` or `identity ID` (one per line)");
	}
	const char *kind = l->argv[0], *v = l->argv[1];
	hmap_t *into;
	if(!strcmp(kind, "serial")) {
		/* Accept any case and colons; store uppercase without colons. */
		size_t o = 0;
		for(const char *p = v; *p && o + 1 < sizeof(norm); p++) {
			if(*p != ':') {
				norm[o++] = (char)toupper((unsigned char)*p);
			}
		}
		norm[o] = '\0';
		if(!all_hex(norm, true) || strlen(norm) > 64) {
			return conf_error(l, err, errlen, "serial '%s' is not hex (e.g. serial 1A2B3C)", v);
		}
		/* openssl prints serials with an even number of digits. */
		if(strlen(norm) % 2) {
			memmove(norm + 1, norm, strlen(norm) + 1);
			norm[0] = '0';
		}
		into = r->serials;
		v = norm;
	} else if(!strcmp(kind, "sha256")) {
		size_t o = 0;
		for(const char *p = v; *p && o + 1 < sizeof(norm); p++) {
			if(*p != ':') {
				norm[o++] = (char)tolower((unsigned char)*p);
			}
		}
		norm[o] = '\0';
		if(strlen(norm) != 64 || !all_hex(norm, false)) {
			return conf_error(l, err, errlen, "sha256 fingerprint must be 64 hex digits");
		}
		into = r->sha256;
		v = norm;
	} else if(!strcmp(kind, "identity")) {
		if(!identity_valid(v, strlen(v), IDENTITY_MAX, &why)) {
			return conf_error(l, err, errlen, "identity '%s': %s", v, why);
		}
		into = r->identities;
	} else {
		return conf_error(l, err, errlen, "unknown entry '%s': use serial, sha256 or identity", kind);
	}
	if(hmap_put(into, v, PRESENT)) {
		return conf_error(l, err, errlen, "out of memory");
	}
	r->entries++;
	return 0;
}

revocation_t *revocation_load_buffer(const char *name, const char *buf, size_t len, char *err,
                                     size_t errlen)
{
	revocation_t *r = revocation_new();
	if(!r) {
		util_snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	if(conf_parse_buffer(name, buf, len, on_line, r, err, errlen)) {
		revocation_free(r);
		return NULL;
	}
	return r;
}

revocation_t *revocation_load(const char *list_path, const char *crl_path, char *err,
                              size_t errlen)
{
	revocation_t *r = revocation_new();
	if(!r) {
		util_snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if(list_path && conf_parse_file(list_path, on_line, r, err, errlen)) {
		goto fail;
	}
	if(crl_path) {
		FILE *f = fopen(crl_path, "r");
		if(!f) {
			util_snprintf(err, errlen, "%s: cannot open the CRL: check plugin_opt_crlfile", crl_path);
			goto fail;
		}
		r->crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
		fclose(f);
		if(!r->crl) {
			util_snprintf(err, errlen, "%s: not a PEM CRL (regenerate it: scripts/pki crl)", crl_path);
			goto fail;
		}
	}
	return r;
fail:
	revocation_free(r);
	return NULL;
}

int revocation_cert_ids(X509 *cert, char *serial_hex, size_t seriallen, char sha256_hex[65])
{
	serial_hex[0] = '\0';
	sha256_hex[0] = '\0';
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	if(!bn) {
		return -1;
	}
	char *hex = BN_bn2hex(bn);
	BN_free(bn);
	if(!hex) {
		return -1;
	}
	int rc = 0;
	size_t n = strlen(hex);
	if(n % 2) {
		rc = util_snprintf(serial_hex, seriallen, "0%s", hex) < 0 ? -1 : 0;
	} else {
		rc = util_strlcpy(serial_hex, hex, seriallen);
	}
	OPENSSL_free(hex);
	if(rc) {
		return -1;
	}
	return identity_fingerprint(cert, sha256_hex);
}

bool revocation_is_revoked(const revocation_t *r, X509 *cert, const char *identity,
                           const char *serial_hex, const char *sha256_hex, const char **why)
{
	if(!r) {
		return false;
	}
	if(identity && hmap_get(r->identities, identity)) {
		*why = "identity is on the revocation list";
		return true;
	}
	if(serial_hex && serial_hex[0] && hmap_get(r->serials, serial_hex)) {
		*why = "certificate serial is on the revocation list";
		return true;
	}
	if(sha256_hex && sha256_hex[0] && hmap_get(r->sha256, sha256_hex)) {
		*why = "certificate fingerprint is on the revocation list";
		return true;
	}
	if(r->crl && cert &&
	   X509_NAME_cmp(X509_CRL_get_issuer(r->crl), X509_get_issuer_name(cert)) == 0) {
		X509_REVOKED *rev = NULL;
		if(X509_CRL_get0_by_serial(r->crl, &rev, X509_get0_serialNumber(cert)) == 1) {
			*why = "certificate is revoked by the CA's CRL";
			return true;
		}
	}
	return false;
}

size_t revocation_count(const revocation_t *r)
{
	return r ? r->entries : 0;
}

size_t revocation_crl_count(const revocation_t *r)
{
	if(!r || !r->crl) {
		return 0;
	}
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(r->crl);
	return revs ? (size_t)sk_X509_REVOKED_num(revs) : 0;
}
