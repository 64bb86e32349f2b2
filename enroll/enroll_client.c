/*
 * enroll_client.c — plantgate-enroll, the device side of EST enrollment.
 *
 * First run (no certificate yet, a token from the operator):
 *     plantgate-enroll --server https://est.plant:8443 --ca ca.crt \
 *         --cert dev.crt --key dev.key --id press-07 --token TOKEN
 * makes a new key on the device (EC P-256, or RSA-3072 with --rsa), sends a
 * request to /simpleenroll with HTTP Basic identity:token, checks what comes
 * back, and writes key and certificate.
 *
 * Later runs (cron or a systemd timer, e.g. daily):
 *     plantgate-enroll --server ... --ca ca.crt --cert dev.crt --key dev.key \
 *         --renew-before 30d
 * do nothing while the certificate has more than 30 days left; then they make
 * a new key and renew at /simplereenroll, authenticated by the current
 * certificate (mutual TLS).
 *
 * The new key waits in KEY.pending until its certificate is in place, so
 * when an answer is lost the next run asks again with the same key and
 * plantgate-est sends the certificate it issued (after a renewal the old
 * certificate is superseded by then; after a first enrollment the token is
 * used) — to the holder of that key only.
 *
 * Files are replaced so that a device never holds a broken pair: KEY.new and
 * CERT.new are written and synced, then KEY.new is renamed over KEY and
 * CERT.new over CERT.  If the device dies between the two renames, the next
 * run finds CERT.new matching KEY and finishes the swap before anything else.
 *
 * Exit status: 0 renewed, enrolled or nothing due; 1 failure; 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "est_csr.h"
#include "est_store.h"
#include "identity.h"
#include "pg_version.h"
#include "util.h"


#define IO_TIMEOUT_S 30
#define RESP_MAX (64 * 1024)

typedef struct opts {
	const char *server, *ca, *cert, *key, *id, *token, *token_file;
	int64_t renew_before_ms;
	bool rsa, force;
	char host[256];
	char port[8];
} opts_t;

/* What main() holds, here so that every exit path (fail() included) leaves
 * it reachable and main's single cleanup frees it. */
static struct {
	X509 *cur, *c;
	STACK_OF(X509) *chain; /* the response: c first, then the CAs it chains through */
	EVP_PKEY *curkey, *k;
	X509_REQ *req;
	char *auth, *body, *resp;
} g;

static void client_free(void)
{
	X509_free(g.cur);
	sk_X509_pop_free(g.chain, X509_free);
	EVP_PKEY_free(g.curkey);
	EVP_PKEY_free(g.k);
	X509_REQ_free(g.req);
	free(g.auth);
	free(g.body);
	free(g.resp);
	memset(&g, 0, sizeof(g));
}

static void die_usage(const char *msg)
{
	if(msg) {
		fprintf(stderr, "plantgate-enroll: error: %s\n", msg);
	}
	fprintf(stderr,
	        "usage: plantgate-enroll --server https://HOST:PORT --ca CA.crt --cert FILE --key FILE\n"
	        "                        [--id ID (--token TOKEN | --token-file FILE)]\n"
	        "                        [--renew-before 30d] [--force] [--rsa]\n"
	        "  first enrollment: --id and a one-time token from scripts/pki enroll-token\n"
	        "  renewal: with a valid --cert/--key, renews once less than --renew-before is "
	        "left (default 30d); --force renews now\n");
	exit(2);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "plantgate-enroll: error: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void parse_server(opts_t *o)
{
	const char *s = o->server;
	if(strncmp(s, "https://", 8) != 0) {
		die_usage("--server must be an https:// URL (EST runs over TLS only)");
	}
	s += 8;
	const char *end = s + strcspn(s, "/");
	const char *colon = NULL;
	for(const char *p = s; p < end; p++) {
		if(*p == ':') {
			colon = p;
		}
	}
	size_t hl = (size_t)((colon ? colon : end) - s);
	if(hl == 0 || hl >= sizeof(o->host)) {
		die_usage("--server has no host");
	}
	memcpy(o->host, s, hl);
	o->host[hl] = '\0';
	size_t pl = colon ? (size_t)(end - colon - 1) : 0;
	int64_t port;
	char pbuf[8] = "443";
	if(colon) {
		if(pl == 0 || pl >= sizeof(pbuf)) {
			die_usage("--server port is not a number");
		}
		memcpy(pbuf, colon + 1, pl);
		pbuf[pl] = '\0';
	}
	if(util_parse_i64(pbuf, 1, 65535, &port)) {
		die_usage("--server port is not a number from 1 to 65535");
	}
	util_snprintf(o->port, sizeof(o->port), "%lld", (long long)port);
}

static X509 *read_cert(const char *path)
{
	FILE *f = fopen(path, "re");
	X509 *c = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if(f) {
		fclose(f);
	}
	return c;
}

static EVP_PKEY *read_key(const char *path)
{
	FILE *f = fopen(path, "re");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if(f) {
		fclose(f);
	}
	return k;
}

/* PEM of a key, or of a certificate followed by the intermediate CAs of
 * `chain` (not the root: the peer has it), so TLS sends the whole path. */
static char *pem_of(bool key, void *obj, STACK_OF(X509) *chain, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int ok = key ? PEM_write_bio_PrivateKey(b, obj, NULL, NULL, 0, NULL, NULL)
	             : PEM_write_bio_X509(b, obj);
	for(int i = 1; !key && ok == 1 && chain && i < sk_X509_num(chain); i++) {
		X509 *ca = sk_X509_value(chain, i);
		if(X509_check_issued(ca, ca) != X509_V_OK) {
			ok = PEM_write_bio_X509(b, ca);
		}
	}
	char *data = NULL, *out = NULL;
	long n = ok == 1 ? BIO_get_mem_data(b, &data) : 0;
	if(n > 0 && (out = malloc((size_t)n + 1))) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
		*len = (size_t)n;
	}
	BIO_free(b);
	return out;
}

/* Finish a swap a previous run could not complete (see the file comment). */
static void recover_swap(const opts_t *o)
{
	char kn[4200], cn[4200];
	util_snprintf(kn, sizeof(kn), "%s.new", o->key);
	util_snprintf(cn, sizeof(cn), "%s.new", o->cert);
	X509 *c = read_cert(cn);
	if(!c) {
		unlink(kn); /* a key without its certificate is of no use */
		return;
	}
	EVP_PKEY *k = read_key(kn);
	const char *keypath = k ? kn : o->key;
	if(!k) {
		k = read_key(o->key);
	}
	if(k && X509_check_private_key(c, k) == 1) {
		if((keypath == kn && rename(kn, o->key)) || rename(cn, o->cert)) {
			fail("cannot finish the interrupted renewal (%s): %s", cn, strerror(errno));
		}
		fprintf(stderr, "plantgate-enroll: finished an interrupted renewal of %s\n", o->cert);
	} else {
		unlink(cn);
		unlink(kn);
	}
	EVP_PKEY_free(k);
	X509_free(c);
}

static X509_REQ *make_csr(EVP_PKEY *k, const char *id)
{
	X509_REQ *r = X509_REQ_new();
	if(!r || X509_REQ_set_version(r, 0) != 1 ||
	   X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", MBSTRING_UTF8,
	                              (const unsigned char *)id, -1, -1, 0) != 1 ||
	   X509_REQ_set_pubkey(r, k) != 1 || X509_REQ_sign(r, k, EVP_sha256()) <= 0) {
		X509_REQ_free(r);
		return NULL;
	}
	return r;
}

static int tcp_connect(const opts_t *o)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = getaddrinfo(o->host, o->port, &hints, &res);
	if(rc) {
		fail("cannot resolve %s: %s", o->host, gai_strerror(rc));
	}
	int fd = -1;
	for(struct addrinfo *a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if(fd < 0) {
			continue;
		}
		struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if(connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if(fd < 0) {
		fail("cannot connect to %s:%s: %s", o->host, o->port, strerror(errno));
	}
	return fd;
}

/* POST body to path over TLS (client cert/key when given).  Returns the HTTP
 * status; *resp is the response body (malloc'ed, NUL-terminated). */
static int https_post(const opts_t *o, const char *path, const char *auth, X509 *cert,
                      EVP_PKEY *key, const char *body, char **resp)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if(!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	   SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
		fail("cannot load --ca %s", o->ca);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if(cert && (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
	            SSL_CTX_use_PrivateKey(ctx, key) != 1)) {
		fail("cannot use %s / %s for TLS", o->cert, o->key);
	}
	int fd = tcp_connect(o);
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, o->host);
	SSL_set1_host(ssl, o->host);
	if(SSL_connect(ssl) != 1) {
		long v = SSL_get_verify_result(ssl);
		fail("TLS with %s:%s failed: %s", o->host, o->port,
		     v != X509_V_OK ? X509_verify_cert_error_string(v)
		                    : ERR_reason_error_string(ERR_peek_last_error())
		                          ? ERR_reason_error_string(ERR_peek_last_error())
		                          : "handshake failed");
	}
	size_t hl = strlen(body) + 1024;
	char *req = malloc(hl);
	int n = snprintf(req, hl,
	                 "POST %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: plantgate-enroll/%s\r\n"
	                 "Content-Type: application/pkcs10\r\nContent-Transfer-Encoding: base64\r\n"
	                 "%s%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
	                 path, o->host, o->port, PG_VERSION, auth ? "Authorization: Basic " : "",
	                 auth ? auth : "", auth ? "\r\n" : "", strlen(body), body);
	if(n < 0 || (size_t)n >= hl || SSL_write(ssl, req, n) != n) {
		fail("cannot send the request to %s", o->server);
	}
	free(req);
	char *buf = malloc(RESP_MAX + 1);
	size_t got = 0;
	for(;;) {
		int r = SSL_read(ssl, buf + got, (int)(RESP_MAX - got));
		if(r <= 0) {
			break;
		}
		got += (size_t)r;
		if(got == RESP_MAX) {
			fail("response from %s larger than %d bytes", o->server, RESP_MAX);
		}
		buf[got] = '\0';
		/* Stop once Content-Length bytes of body are in. */
		char *he = strstr(buf, "\r\n\r\n");
		const char *cl = NULL;
		for(const char *q = buf; he && q < he && !cl; q++) {
			if(strncasecmp(q, "\r\ncontent-length:", 17) == 0) {
				cl = q;
			}
		}
		if(he && cl && cl < he) {
			long want = strtol(cl + 17, NULL, 10);
			if(want >= 0 && (size_t)(he + 4 - buf) + (size_t)want <= got) {
				break;
			}
		}
	}
	buf[got] = '\0';
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	int status = 0;
	char *he = strstr(buf, "\r\n\r\n");
	if(strncmp(buf, "HTTP/1.", 7) != 0 || !he || sscanf(buf + 8, " %d", &status) != 1) {
		fail("%s sent no valid HTTP response", o->server);
	}
	memmove(buf, he + 4, got - (size_t)(he + 4 - buf) + 1);
	*resp = buf;
	return status;
}

static char *csr_b64(X509_REQ *r)
{
	unsigned char *der = NULL;
	int n = i2d_X509_REQ(r, &der);
	char *out = n > 0 ? est_b64_lines(der, (size_t)n, NULL) : NULL;
	OPENSSL_free(der);
	return out;
}

/* The new certificate must be for our key, our identity, and chain to --ca
 * (through the CAs the response carries). */
static void check_issued(const opts_t *o, X509 *c, STACK_OF(X509) *chain, EVP_PKEY *k,
                         const char *id)
{
	if(X509_check_private_key(c, k) != 1) {
		fail("the server returned a certificate for another key; nothing was written");
	}
	identity_opts_t io = {.source = IDENTITY_SAN_URI, .max_len = 64};
	io.uri_prefixes[0] = "urn:plantgate:device:";
	char got[IDENTITY_MAX + 1];
	const char *why;
	if(identity_from_cert(c, &io, got, sizeof(got), &why) || strcmp(got, id) != 0) {
		fail("the server returned a certificate for another identity; nothing was written");
	}
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	if(!st || !ctx || X509_STORE_load_file(st, o->ca) != 1 ||
	   X509_STORE_CTX_init(ctx, st, c, chain) != 1 || X509_verify_cert(ctx) != 1) {
		fail("the returned certificate does not verify against %s; nothing was written", o->ca);
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
}

static void write_pair(const opts_t *o, EVP_PKEY *k, X509 *c, STACK_OF(X509) *chain)
{
	char kn[4200], cn[4200], err[512];
	size_t kl = 0, cl = 0;
	char *kp = pem_of(true, k, NULL, &kl), *cp = pem_of(false, c, chain, &cl);
	util_snprintf(kn, sizeof(kn), "%s.new", o->key);
	util_snprintf(cn, sizeof(cn), "%s.new", o->cert);
	if(!kp || !cp || est_store_write_atomic(kn, kp, kl, 0600, err, sizeof(err)) ||
	   est_store_write_atomic(cn, cp, cl, 0644, err, sizeof(err))) {
		unlink(kn);
		unlink(cn);
		fail("cannot write the new files: %s; the old ones are untouched", err);
	}
	OPENSSL_cleanse(kp, kl);
	free(kp);
	free(cp);
	if(rename(kn, o->key) || rename(cn, o->cert)) {
		fail("cannot put the new files in place: %s (the next run finishes the swap)",
		     strerror(errno));
	}
}

int main(int argc, char **argv)
{
	opts_t o = {.renew_before_ms = INT64_C(30) * 86400 * 1000};
	for(int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if(strcmp(a, "--version") == 0) {
			printf("plantgate-enroll %s\n", PG_VERSION);
			return 0;
		} else if(strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			die_usage(NULL);
		} else if(strcmp(a, "--rsa") == 0) {
			o.rsa = true;
		} else if(strcmp(a, "--force") == 0) {
			o.force = true;
		} else if(!v) {
			die_usage("an option needs a value");
		} else if(strcmp(a, "--server") == 0) {
			o.server = v, i++;
		} else if(strcmp(a, "--ca") == 0) {
			o.ca = v, i++;
		} else if(strcmp(a, "--cert") == 0) {
			o.cert = v, i++;
		} else if(strcmp(a, "--key") == 0) {
			o.key = v, i++;
		} else if(strcmp(a, "--id") == 0) {
			o.id = v, i++;
		} else if(strcmp(a, "--token") == 0) {
			o.token = v, i++;
		} else if(strcmp(a, "--token-file") == 0) {
			o.token_file = v, i++;
		} else if(strcmp(a, "--renew-before") == 0) {
			if(util_parse_duration_ms(v, &o.renew_before_ms) || o.renew_before_ms < 0) {
				die_usage("--renew-before wants a duration such as 30d or 12h");
			}
			i++;
		} else {
			die_usage("unknown option");
		}
	}
	if(!o.server || !o.ca || !o.cert || !o.key) {
		die_usage("--server, --ca, --cert and --key are required");
	}
	parse_server(&o);
	char tokbuf[256];
	if(o.token_file) {
		FILE *f = fopen(o.token_file, "re");
		if(!f || !fgets(tokbuf, sizeof(tokbuf), f)) {
			fail("cannot read --token-file %s", o.token_file);
		}
		fclose(f);
		tokbuf[strcspn(tokbuf, "\r\n")] = '\0';
		o.token = tokbuf;
	}
	recover_swap(&o);

	time_t now = time(NULL);
	g.cur = o.token ? NULL : read_cert(o.cert);
	g.curkey = g.cur ? read_key(o.key) : NULL;
	char id[IDENTITY_MAX + 1] = "";
	const char *path;
	if(o.token) {
		if(!o.id) {
			die_usage("first enrollment needs --id with the token");
		}
		const char *why;
		if(!identity_valid(o.id, strlen(o.id), 64, &why)) {
			fail("--id: %s", why);
		}
		util_strlcpy(id, o.id, sizeof(id));
		char cred[400];
		if(util_snprintf(cred, sizeof(cred), "%s:%s", o.id, o.token) < 0) {
			fail("--id or --token too long");
		}
		g.auth = malloc(sizeof(cred) * 2);
		if(!g.auth) {
			fail("out of memory");
		}
		g.auth[envelope_b64_encode((const unsigned char *)cred, strlen(cred), g.auth)] = '\0';
		OPENSSL_cleanse(cred, sizeof(cred));
		path = "/.well-known/est/simpleenroll";
	} else {
		if(!g.cur || !g.curkey) {
			fail("no usable certificate/key at %s / %s: enroll first with --id ID --token TOKEN "
			     "(from scripts/pki enroll-token)",
			     o.cert, o.key);
		}
		if(X509_check_private_key(g.cur, g.curkey) != 1) {
			fail("%s does not belong to %s", o.key, o.cert);
		}
		identity_opts_t io = {.source = IDENTITY_SAN_URI, .max_len = 64};
		io.uri_prefixes[0] = "urn:plantgate:device:";
		const char *why;
		if(identity_from_cert(g.cur, &io, id, sizeof(id), &why)) {
			fail("%s is not a plantgate device certificate: %s", o.cert, why);
		}
		if(X509_cmp_time(X509_get0_notAfter(g.cur), &now) <= 0) {
			fail("%s has expired: it cannot renew itself; ask the operator for a token "
			     "(scripts/pki enroll-token %s) and enroll with --id %s --token TOKEN",
			     o.cert, id, id);
		}
		time_t due = now + (time_t)(o.renew_before_ms / 1000);
		if(!o.force && X509_cmp_time(X509_get0_notAfter(g.cur), &due) > 0) {
			struct tm tm;
			char until[32] = "?";
			if(ASN1_TIME_to_tm(X509_get0_notAfter(g.cur), &tm) == 1) {
				strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
			}
			printf("%s: certificate valid until %s; renewal not due yet\n", id, until);
			client_free();
			return 0;
		}
		path = "/.well-known/est/simplereenroll";
	}

	/* The new key is kept as KEY.pending until its certificate is in place:
	 * if the answer is lost, the next run asks again with the same key and
	 * plantgate-est sends the certificate it already issued. */
	char pending[4200], err[512];
	util_snprintf(pending, sizeof(pending), "%s.pending", o.key);
	g.k = read_key(pending);
	if(!g.k) {
		g.k = o.rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072)
		            : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		size_t pl = 0;
		char *pp = g.k ? pem_of(true, g.k, NULL, &pl) : NULL;
		if(pp && est_store_write_atomic(pending, pp, pl, 0600, err, sizeof(err))) {
			fail("cannot keep the new key: %s", err);
		}
		if(pp) {
			OPENSSL_cleanse(pp, pl);
			free(pp);
		}
	}
	g.req = g.k ? make_csr(g.k, id) : NULL;
	g.body = g.req ? csr_b64(g.req) : NULL;
	if(!g.body) {
		fail("cannot make a key and request");
	}
	int status = https_post(&o, path, g.auth, g.cur, g.curkey, g.body, &g.resp);
	if(status != 200) {
		g.resp[strcspn(g.resp, "\r\n")] = '\0';
		char q[600];
		fail("%s answered %d: %s", o.server, status, util_log_safe(g.resp, q, sizeof(q)));
	}
	char why[256];
	g.chain = est_certs_only_decode(g.resp, strlen(g.resp), why, sizeof(why));
	if(!g.chain) {
		fail("%s: %s", o.server, why);
	}
	g.c = sk_X509_value(g.chain, 0);
	check_issued(&o, g.c, g.chain, g.k, id);
	write_pair(&o, g.k, g.c, g.chain);
	struct tm tm;
	char until[32] = "?", serial[128] = "?";
	if(ASN1_TIME_to_tm(X509_get0_notAfter(g.c), &tm) == 1) {
		strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	est_serial_hex(g.c, serial, sizeof(serial));
	printf("%s: %s; serial %s valid until %s; wrote %s and %s\n", id,
	       o.token ? "enrolled" : "renewed", serial, until, o.key, o.cert);
	unlink(pending); /* the pair is in place */
	OPENSSL_cleanse(tokbuf, sizeof(tokbuf));
	client_free();
	return 0;
}
