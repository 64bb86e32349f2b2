/*
 * est_csr.h — the certificate half of the EST core (plantgate-est): decode a
 * PKCS#10 request as an EST client sends it (base64 DER, RFC 7030 4.2.1),
 * check it (self-signature, key type, no foreign identity), and issue a device
 * certificate with exactly scripts/pki's device profile (certs/openssl.cnf
 * [device_ext]).  The subject and every extension come from the identity the
 * caller vouches for (a redeemed token or the current certificate); the only
 * thing taken from the request is its public key.
 *
 * Pure: no clock, no randomness, no files.  The caller passes the time and the
 * serial's random bytes, so cmocka tests issue certificates deterministically.
 */
#ifndef PG_EST_CSR_H
#define PG_EST_CSR_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Errors of the EST core; est_strerror() is a switch without default. */
typedef enum est_err {
	EST_OK = 0,
	EST_E_MALFORMED, /* not base64, not a DER PKCS#10 request, too large */
	EST_E_SIGNATURE, /* the request's self-signature does not verify */
	EST_E_KEYTYPE,   /* key type or size not allowed */
	EST_E_IDENTITY,  /* the request or the login names another identity */
	EST_E_TOKEN,     /* no such token, expired, or missing */
	EST_E_REPLAY,    /* the token was already used */
	EST_E_CERT,      /* the client certificate is not acceptable */
	EST_E_RATE,      /* too many requests */
	EST_E_INTERNAL,  /* out of memory, OpenSSL failure, I/O */
} est_err_t;

const char *est_strerror(est_err_t e);

/* Longest request body accepted, bytes (base64 of a CSR with an RSA-8192
 * key is about 2.5 KiB). */
#define EST_BODY_MAX 16384
/* Bytes of a certificate serial (random, positive, first bit clear). */
#define EST_SERIAL_BYTES 16

/* Base64 with line breaks and blanks ignored, padding required.  Returns the
 * decoded length, 0 for input that is all blanks, -1 when not base64 or out is
 * too small (outlen >= len is always enough). */
long est_b64_decode_loose(const char *in, size_t len, unsigned char *out, size_t outlen);

/* Decode `body` (len bytes): base64 of a DER PKCS#10 request, line breaks and
 * blanks allowed, or the same in PEM armour.  On success *out is the request
 * (the caller frees it with X509_REQ_free).  Otherwise why says what is
 * wrong. */
est_err_t est_csr_decode(const char *body, size_t len, X509_REQ **out, char *why, size_t whylen);

/* Check a decoded request for `identity`: its self-signature verifies, its key
 * is EC P-256 / P-384 or RSA 3072..8192 bits, and a commonName in its subject,
 * if any, equals identity.  The rest of the subject and every requested
 * extension are ignored.  Borrows req. */
est_err_t est_csr_check(X509_REQ *req, const char *identity, char *why, size_t whylen);

/* What the new certificate says: identity (CN and SAN
 * URI:urn:plantgate:device:ID), site (L, may be "") and line (OU, may be ""). */
typedef struct est_subject {
	const char *identity;
	const char *site;
	const char *line;
} est_subject_t;

/* Issue a device certificate for s with the public key of req (already
 * checked with est_csr_check), valid from now for `days` days, serial from
 * `serial_rand` (made positive and of fixed length), signed by issuer/key
 * with SHA-256.  Borrows everything; the caller frees the result. */
X509 *est_issue(X509 *issuer, EVP_PKEY *issuer_key, X509_REQ *req, const est_subject_t *s,
                time_t now, long days, const unsigned char serial_rand[EST_SERIAL_BYTES],
                char *why, size_t whylen);

/* Serial as the `openssl ca` database writes it: upper-case hex, even
 * length.  0 or -1. */
int est_serial_hex(X509 *cert, char *out, size_t outlen);

/* The index.txt row `openssl ca` would write for cert (status V), ending in a
 * newline: "V\tYYMMDDHHMMSSZ\t\tSERIAL\test\t/L=../OU=../CN=..\n".  The fifth
 * field, a file name `openssl ca` never uses (it writes "unknown"), says
 * "est": scripts/pki list and plantgate-doctor tell EST issuance by it.
 * 0 or -1. */
int est_index_row(X509 *cert, char *out, size_t outlen);

/* Split one index.txt row (no newline) in place at its tabs: f[0] status,
 * f[1] expiry, f[2] revocation "time[,reason]", f[3] serial, f[4] file name
 * ("est" for plantgate-est's rows), f[5] subject.  Returns the number of
 * fields found (6 for a whole row; at most 6, the subject may hold tabs). */
int est_index_split(char *line, char *f[6]);

/* Walk a writable, NUL-terminated copy of index.txt: split the next whole
 * row at *cur into f (est_index_split), advance *cur, true; false at the end.
 * Blank and short lines are skipped. */
bool est_index_next(char **cur, char *f[6]);

/* Status of `serial` in index.txt: 'V', 'R', 'E', or 0 when absent. */
char est_index_status(const char *index, size_t len, const char *serial);

/* A renewal whose response was lost: the device still holds `old_serial`,
 * which has since been marked superseded (row "R ...,superseded"; any other
 * reason, e.g. keyCompromise, never qualifies).  Then the newest valid row of
 * `identity` (CN) that plantgate-est issued is the certificate it did not
 * receive; its serial goes to newest (n bytes).  The caller re-sends it only
 * for a request signed with that certificate's own key: a certificate goes
 * only to the holder of its private key, so the old key alone gets nothing.
 * True when such a pair exists. */
bool est_index_resendable(const char *index, size_t len, const char *old_serial,
                          const char *identity, char *newest, size_t n);

/* index.txt text with the row of `serial` turned into a revoked one (status R,
 * revocation time `now`, reason "superseded").  Returns a new string the caller
 * frees, or NULL when the serial has no valid row. */
char *est_index_revoke(const char *index, size_t len, const char *serial, time_t now);

/* The CRL of an issuing CA that is not the root (an intermediate kept by
 * plantgate-est): every revoked row of `index` (len bytes, index.txt text)
 * that plantgate-est issued (file-name field "est"), with its revocation time
 * and reason, valid from now for `days` days, CRL number `number`, signed by
 * issuer/key with SHA-256.  Rows of other issuers are left out (a serial in a
 * CRL of another issuer would not apply anyway).  Returns a CRL the caller
 * frees, or NULL. */
X509_CRL *est_crl_build(X509 *issuer, EVP_PKEY *key, const char *index, size_t len, time_t now,
                        long days, long number);

/* Base64 of der[0..dl) with a line break after every 64 characters (and at
 * the end), as EST bodies are usually sent.  Returns a malloc'ed string
 * (*len its length, len may be NULL), or NULL. */
char *est_b64_lines(const unsigned char *der, size_t dl, size_t *len);

/* The PKCS#7 certs-only structure of RFC 7030 4.1.3 / 4.2.3 holding `n`
 * certificates, DER then base64 with line breaks every 64 characters.
 * Returns a malloc'ed NUL-terminated string, or NULL. */
char *est_certs_only_b64(X509 *const *certs, size_t n, size_t *len);

/* The certificates of a base64 certs-only PKCS#7 (an EST enroll response:
 * the new certificate first, then the CA certificates it chains through).
 * Returns a non-empty stack the caller frees with
 * sk_X509_pop_free(st, X509_free), or NULL with why. */
STACK_OF(X509) *est_certs_only_decode(const char *body, size_t len, char *why, size_t whylen);

#endif
