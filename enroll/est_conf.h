/*
 * est_conf.h — plantgate-est's configuration file (config/est.conf is the
 * annotated example).  One directive per line, parsed with the common
 * tokenizer; a row per directive in a table; a duplicate is an error; errors
 * are "file:line: what is wrong, and what to do".
 */
#ifndef PG_EST_CONF_H
#define PG_EST_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EST_PATH_MAX 1024

typedef enum est_old_cert {
	EST_OLD_REVOKE = 0, /* revoked (reason superseded) when the new one is issued */
	EST_OLD_EXPIRE,     /* the replaced certificate stays valid until it expires */
} est_old_cert_t;

typedef struct est_conf {
	char listen_host[256];
	int listen_port;
	char tls_cert[EST_PATH_MAX]; /* the server's own certificate (scripts/pki server) */
	char tls_key[EST_PATH_MAX];
	char pki_dir[EST_PATH_MAX];     /* index.txt, newcerts/, revoked.txt, crl.pem, .lock */
	char ca_cert[EST_PATH_MAX];     /* the plant root CA, default pki_dir/ca.crt */
	char issuer_cert[EST_PATH_MAX]; /* the CA that signs: ca_cert or an intermediate */
	char issuer_key[EST_PATH_MAX];  /* readable by plantgate-est's user only */
	char tokens[EST_PATH_MAX];      /* default pki_dir/enroll-tokens.txt */
	char audit_log[EST_PATH_MAX];   /* "" = none */
	long cert_days;                 /* 1..3650, default 90 */
	est_old_cert_t old_cert;
	uint32_t rate_identity;         /* requests per identity per rate_identity_ms */
	int64_t rate_identity_ms;
	uint32_t rate_address;          /* requests per client address per rate_address_ms */
	int64_t rate_address_ms;
} est_conf_t;

/* Parse from memory / from a file into *c (defaults first, then the file).
 * 0, or -1 with "file:line: message" in err. */
int est_conf_parse(const char *name, const char *buf, size_t len, est_conf_t *c, char *err,
                   size_t errlen);
int est_conf_load(const char *path, est_conf_t *c, char *err, size_t errlen);

#endif
