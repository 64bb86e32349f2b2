/*
 * secrets.c — loads the bridge's TLS material once, at start (see secrets.h).
 * The contexts reproduce what libmosquitto would have set up from file names
 * (TLS 1.2 or 1.3 minimum, no compression, peer verification, ALPN) and add
 * the host name check that libmosquitto would have done in its own verify
 * callback, here through OpenSSL's X509_VERIFY_PARAM.
 */
#include "secrets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tunproto.h"
#include "util.h"

/* The secrets_tls_watch_t of a context (SSL_CTX ex_data), and the lock of
 * the subjects. */
static int secrets_watch_idx = -1;
static pthread_once_t secrets_watch_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t secrets_watch_mu = PTHREAD_MUTEX_INITIALIZER;

static void secrets_watch_init(void)
{
	secrets_watch_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* The verify callback: keeps OpenSSL's decision, remembers the first error. */
static int secrets_verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = ok ? NULL : X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	secrets_tls_watch_t *w = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), secrets_watch_idx)
	                             : NULL;
	if(w) {
		pthread_mutex_lock(&secrets_watch_mu);
		if(atomic_load(&w->verify_err) == X509_V_OK) {
			X509 *cert = X509_STORE_CTX_get_current_cert(x);
			w->subject[0] = '\0';
			if(cert) {
				X509_NAME_oneline(X509_get_subject_name(cert), w->subject, sizeof(w->subject));
			}
			atomic_store(&w->depth, X509_STORE_CTX_get_error_depth(x));
			atomic_store(&w->verify_err, X509_STORE_CTX_get_error(x));
		}
		pthread_mutex_unlock(&secrets_watch_mu);
	}
	return ok;
}

/* Notes a CertificateRequest from the peer (TLS 1.2 and 1.3 alike). */
static void secrets_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                           SSL *ssl, void *arg)
{
	const unsigned char *m = buf;
	if(!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
	   m[0] == SSL3_MT_CERTIFICATE_REQUEST) {
		atomic_store(&((secrets_tls_watch_t *)arg)->cert_requested, true);
	}
}

static int secrets_watch_attach(SSL_CTX *ctx, secrets_tls_watch_t *w)
{
	pthread_once(&secrets_watch_once, secrets_watch_init);
	if(secrets_watch_idx < 0 || !SSL_CTX_set_ex_data(ctx, secrets_watch_idx, w)) {
		return -1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, secrets_verify_cb);
	SSL_CTX_set_msg_callback(ctx, secrets_msg_cb);
	SSL_CTX_set_msg_callback_arg(ctx, w);
	return 0;
}

void secrets_watch_reset(secrets_tls_watch_t *w)
{
	atomic_store(&w->verify_err, X509_V_OK);
	atomic_store(&w->depth, 0);
	atomic_store(&w->cert_requested, false);
}

int secrets_watch_reason(secrets_tls_watch_t *w, char *out, size_t outlen)
{
	int e = atomic_load(&w->verify_err);
	if(e == X509_V_OK) {
		return 0;
	}
	char subject[256];
	pthread_mutex_lock(&secrets_watch_mu);
	util_strlcpy(subject, w->subject, sizeof(subject));
	pthread_mutex_unlock(&secrets_watch_mu);
	int depth = atomic_load(&w->depth);
	util_snprintf(out, outlen, "%s (X.509 error %d at depth %d, %s, subject %s)",
	              X509_verify_cert_error_string(e), e, depth,
	              depth == 0 ? "the server's own certificate" : "a CA certificate of its chain",
	              subject[0] ? subject : "unknown");
	return e;
}

/* Append OpenSSL's first queued error (or `fallback`) to err. */
static void secrets_err(char *err, size_t errlen, const char *key, const char *file,
                        const char *what)
{
	char ossl[256] = "";
	unsigned long e = ERR_get_error();
	if(e) {
		ERR_error_string_n(e, ossl, sizeof(ossl));
	}
	ERR_clear_error();
	util_snprintf(err, errlen, "%s '%s': %s%s%s", key, file ? file : "", what, ossl[0] ? ": " : "",
	              ossl);
}

static struct ssl_ctx_st *secrets_client_ctx(const char *side, const char *host, int min_version,
                                             const char *cafile, bool system_trust,
                                             const char *certfile, const char *keyfile,
                                             const char *alpn, bool insecure_hostname, char *err,
                                             size_t errlen)
{
	char key[64];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if(!ctx) {
		secrets_err(err, errlen, side, "", "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, min_version);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(ctx, 1); /* see link_tls_buffered() in link.c */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if(system_trust && SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(key, sizeof(key), "%s_use_system_trust", side);
		secrets_err(err, errlen, key, "", "cannot load the system CA store");
		goto fail;
	}
	if(cafile && SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
		snprintf(key, sizeof(key), "%s_cafile", side);
		secrets_err(err, errlen, key, cafile, "cannot load the CA certificates");
		goto fail;
	}
	if(certfile && SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1) {
		snprintf(key, sizeof(key), "%s_certfile", side);
		secrets_err(err, errlen, key, certfile, "cannot load the certificate");
		goto fail;
	}
	if(keyfile && SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1) {
		snprintf(key, sizeof(key), "%s_keyfile", side);
		secrets_err(err, errlen, key, keyfile, "cannot load the private key");
		goto fail;
	}
	if(keyfile && SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(key, sizeof(key), "%s_keyfile", side);
		secrets_err(err, errlen, key, keyfile, "does not belong to the certificate");
		goto fail;
	}
	if(alpn) {
		unsigned char wire[256];
		size_t n = strlen(alpn);
		if(n == 0 || n > 255) {
			util_snprintf(err, errlen, "%s_alpn: 1 to 255 bytes", side);
			goto fail;
		}
		wire[0] = (unsigned char)n;
		memcpy(wire + 1, alpn, n);
		if(SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)n + 1) != 0) { /* 0 = success */
			secrets_err(err, errlen, "cloud_alpn", alpn, "cannot be set");
			goto fail;
		}
	}
	if(!insecure_hostname) {
		X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
		unsigned char ip[16];
		int ok;
		if(inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
			ok = X509_VERIFY_PARAM_set1_ip_asc(param, host);
		} else {
			X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			ok = X509_VERIFY_PARAM_set1_host(param, host, 0);
		}
		if(ok != 1) {
			snprintf(key, sizeof(key), "%s_host", side);
			secrets_err(err, errlen, key, host, "cannot be used for host name verification");
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* cloud_proxy_auth_file: opened once and checked through its descriptor
 * (what was checked is what is read), refused when group or others may read
 * it, turned into the Basic credentials. */
static int secrets_proxy_auth(secrets_t *s, const bconf_t *cfg, char *err, size_t errlen)
{
	const char *path = cfg->cloud_proxy_auth_file;
	char buf[1024];
	ssize_t n = -1;
	struct stat st;
	const char *why = NULL;
	int rc = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if(fd < 0) {
		util_snprintf(err, errlen, "cloud_proxy_auth_file '%s': cannot open: %s", path,
		              strerror(errno));
		return -1;
	}
	if(fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		util_snprintf(err, errlen, "cloud_proxy_auth_file '%s': not a regular file", path);
		goto out;
	}
	if(st.st_mode & (S_IRGRP | S_IROTH)) {
		util_snprintf(err, errlen,
		              "cloud_proxy_auth_file '%s': the proxy credentials are readable by %s (mode "
		              "%04o): run `chmod 600 %s` (owned by the user that starts the bridge)",
		              path, (st.st_mode & S_IROTH) ? "every user" : "its group",
		              (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	n = read(fd, buf, sizeof(buf));
	if(n < 0 || (size_t)n == sizeof(buf)) {
		util_snprintf(err, errlen, "cloud_proxy_auth_file '%s': %s", path,
		              n < 0 ? strerror(errno) : "longer than 1 KiB: expected one line user:password");
		goto out;
	}
	char b64[1400];
	if(tunproto_basic_auth(buf, (size_t)n, b64, sizeof(b64), &why)) {
		util_snprintf(err, errlen, "cloud_proxy_auth_file '%s': %s", path, why);
		goto out;
	}
	s->proxy_auth = strdup(b64);
	explicit_bzero(b64, sizeof(b64));
	if(!s->proxy_auth) {
		util_snprintf(err, errlen, "cloud_proxy_auth_file: out of memory");
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

int secrets_load(secrets_t *s, const bconf_t *cfg, bool insecure_hostname, char *err,
                 size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->plant_tls = secrets_client_ctx("plant", cfg->plant_host, TLS1_2_VERSION, cfg->plant_cafile,
	                                  false, cfg->plant_certfile, cfg->plant_keyfile, NULL,
	                                  insecure_hostname, err, errlen);
	if(!s->plant_tls) {
		return -1;
	}
	s->cloud_tls = secrets_client_ctx(
	    "cloud", cfg->cloud_host, cfg->cloud_tls_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION,
	    cfg->cloud_cafile, cfg->cloud_use_system_trust, cfg->cloud_certfile, cfg->cloud_keyfile,
	    cfg->cloud_alpn, insecure_hostname, err, errlen);
	if(!s->cloud_tls) {
		secrets_free(s);
		return -1;
	}
	if(secrets_watch_attach(s->plant_tls, &s->plant_watch) ||
	   secrets_watch_attach(s->cloud_tls, &s->cloud_watch)) {
		util_snprintf(err, errlen, "cannot set up the TLS verify callbacks (out of memory)");
		secrets_free(s);
		return -1;
	}
	tunproto_url_t url;
	const char *why;
	if(cfg->cloud_proxy && tunproto_url_parse(cfg->cloud_proxy, &url, &why) == 0 && url.tls) {
		/* The proxy is verified as strictly as the cloud: its CA, its name. */
		s->proxy_tls = secrets_client_ctx("cloud_proxy", url.host, TLS1_2_VERSION,
		                                  cfg->cloud_proxy_cafile, !cfg->cloud_proxy_cafile, NULL,
		                                  NULL, NULL, insecure_hostname, err, errlen);
		if(!s->proxy_tls) {
			secrets_free(s);
			return -1;
		}
	}
	if(cfg->cloud_proxy_auth_file && secrets_proxy_auth(s, cfg, err, errlen)) {
		secrets_free(s);
		return -1;
	}
	return 0;
}

void secrets_free(secrets_t *s)
{
	if(!s) {
		return;
	}
	SSL_CTX_free(s->plant_tls);
	SSL_CTX_free(s->cloud_tls);
	SSL_CTX_free(s->proxy_tls);
	if(s->proxy_auth) {
		explicit_bzero(s->proxy_auth, strlen(s->proxy_auth));
		free(s->proxy_auth);
	}
	memset(s, 0, sizeof(*s));
}
