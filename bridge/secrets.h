/*
 * secrets.h — everything secret the bridge reads from disk, read once at
 * start, before it drops root's privileges (priv.c): the TLS client contexts
 * of the plant and cloud links, with their CA, certificate and private key
 * already loaded.  After the drop the files may well be unreadable; the
 * links only ever use these contexts (libmosquitto's MOSQ_OPT_SSL_CTX), so a
 * reconnect never needs the files again.
 *
 * main.c calls it in the privileged phase, after sign_load (the integrity
 * envelope's signing key, sign.c) and before priv_drop: every secret is read
 * before the drop.  A new secret belongs in that phase too.
 */
#ifndef PG_SECRETS_H
#define PG_SECRETS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "bconf.h"

struct ssl_ctx_st;

/* What the TLS handshakes on one context said, for the link's log lines:
 * the first X.509 verification error of the peer's chain (OpenSSL alone
 * says only "certificate verify failed"), and whether the peer asked for
 * the bridge's certificate.  Written by whichever thread runs a handshake
 * on the context, read by the link's thread after it. */
typedef struct secrets_tls_watch {
	atomic_int verify_err;      /* X509_V_OK (0) or X509_V_ERR_* */
	atomic_int depth;           /* where in the chain: 0 = the peer's own certificate */
	atomic_bool cert_requested; /* the peer sent a CertificateRequest */
	char subject[256];          /* of the refused certificate; under a lock in secrets.c */
} secrets_tls_watch_t;

typedef struct secrets {
	struct ssl_ctx_st *plant_tls; /* client context for the plant broker */
	struct ssl_ctx_st *cloud_tls; /* client context for the cloud endpoint */
	secrets_tls_watch_t plant_watch, cloud_watch; /* of plant_tls and cloud_tls */
	/* cloud_proxy https://: client context for the proxy itself (its CA is
	 * cloud_proxy_cafile or the system store; no client certificate: the
	 * cloud's certificate is for the cloud only).  NULL otherwise. */
	struct ssl_ctx_st *proxy_tls;
	/* cloud_proxy_auth_file: base64 of "user:password" for Basic proxy
	 * authentication, or NULL.  Wiped on free. */
	char *proxy_auth;
} secrets_t;

/* Build the contexts from cfg (and read cloud_proxy_auth_file, refused when
 * its group or others may read it, like a private key).  The peer's certificate is verified against
 * the configured CA and its name against plant_host/cloud_host (an IP address
 * against the certificate's IP SANs) unless insecure_hostname (tests only).
 * Returns 0, or -1 with "key 'file': reason" in err; on failure *s holds
 * nothing.  Free with secrets_free. */
int secrets_load(secrets_t *s, const bconf_t *cfg, bool insecure_hostname, char *err,
                 size_t errlen);

/* Free what *s holds and zero it.  NULL and half-built are fine. */
void secrets_free(secrets_t *s);

/* Forget what earlier handshakes said (call before a connect). */
void secrets_watch_reset(secrets_tls_watch_t *w);

/* When the last handshake refused the peer's certificate: its X.509 reason
 * in words ("certificate has expired", "hostname mismatch", "unable to get
 * local issuer certificate"), where in the chain and whose, into out;
 * returns the X509_V_ERR_* code.  0 when no certificate was refused. */
int secrets_watch_reason(secrets_tls_watch_t *w, char *out, size_t outlen);

#endif
