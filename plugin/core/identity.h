/*
 * identity.h — who a client is, taken from its verified X.509 certificate.
 *
 * mosquitto has already verified the chain against its cafile (and CRL) when
 * these run; these functions extract the identity the operator chose (CN, a
 * SAN URI with a prefix, or a SAN DNS name), refuse identities that could be
 * abused in topics or logs, check the validity dates against an injected
 * clock, check the issuer against pinned CA certificates, and bind the MQTT
 * client id to the identity.  No mosquitto calls: unit-tested with cmocka.
 */
#ifndef PG_IDENTITY_H
#define PG_IDENTITY_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define IDENTITY_MAX 256 /* hard upper bound of any identity, bytes */

typedef enum identity_source {
	IDENTITY_CN = 0,  /* subject commonName (exactly one) */
	IDENTITY_SAN_URI, /* the one SAN URI that starts with a configured prefix */
	IDENTITY_SAN_DNS, /* the one SAN dNSName */
} identity_source_t;

typedef enum identity_binding {
	BINDING_EQUAL = 0, /* client id == identity */
	BINDING_PREFIX,    /* client id == identity, or identity + "-" + suffix (auth.c
	                      also refuses one that could be another identity) */
} identity_binding_t;

typedef struct identity_opts {
	identity_source_t source;
	const char *uri_prefixes[4]; /* for IDENTITY_SAN_URI; NULL-terminated */
	size_t max_len;              /* 1..IDENTITY_MAX */
	identity_binding_t binding;
} identity_opts_t;

/* Parse "cn" / "san-uri" / "san-dns"; -1 when unknown. */
int identity_source_parse(const char *s, identity_source_t *out);
/* Parse "equal" / "prefix"; -1 when unknown. */
int identity_binding_parse(const char *s, identity_binding_t *out);

/* Extract the identity from `cert` into out (outlen >= IDENTITY_MAX+1) and
 * validate it with identity_valid.  Returns 0, or -1 with *reason set to static
 * text that says what is wrong. */
int identity_from_cert(X509 *cert, const identity_opts_t *o, char *out, size_t outlen,
                       const char **reason);

/* Is `id` (len bytes, as found in the certificate) acceptable?  The rule
 * scripts/pki applies when it issues: 1..max_len characters from A-Z a-z 0-9
 * . _ - : (tests/vectors/identities.txt is checked against both).  *reason
 * names the first problem: empty, too long, NUL, a leading '$', an MQTT
 * wildcard or '/', a control character, a blank, any other character. */
bool identity_valid(const char *id, size_t len, size_t max_len, const char **reason);

/* Refuse a certificate that can act as a CA — basicConstraints CA:TRUE, or
 * keyUsage with keyCertSign — as a client identity: 0, or -1 with *reason. */
int identity_check_not_ca(X509 *cert, const char **reason);

/* notBefore <= now <= notAfter?  -1 with reason when not. */
int identity_check_dates(X509 *cert, time_t now, const char **reason);

/* Site (subject L) and line (subject OU) of the certificate, if present and
 * valid identities themselves; empty strings otherwise. */
void identity_cert_attrs(X509 *cert, char *site, size_t sitelen, char *line, size_t linelen);

/* Does `clientid` fit `identity` under `binding`? */
bool identity_clientid_ok(const char *identity, const char *clientid, identity_binding_t binding);

/* SHA-256 fingerprint of the DER certificate, lower-case hex (65 bytes). */
int identity_fingerprint(X509 *cert, char out[65]);

/* Was `cert` issued (and signed) by one of the `n` pinned CA certificates? */
bool identity_issuer_pinned(X509 *cert, X509 *const *pins, size_t n);

#endif
