/*
 * est_store.h — plantgate-est's writes into the PKI directory, the same
 * `openssl ca` database scripts/pki uses, under scripts/pki's lock
 * (DIR/.lock, flock), so `scripts/pki list`, `revoke` and `crl` keep working
 * for certificates issued over EST:
 *   - DIR/newcerts/SERIAL.pem and a "V" row in DIR/index.txt per issuance;
 *   - for a superseded certificate (old_cert revoke): its row turned into
 *     "R ...,superseded" and its serial and fingerprint appended to
 *     DIR/revoked.txt, which the plugin re-reads on reload.
 * Every file is replaced by write-temp, fsync, rename.
 */
#ifndef PG_EST_STORE_H
#define PG_EST_STORE_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* Take DIR/.lock (waiting up to 10 s).  Returns the fd to pass to
 * est_store_unlock, or -1 with err. */
int est_store_lock(const char *pki_dir, char *err, size_t errlen);
void est_store_unlock(int fd);

/* Replace `path` with data atomically (temp file in the same directory,
 * fsync, rename, fsync of the directory).  0 or -1 with err. */
int est_store_write_atomic(const char *path, const char *data, size_t len, mode_t mode, char *err,
                           size_t errlen);

/* The whole of a text file (NUL-terminated, *len its length; the caller
 * frees it), or NULL: err is "" when the file does not exist, else says why. */
char *est_store_read(const char *path, size_t *len, char *err, size_t errlen);

/* Record an issued certificate (lock held).  0 or -1 with err. */
int est_store_record(const char *pki_dir, X509 *cert, char *err, size_t errlen);

/* Mark `old` superseded (lock held): index row R, revoked.txt lines.  0 or
 * -1 with err. */
int est_store_supersede(const char *pki_dir, X509 *old, const char *identity, time_t now,
                        char *err, size_t errlen);

/* An intermediate issuer keeps its own CRL (lock held): est_crl_build() over
 * DIR/index.txt, written to DIR/crl-est.pem, and DIR/crl.pem rewritten as the
 * CRLs of other issuers it holds (the root's, from scripts/pki crl) followed
 * by this one — mosquitto's crlfile needs a current CRL from the issuer of
 * every client certificate.  scripts/pki crl appends crl-est.pem in turn.
 * 0 or -1 with err. */
int est_store_crl(const char *pki_dir, X509 *issuer, EVP_PKEY *key, time_t now, char *err,
                  size_t errlen);

#endif
