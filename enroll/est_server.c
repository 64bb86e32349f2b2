/*
 * est_server.c — plantgate-est, the plant's EST server (RFC 7030 subset) on
 * libwebsockets, HTTPS only, meant for the plant LAN:
 *
 *   GET  /.well-known/est/cacerts        the CA certificates (certs-only): the
 *                                        root, or the intermediate and the root
 *   POST /.well-known/est/simpleenroll   first enrollment: HTTP Basic
 *                                        identity:token (scripts/pki
 *                                        enroll-token), body = base64 PKCS#10
 *   POST /.well-known/est/simplereenroll renewal: mutual TLS with the
 *                                        device's current certificate
 *
 * The TLS layer asks for a client certificate but lets the handshake finish
 * without one (a new device has none); whether a certificate is good enough
 * to renew is decided here, per request, by est_reenroll_check() — chain,
 * dates, identity rules and the plugin's revocation list and CRL, re-read for
 * every request so a revocation counts at once.
 *
 * An answer the device never received is sent again to the holder of the new
 * certificate's key (est_issued_for): after a renewal when the old
 * certificate was superseded, after a first enrollment when the token was
 * used for it.  With an intermediate issuer it keeps that CA's CRL in the PKI
 * directory (est_crl_refresh), since mosquitto's crlfile needs one.
 *
 * Every issuance and every refusal goes to stderr and, with audit_log, to a
 * hash-chained audit trail of its own (plugin/core/audit.c; verify it with
 * plantgate-audit verify).  One thread; lws_service() runs the loop.
 */
#include <errno.h>
#include <libwebsockets.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "envelope.h"
#include "est_conf.h"
#include "est_csr.h"
#include "est_policy.h"
#include "est_store.h"
#include "est_token.h"
#include "identity.h"
#include "pg_version.h"
#include "revocation.h"
#include "util.h"


#define EST_PREFIX "/.well-known/est/"

typedef struct est_server {
	est_conf_t cfg;
	X509 *root;         /* the plant root CA (ca_cert): trust anchor for renewals */
	X509 *issuer;       /* the CA that signs (issuer_cert) */
	X509 *intermediate; /* == issuer when it is not the root, else NULL (borrowed) */
	EVP_PKEY *issuer_key;
	struct stat index_seen; /* index.txt as the intermediate's CRL last saw it */
	time_t crl_made;
	audit_t *audit;
	est_limits_t *limits;
	struct lws_context *ctx;
	lws_sorted_usec_list_t sul;
} est_server_t;

typedef struct est_pss {
	char path[128];
	char *body; /* request body, EST_BODY_MAX + 1 bytes */
	size_t body_len;
	bool too_big;
	char *resp; /* response body */
	size_t resp_len, resp_off;
} est_pss_t;

static volatile sig_atomic_t est_stop;

static void est_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void est_log(const char *fmt, ...)
{
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s plantgate-est: ", ts);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void est_audit(est_server_t *s, bool ok, const char *identity, const char *address,
                      const char *op, const char *reason)
{
	if(!s->audit) {
		return;
	}
	audit_event_t ev = {.event = ok ? AUDIT_EV_ENROLL : AUDIT_EV_ENROLL_REFUSED,
	                    .identity = identity,
	                    .address = address,
	                    .access = op,
	                    .decision = ok ? "allow" : "deny",
	                    .reason = reason};
	if(ok) {
		audit_write(s->audit, &ev, util_wall_ms());
	} else {
		audit_write_limited(s->audit, &ev, util_wall_ms());
	}
}

/* ----------------------------------------------------------- responses */

static int est_add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                          unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
	                                   (const unsigned char *)value, (int)strlen(value), p, end);
}

/* Send the headers; the body (taken over) follows in HTTP_WRITEABLE. */
static int est_respond(struct lws *wsi, est_pss_t *pss, int status, const char *ctype, char *body,
                       size_t len, const char *extra_name, const char *extra_value)
{
	unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
	                                   *end = hdr + sizeof(hdr) - 1;
	free(pss->resp);
	pss->resp = body;
	pss->resp_len = len;
	pss->resp_off = 0;
	if(lws_add_http_common_headers(wsi, (unsigned)status, ctype, len, &p, end) ||
	   est_add_header(wsi, "cache-control:", "no-store", &p, end) ||
	   (extra_name && est_add_header(wsi, extra_name, extra_value, &p, end)) ||
	   (!strncmp(ctype, "application/pkcs7-mime", 22) &&
	    est_add_header(wsi, "content-transfer-encoding:", "base64", &p, end)) ||
	   lws_finalize_write_http_header(wsi, start, &p, end)) {
		return -1;
	}
	lws_callback_on_writable(wsi);
	return 0;
}

static int est_respond_text(struct lws *wsi, est_pss_t *pss, int status, const char *text,
                            const char *extra_name, const char *extra_value)
{
	size_t n = strlen(text) + 2;
	char *b = malloc(n);
	if(!b) {
		return -1;
	}
	util_snprintf(b, n, "%s\n", text);
	return est_respond(wsi, pss, status, "text/plain; charset=utf-8", b, n - 1, extra_name,
	                   extra_value);
}

static int est_respond_certs(struct lws *wsi, est_pss_t *pss, X509 *const *certs, size_t n)
{
	size_t len = 0;
	char *b = est_certs_only_b64(certs, n, &len);
	if(!b) {
		return est_respond_text(wsi, pss, 500, "error: cannot encode the certificate", NULL,
		                        NULL);
	}
	return est_respond(wsi, pss, 200, "application/pkcs7-mime; smime-type=certs-only", b, len,
	                   NULL, NULL);
}

static int est_write_body(struct lws *wsi, est_pss_t *pss)
{
	enum { CHUNK = 4096 };
	unsigned char buf[LWS_PRE + CHUNK];
	size_t left = pss->resp_len - pss->resp_off;
	size_t n = left < CHUNK ? left : CHUNK;
	bool last = n == left;
	memcpy(buf + LWS_PRE, pss->resp + pss->resp_off, n);
	if(lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n) {
		return -1;
	}
	pss->resp_off += n;
	if(!last) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	free(pss->resp);
	pss->resp = NULL;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ------------------------------------------------------------ requests */

typedef struct est_req {
	char address[64];
	char identity[EST_NAME_MAX + 1];
	const char *op; /* "simpleenroll" / "simplereenroll" */
} est_req_t;

static int est_refuse(est_server_t *s, struct lws *wsi, est_pss_t *pss, const est_req_t *r,
                      est_err_t e, const char *why)
{
	static const struct {
		est_err_t e;
		int status;
	} map[] = {
	    {EST_E_MALFORMED, 400}, {EST_E_SIGNATURE, 400}, {EST_E_KEYTYPE, 400},
	    {EST_E_IDENTITY, 403},  {EST_E_TOKEN, 401},     {EST_E_REPLAY, 403},
	    {EST_E_CERT, 403},      {EST_E_RATE, 429},      {EST_E_INTERNAL, 500},
	};
	int status = 500;
	for(size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if(map[i].e == e) {
			status = map[i].status;
		}
	}
	char reason[600], qid[200], qwhy[600];
	util_snprintf(reason, sizeof(reason), "%s: %s", est_strerror(e), why);
	est_log("refused %s identity=%s address=%s status=%d reason=%s", r->op,
	        util_log_safe(r->identity[0] ? r->identity : "-", qid, sizeof(qid)), r->address,
	        status, util_log_safe(reason, qwhy, sizeof(qwhy)));
	est_audit(s, false, r->identity, r->address, r->op, reason);
	char text[700];
	util_snprintf(text, sizeof(text), "error: %s", reason);
	if(status == 401) {
		return est_respond_text(wsi, pss, status, text,
		                        "www-authenticate:", "Basic realm=\"plantgate-est\"");
	}
	if(status == 429) {
		return est_respond_text(wsi, pss, status, text, "retry-after:", "60");
	}
	return est_respond_text(wsi, pss, status, text, NULL, NULL);
}

/* "Basic base64(identity:token)" from the Authorization header. */
static est_err_t est_basic_auth(struct lws *wsi, char *id, size_t idlen, char *tok, size_t toklen,
                                char *why, size_t whylen)
{
	char hdr[512];
	unsigned char dec[400];
	int n = lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION);
	if(n <= 0) {
		util_strlcpy(why, "no credentials: send the identity and its enrollment token as HTTP "
		                  "Basic (curl -u ID:TOKEN)",
		             whylen);
		return EST_E_TOKEN;
	}
	if(strncasecmp(hdr, "Basic ", 6) != 0) {
		util_strlcpy(why, "only HTTP Basic (identity:token) is accepted", whylen);
		return EST_E_TOKEN;
	}
	const char *b = hdr + 6;
	while(*b == ' ') {
		b++;
	}
	long dl = envelope_b64_decode(b, strlen(b), dec, sizeof(dec) - 1);
	if(dl <= 0) {
		util_strlcpy(why, "the Basic credentials are not base64", whylen);
		return EST_E_TOKEN;
	}
	dec[dl] = '\0';
	char *colon = memchr(dec, ':', (size_t)dl);
	if(!colon || strlen((char *)dec) != (size_t)dl) {
		util_strlcpy(why, "the Basic credentials are not identity:token", whylen);
		return EST_E_TOKEN;
	}
	*colon = '\0';
	const char *reason = NULL;
	if(!identity_valid((char *)dec, strlen((char *)dec), EST_NAME_MAX, &reason)) {
		util_snprintf(why, whylen, "the identity is not acceptable: %s", reason);
		return EST_E_IDENTITY;
	}
	if(util_strlcpy(id, (char *)dec, idlen) || util_strlcpy(tok, colon + 1, toklen)) {
		util_strlcpy(why, "identity or token too long", whylen);
		return EST_E_TOKEN;
	}
	return EST_OK;
}

static void est_random_serial(unsigned char out[EST_SERIAL_BYTES])
{
	if(RAND_bytes(out, EST_SERIAL_BYTES) != 1) {
		/* RAND_bytes does not fail on Linux with a seeded DRBG; never issue
		 * a predictable serial if it does. */
		est_log("fatal: RAND_bytes failed");
		abort();
	}
}

/* Issue for `subj`, record it in the CA database (lock held by caller). */
static X509 *est_issue_record(est_server_t *s, X509_REQ *req, const est_subject_t *subj,
                              time_t now, char *why, size_t whylen)
{
	unsigned char sr[EST_SERIAL_BYTES];
	est_random_serial(sr);
	X509 *c = est_issue(s->issuer, s->issuer_key, req, subj, now, s->cfg.cert_days, sr, why,
	                    whylen);
	if(c && est_store_record(s->cfg.pki_dir, c, why, whylen)) {
		X509_free(c);
		c = NULL;
	}
	return c;
}

static void est_issued(est_server_t *s, const est_req_t *r, X509 *c, const char *how)
{
	char serial[128] = "", reason[400], qid[200], until[32] = "?";
	struct tm tm;
	est_serial_hex(c, serial, sizeof(serial));
	if(ASN1_TIME_to_tm(X509_get0_notAfter(c), &tm) == 1) {
		strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	util_snprintf(reason, sizeof(reason), "issued serial %s until %s (%s)", serial, until, how);
	est_log("%s identity=%s address=%s %s", r->op, util_log_safe(r->identity, qid, sizeof(qid)),
	        r->address, reason);
	est_audit(s, true, r->identity, r->address, r->op, reason);
}

static int est_tokens_save(est_server_t *s, const est_tokens_t *t, char *why, size_t whylen)
{
	size_t fl;
	char *f = est_tokens_format(t, &fl);
	int rc = f ? est_store_write_atomic(s->cfg.tokens, f, fl, 0600, why, whylen) : -1;
	if(!f) {
		util_strlcpy(why, "out of memory", whylen);
	}
	free(f);
	return rc;
}

/* The certificate at newcerts/SERIAL.pem if index.txt says it is valid and it
 * holds the public key of req, else NULL: what a device that lost the answer
 * may be sent again. */
static X509 *est_issued_for(est_server_t *s, const char *serial, X509_REQ *req)
{
	char path[EST_PATH_MAX + 160], err[256];
	size_t len = 0;
	util_snprintf(path, sizeof(path), "%s/index.txt", s->cfg.pki_dir);
	char *text = est_store_read(path, &len, err, sizeof(err));
	bool valid = text && est_index_status(text, len, serial) == 'V';
	free(text);
	if(!valid || util_snprintf(path, sizeof(path), "%s/newcerts/%s.pem", s->cfg.pki_dir, serial) < 0) {
		return NULL;
	}
	FILE *f = fopen(path, "re");
	X509 *c = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if(f) {
		fclose(f);
	}
	if(c && EVP_PKEY_eq(X509_get0_pubkey(c), X509_REQ_get0_pubkey(req)) != 1) {
		X509_free(c);
		c = NULL;
	}
	return c;
}

static int est_enroll(est_server_t *s, struct lws *wsi, est_pss_t *pss, est_req_t *r)
{
	char why[512] = "", tok[256];
	const char *how = "token";
	est_err_t e = est_basic_auth(wsi, r->identity, sizeof(r->identity), tok, sizeof(tok), why,
	                             sizeof(why));
	if(e) {
		return est_refuse(s, wsi, pss, r, e, why);
	}
	char key[100];
	util_snprintf(key, sizeof(key), "id:%s", r->identity);
	if(!est_limits_take(s->limits, key, s->cfg.rate_identity, s->cfg.rate_identity_ms,
	                    util_mono_ms())) {
		return est_refuse(s, wsi, pss, r, EST_E_RATE, "too many requests for this identity");
	}
	X509_REQ *req = NULL;
	e = est_csr_decode(pss->body, pss->body_len, &req, why, sizeof(why));
	if(!e) {
		e = est_csr_check(req, r->identity, why, sizeof(why));
	}
	if(e) {
		X509_REQ_free(req);
		return est_refuse(s, wsi, pss, r, e, why);
	}
	int lock = est_store_lock(s->cfg.pki_dir, why, sizeof(why));
	if(lock < 0) {
		X509_REQ_free(req);
		return est_refuse(s, wsi, pss, r, EST_E_INTERNAL, why);
	}
	time_t now = time(NULL);
	est_tokens_t t;
	X509 *c = NULL;
	size_t idx = 0;
	if(est_tokens_load(s->cfg.tokens, &t, why, sizeof(why))) {
		e = EST_E_INTERNAL;
		goto out;
	}
	e = est_tokens_redeem(&t, r->identity, tok, now, &idx, why, sizeof(why));
	if(e == EST_E_REPLAY && t.v[idx].serial[0] &&
	   (c = est_issued_for(s, t.v[idx].serial, req)) != NULL) {
		/* The device never got the answer: the same key asks again. */
		how = "re-sent: the answer to this token's enrollment was lost";
		e = EST_OK;
		goto out;
	}
	if(e) {
		goto out;
	}
	/* Burn the token before anything is issued: a crash from here on
	 * costs a token, never hands out two certificates for one. */
	if(est_tokens_save(s, &t, why, sizeof(why))) {
		e = EST_E_INTERNAL;
		goto out;
	}
	est_subject_t subj = {t.v[idx].id, t.v[idx].site, t.v[idx].line};
	c = est_issue_record(s, req, &subj, now, why, sizeof(why));
	if(!c) {
		e = EST_E_INTERNAL;
		goto out;
	}
	/* Remember what the token was used for, so a lost answer can be sent again. */
	char q[600] = "cannot read the serial", qq[700];
	if(est_serial_hex(c, t.v[idx].serial, sizeof(t.v[idx].serial)) ||
	   est_tokens_save(s, &t, q, sizeof(q))) {
		est_log("warning: identity=%s token not linked to its certificate: %s", r->identity,
		        util_log_safe(q, qq, sizeof(qq)));
	}
out:
	est_store_unlock(lock);
	est_tokens_free(&t);
	X509_REQ_free(req);
	if(e) {
		return est_refuse(s, wsi, pss, r, e, why);
	}
	est_issued(s, r, c, how);
	X509 *certs[2] = {c, s->intermediate};
	int rc = est_respond_certs(wsi, pss, certs, s->intermediate ? 2 : 1);
	X509_free(c);
	return rc;
}

/* An intermediate issuer's CRL (est_store_crl): at start, after a
 * supersede, when index.txt changed (scripts/pki revoke) and daily.  With
 * `locked` the caller holds the PKI lock. */
static void est_crl_refresh(est_server_t *s, bool locked)
{
	if(!s->intermediate) {
		return;
	}
	char idx[EST_PATH_MAX + 16], err[600], q[700];
	struct stat st;
	time_t now = time(NULL);
	util_snprintf(idx, sizeof(idx), "%s/index.txt", s->cfg.pki_dir);
	if(stat(idx, &st) == 0 && st.st_mtim.tv_sec == s->index_seen.st_mtim.tv_sec &&
	   st.st_mtim.tv_nsec == s->index_seen.st_mtim.tv_nsec && st.st_size == s->index_seen.st_size &&
	   st.st_ino == s->index_seen.st_ino && now - s->crl_made < 86400) {
		return;
	}
	int lock = locked ? -1 : est_store_lock(s->cfg.pki_dir, err, sizeof(err));
	if(!locked && lock < 0) {
		est_log("warning: CRL not refreshed: %s", util_log_safe(err, q, sizeof(q)));
		return;
	}
	stat(idx, &st); /* as read under the lock */
	if(est_store_crl(s->cfg.pki_dir, s->issuer, s->issuer_key, now, err, sizeof(err))) {
		est_log("error: the intermediate's CRL could not be written: %s; mosquitto's crlfile "
		        "refuses this CA's clients once the last one expires",
		        util_log_safe(err, q, sizeof(q)));
	} else {
		s->index_seen = st;
		s->crl_made = now;
		est_log("CRL of %s written to %s/crl-est.pem and %s/crl.pem", s->cfg.issuer_cert,
		        s->cfg.pki_dir, s->cfg.pki_dir);
	}
	if(!locked) {
		est_store_unlock(lock);
	}
}

/* A device renewed, but the answer never reached it: it comes back with its
 * old certificate, now superseded, and the same request.  If the request is
 * signed with the key of the certificate that superseded it, send that one
 * again (a certificate goes only to the holder of its key; nothing is
 * issued).  True when it answered (*rc is the callback's result). */
static bool est_resend(est_server_t *s, struct lws *wsi, est_pss_t *pss, const est_req_t *r,
                       const est_peer_t *p, int *rc)
{
	char why[512], idx[EST_PATH_MAX + 16], newest[128];
	X509_REQ *req = NULL;
	X509 *c = NULL;
	char *text = NULL;
	size_t len = 0;
	bool done = false;
	if(est_csr_decode(pss->body, pss->body_len, &req, why, sizeof(why)) ||
	   est_csr_check(req, p->identity, why, sizeof(why))) {
		goto out;
	}
	util_snprintf(idx, sizeof(idx), "%s/index.txt", s->cfg.pki_dir);
	text = est_store_read(idx, &len, why, sizeof(why));
	if(!text || !est_index_resendable(text, len, p->serial, p->identity, newest, sizeof(newest)) ||
	   !(c = est_issued_for(s, newest, req))) {
		goto out;
	}
	char how[300];
	util_snprintf(how, sizeof(how), "re-sent: the answer to the renewal of serial %s was lost",
	              p->serial);
	est_issued(s, r, c, how);
	X509 *certs[2] = {c, s->intermediate};
	*rc = est_respond_certs(wsi, pss, certs, s->intermediate ? 2 : 1);
	done = true;
out:
	free(text);
	X509_free(c);
	X509_REQ_free(req);
	return done;
}

static int est_reenroll(est_server_t *s, struct lws *wsi, est_pss_t *pss, est_req_t *r)
{
	char why[512] = "", key[100];
	SSL *ssl = lws_get_ssl(wsi);
	X509 *peer = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
	STACK_OF(X509) *chain = ssl ? SSL_get_peer_cert_chain(ssl) : NULL;
	char list[EST_PATH_MAX + 32], crl[EST_PATH_MAX + 32];
	util_snprintf(list, sizeof(list), "%s/revoked.txt", s->cfg.pki_dir);
	util_snprintf(crl, sizeof(crl), "%s/crl.pem", s->cfg.pki_dir);
	struct stat st;
	revocation_t *rev = revocation_load(stat(list, &st) == 0 ? list : NULL,
	                                    stat(crl, &st) == 0 ? crl : NULL, why, sizeof(why));
	X509_REQ *req = NULL;
	X509 *c = NULL;
	time_t now = time(NULL);
	est_err_t e = EST_E_INTERNAL;
	est_peer_t p;
	if(!rev) {
		goto out; /* fail closed: an unreadable revocation list renews nothing */
	}
	e = est_reenroll_check(peer, chain, s->root, s->intermediate, rev, now, &p, why, sizeof(why));
	if(e == EST_E_CERT && p.revoked) {
		util_strlcpy(r->identity, p.identity, sizeof(r->identity));
		int rc = 0;
		if(est_resend(s, wsi, pss, r, &p, &rc)) {
			revocation_free(rev);
			X509_free(peer);
			return rc;
		}
		goto out;
	}
	if(e) {
		if(peer) {
			/* Name the certificate in the refusal even though it is not accepted. */
			identity_opts_t o = {.source = IDENTITY_CN, .max_len = EST_NAME_MAX};
			const char *dummy;
			char id[IDENTITY_MAX + 1];
			if(identity_from_cert(peer, &o, id, sizeof(id), &dummy) == 0) {
				util_strlcpy(r->identity, id, sizeof(r->identity));
			}
		}
		goto out;
	}
	util_strlcpy(r->identity, p.identity, sizeof(r->identity));
	util_snprintf(key, sizeof(key), "id:%s", r->identity);
	if(!est_limits_take(s->limits, key, s->cfg.rate_identity, s->cfg.rate_identity_ms,
	                    util_mono_ms())) {
		e = EST_E_RATE;
		util_strlcpy(why, "too many requests for this identity", sizeof(why));
		goto out;
	}
	e = est_csr_decode(pss->body, pss->body_len, &req, why, sizeof(why));
	if(!e) {
		e = est_csr_check(req, p.identity, why, sizeof(why));
	}
	if(e) {
		goto out;
	}
	int lock = est_store_lock(s->cfg.pki_dir, why, sizeof(why));
	if(lock < 0) {
		e = EST_E_INTERNAL;
		goto out;
	}
	est_subject_t subj = {p.identity, p.site, p.line};
	c = est_issue_record(s, req, &subj, now, why, sizeof(why));
	if(c && s->cfg.old_cert == EST_OLD_REVOKE &&
	   est_store_supersede(s->cfg.pki_dir, peer, p.identity, now, why, sizeof(why))) {
		/* The new certificate is recorded and valid; say the old one is not
		 * revoked rather than hide it. */
		char q[600];
		est_log("warning: identity=%s old serial %s not marked superseded: %s", p.identity,
		        p.serial, util_log_safe(why, q, sizeof(q)));
	}
	est_crl_refresh(s, true);
	est_store_unlock(lock);
	e = c ? EST_OK : EST_E_INTERNAL;
out:
	revocation_free(rev);
	X509_REQ_free(req);
	X509_free(peer);
	if(e) {
		return est_refuse(s, wsi, pss, r, e, why);
	}
	char how[200];
	util_snprintf(how, sizeof(how), "renewal of serial %s%s", p.serial,
	              s->cfg.old_cert == EST_OLD_REVOKE ? ", old one revoked (superseded)" : "");
	est_issued(s, r, c, how);
	X509 *certs[2] = {c, s->intermediate};
	int rc = est_respond_certs(wsi, pss, certs, s->intermediate ? 2 : 1);
	X509_free(c);
	return rc;
}

static int est_on_body_done(est_server_t *s, struct lws *wsi, est_pss_t *pss)
{
	est_req_t r;
	memset(&r, 0, sizeof(r));
	lws_get_peer_simple(wsi, r.address, sizeof(r.address));
	r.op = strcmp(pss->path, EST_PREFIX "simpleenroll") == 0 ? "simpleenroll" : "simplereenroll";
	char key[100];
	util_snprintf(key, sizeof(key), "addr:%s", r.address);
	if(!est_limits_take(s->limits, key, s->cfg.rate_address, s->cfg.rate_address_ms,
	                    util_mono_ms())) {
		return est_refuse(s, wsi, pss, &r, EST_E_RATE, "too many requests from this address");
	}
	if(pss->too_big) {
		return est_refuse(s, wsi, pss, &r, EST_E_MALFORMED, "request body larger than 16 KiB");
	}
	return strcmp(r.op, "simpleenroll") == 0 ? est_enroll(s, wsi, pss, &r)
	                                         : est_reenroll(s, wsi, pss, &r);
}

static int est_on_request(est_server_t *s, struct lws *wsi, est_pss_t *pss)
{
	bool post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
	bool get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
	if(strcmp(pss->path, EST_PREFIX "cacerts") == 0) {
		if(!get) {
			return est_respond_text(wsi, pss, 405, "error: /cacerts is GET only", "allow:", "GET");
		}
		X509 *certs[2] = {s->issuer, s->root};
		return est_respond_certs(wsi, pss, s->intermediate ? certs : &s->root,
		                         s->intermediate ? 2 : 1);
	}
	if(strcmp(pss->path, EST_PREFIX "simpleenroll") == 0 ||
	   strcmp(pss->path, EST_PREFIX "simplereenroll") == 0) {
		if(!post) {
			return est_respond_text(wsi, pss, 405, "error: enrollment is POST only", "allow:",
			                        "POST");
		}
		if(lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
			/* libwebsockets 4.1 does not read a chunked request body. */
			return est_respond_text(wsi, pss, 411,
			                        "error: send the request with a Content-Length (no chunked "
			                        "transfer encoding)",
			                        NULL, NULL);
		}
		pss->body = malloc(EST_BODY_MAX + 1);
		pss->body_len = 0;
		return pss->body ? 0 : -1; /* the body follows */
	}
	return est_respond_text(wsi, pss, 404,
	                        "error: not found; this EST server serves /.well-known/est/cacerts, "
	                        "/simpleenroll and /simplereenroll",
	                        NULL, NULL);
}

static int est_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	est_server_t *s = ctx ? lws_context_user(ctx) : NULL;
	est_pss_t *pss = user;
	switch(reason) {
	case LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION:
		/* Let every handshake finish: a new device has no certificate, and a
		 * renewal's certificate is judged per request (est_reenroll_check). */
		return 0;
	case LWS_CALLBACK_HTTP: {
		size_t n = len < sizeof(pss->path) - 1 ? len : sizeof(pss->path) - 1;
		memcpy(pss->path, in ? in : "", in ? n : 0);
		pss->path[in ? n : 0] = '\0';
		return est_on_request(s, wsi, pss);
	}
	case LWS_CALLBACK_HTTP_BODY:
		if(pss->body && !pss->too_big) {
			if(pss->body_len + len > EST_BODY_MAX) {
				pss->too_big = true;
			} else {
				memcpy(pss->body + pss->body_len, in, len);
				pss->body_len += len;
			}
		}
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if(!pss->body) {
			return -1;
		}
		{
			int rc = est_on_body_done(s, wsi, pss);
			free(pss->body);
			pss->body = NULL;
			return rc;
		}
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return pss && pss->resp ? est_write_body(wsi, pss) : 0;
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if(pss) {
			free(pss->body);
			free(pss->resp);
			pss->body = pss->resp = NULL;
		}
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols est_protocols[] = {
    {"plantgate-est", est_callback, sizeof(est_pss_t), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* ------------------------------------------------------------ start-up */

static void est_on_signal(int sig)
{
	(void)sig;
	est_stop = 1;
}

static void est_on_tick(lws_sorted_usec_list_t *sul)
{
	est_server_t *s = lws_container_of(sul, est_server_t, sul);
	if(s->audit) {
		audit_tick(s->audit, util_wall_ms());
	}
	est_crl_refresh(s, false);
	lws_sul_schedule(s->ctx, 0, &s->sul, est_on_tick, 200 * LWS_US_PER_MS);
}

static void est_lws_log(int level, const char *line)
{
	char q[600];
	(void)level;
	est_log("lws: %s", util_log_safe(line, q, sizeof(q)));
}

/* The issuing key must be readable by this user only. */
static int est_load_issuer(est_server_t *s, char *err, size_t errlen)
{
	const est_conf_t *c = &s->cfg;
	struct stat st;
	if(stat(c->issuer_key, &st)) {
		util_snprintf(err, errlen, "issuer_key %s: %s", c->issuer_key, strerror(errno));
		return -1;
	}
	if(st.st_mode & 077) {
		util_snprintf(err, errlen,
		              "issuer_key %s has mode %03o: other users could read the CA key; run "
		              "chmod 600 %s (owner: plantgate-est's user)",
		              c->issuer_key, (unsigned)(st.st_mode & 0777), c->issuer_key);
		return -1;
	}
	if(st.st_uid != geteuid()) {
		util_snprintf(err, errlen,
		              "issuer_key %s belongs to uid %u, not to plantgate-est's user (uid %u); "
		              "chown it",
		              c->issuer_key, (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	FILE *f = fopen(c->issuer_key, "re");
	s->issuer_key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if(f) {
		fclose(f);
	}
	f = fopen(c->issuer_cert, "re");
	s->issuer = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if(f) {
		fclose(f);
	}
	f = fopen(c->ca_cert, "re");
	s->root = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if(f) {
		fclose(f);
	}
	if(!s->issuer_key || !s->issuer || !s->root) {
		util_snprintf(err, errlen, "cannot read %s",
		              !s->issuer_key ? c->issuer_key : !s->issuer ? c->issuer_cert : c->ca_cert);
		return -1;
	}
	if(X509_cmp(s->root, s->issuer) != 0) {
		/* An intermediate: it must be a CA the root signed. */
		X509_STORE *store = X509_STORE_new();
		X509_STORE_CTX *ctx = X509_STORE_CTX_new();
		bool ok = store && ctx && X509_STORE_add_cert(store, s->root) == 1 &&
		          X509_STORE_CTX_init(ctx, store, s->issuer, NULL) == 1 &&
		          X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY) == 1 &&
		          X509_verify_cert(ctx) == 1;
		X509_STORE_CTX_free(ctx);
		X509_STORE_free(store);
		if(!ok) {
			util_snprintf(err, errlen,
			              "issuer_cert %s does not chain to ca_cert %s; make the intermediate "
			              "with scripts/pki intermediate NAME",
			              c->issuer_cert, c->ca_cert);
			return -1;
		}
		s->intermediate = s->issuer;
	}
	if(X509_check_private_key(s->issuer, s->issuer_key) != 1) {
		util_snprintf(err, errlen, "issuer_key %s does not belong to issuer_cert %s",
		              c->issuer_key, c->issuer_cert);
		return -1;
	}
	if(X509_check_ca(s->issuer) < 1) {
		util_snprintf(err, errlen, "issuer_cert %s is not a CA certificate", c->issuer_cert);
		return -1;
	}
	return 0;
}

static void est_usage(FILE *f)
{
	fprintf(f, "usage: plantgate-est -c FILE [-n]\n"
	           "  -c FILE    configuration (see config/est.conf)\n"
	           "  -n         check the configuration and the issuer, print \"configuration OK\"\n"
	           "  --version  print the version\n");
}

int main(int argc, char **argv)
{
	const char *conf = NULL;
	bool check = false;
	for(int i = 1; i < argc; i++) {
		if(strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			conf = argv[++i];
		} else if(strcmp(argv[i], "-n") == 0) {
			check = true;
		} else if(strcmp(argv[i], "--version") == 0) {
			printf("plantgate-est %s\n", PG_VERSION);
			return 0;
		} else if(strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			est_usage(stdout);
			return 0;
		} else {
			est_usage(stderr);
			return 2;
		}
	}
	if(!conf) {
		est_usage(stderr);
		return 2;
	}
	static est_server_t s;
	char err[1024];
	int rc = 1;
	if(est_conf_load(conf, &s.cfg, err, sizeof(err)) || est_load_issuer(&s, err, sizeof(err))) {
		fprintf(stderr, "plantgate-est: error: %s\n", err);
		goto out;
	}
	if(!s.intermediate) {
		est_log("warning: issuer_cert %s is the root CA: plantgate-est holds the root CA key; "
		        "give it an intermediate instead (scripts/pki intermediate NAME, "
		        "docs/enrollment.md)",
		        s.cfg.issuer_cert);
	}
	if(check) {
		printf("configuration OK\n");
		rc = 0;
		goto out;
	}
	s.limits = est_limits_new();
	if(!s.limits) {
		goto out;
	}
	if(s.cfg.audit_log[0]) {
		s.audit = audit_open(s.cfg.audit_log, err, sizeof(err));
		if(!s.audit) {
			fprintf(stderr, "plantgate-est: error: audit_log %s: %s\n", s.cfg.audit_log, err);
			goto out;
		}
		audit_event_t ev = {.event = AUDIT_EV_START, .reason = "plantgate-est " PG_VERSION};
		audit_write(s.audit, &ev, util_wall_ms());
	}
	lws_set_log_level(LLL_ERR, est_lws_log);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = s.cfg.listen_port;
	info.iface = s.cfg.listen_host;
	info.protocols = est_protocols;
	info.user = &s;
	info.uid = (uid_t)-1;
	info.gid = (gid_t)-1;
	info.vhost_name = "plantgate-est";
	info.server_string = "plantgate-est";
	info.timeout_secs = 10;
	info.keepalive_timeout = 10;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	               LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT |
	               LWS_SERVER_OPTION_PEER_CERT_NOT_REQUIRED | LWS_SERVER_OPTION_DISABLE_IPV6;
	if(strchr(s.cfg.listen_host, ':')) {
		info.options &= ~(uint64_t)LWS_SERVER_OPTION_DISABLE_IPV6;
	}
	info.ssl_cert_filepath = s.cfg.tls_cert;
	info.ssl_private_key_filepath = s.cfg.tls_key;
	info.ssl_ca_filepath = s.cfg.ca_cert;
	info.alpn = "http/1.1";
	s.ctx = lws_create_context(&info);
	if(!s.ctx) {
		fprintf(stderr,
		        "plantgate-est: error: cannot listen on %s:%d with TLS (address in use, not an "
		        "address of this host, or tls_cert/tls_key unusable)\n",
		        s.cfg.listen_host, s.cfg.listen_port);
		goto out;
	}
	signal(SIGTERM, est_on_signal);
	signal(SIGINT, est_on_signal);
	signal(SIGPIPE, SIG_IGN);
	est_crl_refresh(&s, false);
	lws_sul_schedule(s.ctx, 0, &s.sul, est_on_tick, 200 * LWS_US_PER_MS);
	est_log("listening on https://%s:%d/.well-known/est/ issuer=%s tokens=%s old_cert=%s",
	        s.cfg.listen_host, s.cfg.listen_port, s.cfg.issuer_cert, s.cfg.tokens,
	        s.cfg.old_cert == EST_OLD_REVOKE ? "revoke" : "expire");
	while(!est_stop) {
		if(lws_service(s.ctx, 0) < 0) {
			break;
		}
	}
	lws_sul_cancel(&s.sul);
	est_log("stopping");
	rc = 0;
out:
	if(s.ctx) {
		lws_context_destroy(s.ctx);
	}
	if(s.audit) {
		audit_event_t ev = {.event = AUDIT_EV_STOP};
		audit_write(s.audit, &ev, util_wall_ms());
		audit_close(s.audit);
	}
	est_limits_free(s.limits);
	X509_free(s.issuer);
	X509_free(s.root);
	EVP_PKEY_free(s.issuer_key);
	return rc;
}
