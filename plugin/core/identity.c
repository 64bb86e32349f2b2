/*
 * identity.c — identity extraction and validation from client certificates
 * (see identity.h).  OpenSSL only; the clock is passed in.
 */
#include "identity.h"

#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "util.h"

int identity_source_parse(const char *s, identity_source_t *out)
{
	if(!strcmp(s, "cn")) {
		*out = IDENTITY_CN;
	} else if(!strcmp(s, "san-uri")) {
		*out = IDENTITY_SAN_URI;
	} else if(!strcmp(s, "san-dns")) {
		*out = IDENTITY_SAN_DNS;
	} else {
		return -1;
	}
	return 0;
}

int identity_binding_parse(const char *s, identity_binding_t *out)
{
	if(!strcmp(s, "equal")) {
		*out = BINDING_EQUAL;
	} else if(!strcmp(s, "prefix")) {
		*out = BINDING_PREFIX;
	} else {
		return -1;
	}
	return 0;
}

/* The one rule for identities, site and line values, shared with scripts/pki
 * (check_name) and tested on both sides against tests/vectors/identities.txt:
 * 1..max_len characters from A-Z a-z 0-9 . _ - :.  Everything else — blanks,
 * quotes, '=', ',', backslashes, non-ASCII letters — is refused too: such an
 * identity could not have been issued by scripts/pki, and each of those
 * characters has a meaning somewhere an identity travels (a log line, a DN, a
 * shell, a topic level). */
static bool identity_char_ok(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '_' || c == '-' || c == ':';
}

bool identity_valid(const char *id, size_t len, size_t max_len, const char **reason)
{
	if(len == 0) {
		*reason = "identity is empty";
		return false;
	}
	if(len > max_len) {
		*reason = "identity is longer than identity_max_len";
		return false;
	}
	if(memchr(id, '\0', len)) {
		*reason = "identity contains a NUL byte";
		return false;
	}
	if(id[0] == '$') {
		*reason = "identity starts with '$'";
		return false;
	}
	for(size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];
		if(identity_char_ok(c)) {
			continue;
		}
		if(c == '+' || c == '#' || c == '/') {
			*reason = "identity contains an MQTT wildcard or '/' ('+', '#' and '/' are not allowed)";
		} else if(c < 0x20 || c == 0x7F) {
			*reason = "identity contains a control character";
		} else if(c == ' ') {
			*reason = "identity contains a blank";
		} else {
			*reason = "identity contains a character other than A-Z a-z 0-9 . _ - :";
		}
		return false;
	}
	return true;
}

int identity_check_not_ca(X509 *cert, const char **reason)
{
	uint32_t flags = X509_get_extension_flags(cert);
	if(flags & EXFLAG_CA) {
		*reason = "certificate is a CA certificate (basicConstraints CA:TRUE), not a client identity";
		return -1;
	}
	if((flags & EXFLAG_KUSAGE) && (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN)) {
		*reason = "certificate may sign certificates (keyUsage keyCertSign), so it is not a client identity";
		return -1;
	}
	return 0;
}

/* Copy an ASN1 string as UTF-8, refusing embedded NULs. */
static int asn1_to_utf8(const ASN1_STRING *s, char *out, size_t outlen, size_t *len,
                        const char **reason)
{
	unsigned char *utf8 = NULL;
	int n = ASN1_STRING_to_UTF8(&utf8, s);
	if(n < 0) {
		*reason = "identity cannot be converted to UTF-8";
		return -1;
	}
	if((size_t)n >= outlen) {
		OPENSSL_free(utf8);
		*reason = "identity is longer than identity_max_len";
		return -1;
	}
	memcpy(out, utf8, (size_t)n);
	out[n] = '\0';
	*len = (size_t)n;
	OPENSSL_free(utf8);
	return 0;
}

static int from_cn(X509 *cert, char *out, size_t outlen, size_t *len, const char **reason)
{
	X509_NAME *name = X509_get_subject_name(cert);
	int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	if(i < 0) {
		*reason = "certificate has no subject CN";
		return -1;
	}
	if(X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0) {
		*reason = "certificate has more than one subject CN (ambiguous identity)";
		return -1;
	}
	X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
	return asn1_to_utf8(X509_NAME_ENTRY_get_data(e), out, outlen, len, reason);
}

static int from_san(X509 *cert, const identity_opts_t *o, char *out, size_t outlen, size_t *len,
                    const char **reason)
{
	int want = o->source == IDENTITY_SAN_URI ? GEN_URI : GEN_DNS;
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int found = 0, rc = -1;
	if(!names) {
		*reason = "certificate has no subjectAltName";
		return -1;
	}
	for(int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		if(gn->type != want) {
			continue;
		}
		const ASN1_IA5STRING *s = want == GEN_URI ? gn->d.uniformResourceIdentifier : gn->d.dNSName;
		const char *data = (const char *)ASN1_STRING_get0_data(s);
		size_t dlen = (size_t)ASN1_STRING_length(s);
		size_t skip = 0;
		if(want == GEN_URI) {
			bool match = false;
			for(size_t p = 0; p < 4 && o->uri_prefixes[p]; p++) {
				size_t pl = strlen(o->uri_prefixes[p]);
				if(dlen > pl && memcmp(data, o->uri_prefixes[p], pl) == 0) {
					skip = pl;
					match = true;
					break;
				}
			}
			if(!match) {
				continue;
			}
		}
		if(++found > 1) {
			*reason = want == GEN_URI ? "certificate has more than one matching SAN URI (ambiguous identity)"
			                          : "certificate has more than one SAN DNS name (ambiguous identity)";
			rc = -1;
			goto out;
		}
		if(dlen - skip >= outlen) {
			*reason = "identity is longer than identity_max_len";
			goto out;
		}
		memcpy(out, data + skip, dlen - skip);
		out[dlen - skip] = '\0';
		*len = dlen - skip;
		rc = 0;
	}
	if(!found) {
		*reason = want == GEN_URI ? "certificate has no SAN URI with the configured prefix"
		                          : "certificate has no SAN DNS name";
	}
out:
	GENERAL_NAMES_free(names);
	return rc;
}

int identity_from_cert(X509 *cert, const identity_opts_t *o, char *out, size_t outlen,
                       const char **reason)
{
	size_t len = 0;
	int rc;
	if(!cert) {
		*reason = "no client certificate";
		return -1;
	}
	if(o->source == IDENTITY_CN) {
		rc = from_cn(cert, out, outlen, &len, reason);
	} else {
		rc = from_san(cert, o, out, outlen, &len, reason);
	}
	if(rc) {
		return -1;
	}
	return identity_valid(out, len, o->max_len, reason) ? 0 : -1;
}

int identity_check_dates(X509 *cert, time_t now, const char **reason)
{
	time_t t = now;
	if(X509_cmp_time(X509_get0_notBefore(cert), &t) > 0) {
		*reason = "certificate is not yet valid (check the device clock and the certificate's notBefore)";
		return -1;
	}
	if(X509_cmp_time(X509_get0_notAfter(cert), &t) < 0) {
		*reason = "certificate has expired (renew it: scripts/pki device ID)";
		return -1;
	}
	return 0;
}

static void subject_attr(X509 *cert, int nid, char *out, size_t outlen)
{
	const char *reason;
	size_t len = 0;
	out[0] = '\0';
	X509_NAME *name = X509_get_subject_name(cert);
	int i = name ? X509_NAME_get_index_by_NID(name, nid, -1) : -1;
	if(i < 0 || X509_NAME_get_index_by_NID(name, nid, i) >= 0) {
		return; /* absent or ambiguous: no attribute */
	}
	if(asn1_to_utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)), out, outlen, &len,
	                &reason) ||
	   !identity_valid(out, len, outlen - 1, &reason)) {
		out[0] = '\0';
	}
}

void identity_cert_attrs(X509 *cert, char *site, size_t sitelen, char *line, size_t linelen)
{
	subject_attr(cert, NID_localityName, site, sitelen);
	subject_attr(cert, NID_organizationalUnitName, line, linelen);
}

bool identity_clientid_ok(const char *identity, const char *clientid, identity_binding_t binding)
{
	if(!identity || !clientid) {
		return false;
	}
	if(!strcmp(identity, clientid)) {
		return true;
	}
	if(binding != BINDING_PREFIX) {
		return false;
	}
	size_t il = strlen(identity);
	if(strncmp(clientid, identity, il) != 0 || clientid[il] != '-' || clientid[il + 1] == '\0') {
		return false;
	}
	/* The suffix follows the identity rule too: client ids stay plain in
	 * logs and in %{clientid} topic levels. */
	for(const char *p = clientid + il + 1; *p; p++) {
		if(!identity_char_ok((unsigned char)*p)) {
			return false;
		}
	}
	return true;
}

int identity_fingerprint(X509 *cert, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if(!X509_digest(cert, EVP_sha256(), md, &n) || n != 32) {
		out[0] = '\0';
		return -1;
	}
	util_hex(md, 32, out);
	return 0;
}

bool identity_issuer_pinned(X509 *cert, X509 *const *pins, size_t n)
{
	for(size_t i = 0; i < n; i++) {
		if(X509_check_issued(pins[i], cert) != X509_V_OK) {
			continue;
		}
		EVP_PKEY *key = X509_get0_pubkey(pins[i]);
		if(key && X509_verify(cert, key) == 1) {
			return true;
		}
	}
	return false;
}
