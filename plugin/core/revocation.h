/*
 * revocation.h — certificates and identities the plant has cut off.
 *
 * Two sources, both re-read on every reload (SIGHUP) so a revocation takes
 * effect without restarting the broker:
 *  - the revocation list written by `scripts/pki revoke` (DIR/revoked.txt):
 *        # 2026-11-29T10:00:00Z revoked press-07 reason=keyCompromise
 *        serial 1A2B3C...           (uppercase hex, no colons)
 *        sha256 ab12...             (certificate fingerprint, lowercase hex)
 *    scripts/pki writes serial and fingerprint only, so a device can be
 *    re-issued after a key rotation.  An operator may add `identity press-07`
 *    by hand to refuse every certificate of that identity, now and later.
 *  - the CA's CRL (DIR/crl.pem), checked by serial and issuer.
 * (mosquitto's own crlfile is read only at start; this is what makes
 * revocation instant.)
 */
#ifndef PG_REVOCATION_H
#define PG_REVOCATION_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct revocation revocation_t;

/* Load the list and/or the CRL (either path may be NULL).  On error returns
 * NULL with "file:line: what is wrong" in err.  The caller owns the result. */
revocation_t *revocation_load(const char *list_path, const char *crl_path, char *err,
                              size_t errlen);
/* Same from memory (list only); `name` is used in messages.  For tests/fuzzing. */
revocation_t *revocation_load_buffer(const char *name, const char *buf, size_t len, char *err,
                                     size_t errlen);
void revocation_free(revocation_t *r);

/* Is this certificate (or its identity) revoked?  serial_hex and sha256_hex
 * are those of the certificate (from revocation_cert_ids).  cert may be NULL
 * when it is not at hand (a reload re-checks connected clients by identity,
 * serial and fingerprint recorded at connect; the CRL needs the certificate's
 * issuer, so a CRL-only revocation of a connected client is caught because
 * scripts/pki revoke also writes the serial to the list).  Sets *why. */
bool revocation_is_revoked(const revocation_t *r, X509 *cert, const char *identity,
                           const char *serial_hex, const char *sha256_hex, const char **why);

/* Serial (uppercase hex, even length, no colons) and SHA-256 fingerprint
 * (lowercase hex) of a certificate. */
int revocation_cert_ids(X509 *cert, char *serial_hex, size_t seriallen, char sha256_hex[65]);

/* Counts, for log lines. */
size_t revocation_count(const revocation_t *r);
size_t revocation_crl_count(const revocation_t *r);

#endif
