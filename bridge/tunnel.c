/*
 * tunnel.c — the cloud link's relay for MQTT over WebSockets and through an
 * HTTP CONNECT proxy (see tunnel.h for the shape and why).
 *
 * Opening (tunnel_connect, on the cloud thread, every step bounded by
 * TUNNEL_OPEN_MS and the bridge's stop flag):
 *   1. TCP to the proxy (or, for wss without a proxy, to the cloud);
 *      https:// proxy: TLS with the proxy (secrets.proxy_tls)
 *   2. proxy: CONNECT cloud_host:cloud_port, Basic credentials if configured
 *   3. TLS with the cloud (secrets.cloud_tls, SNI = cloud_host); wss: then
 *      the WebSocket upgrade (GET cloud_ws_path, subprotocol mqtt)
 *   4. a listener on 127.0.0.1:0; libmosquitto connects to it as its broker
 *      (plain MQTT); the relay accepts that one socket
 *   5. the relay thread moves bytes until either side ends
 *
 * Upstream I/O goes through one OpenSSL BIO chain whatever the case — a
 * socket BIO, an SSL BIO for the proxy's TLS, an SSL BIO for the cloud's TLS
 * on top — so TLS inside TLS (wss through an https:// proxy) needs no code
 * of its own.
 */
#define _GNU_SOURCE /* accept4 */
#include "tunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blog.h"
#include "tunproto.h"
#include "util.h"
#include "wsframe.h"

#define TUNNEL_OPEN_MS 10000   /* the whole opening, proxy to upgrade */
#define TUNNEL_DRAIN_MS 1000   /* at close: what libmosquitto wrote still goes out */
#define TUNNEL_CHUNK (64 * 1024)
#define TUNNEL_CTL_MAX 512     /* pong/close frames waiting to be sent */

struct tunnel_ctx {
	bridge_t *b;
	bool wss;
	bool proxy;            /* cloud_proxy applies to cloud_host (no_proxy checked) */
	tunproto_url_t url;    /* the proxy */
	char last_logged[512]; /* the last proxy failure logged (logged again on change) */
};

struct tunnel {
	tunnel_ctx_t *tc;
	int ufd;      /* upstream socket (proxy or cloud) */
	int dfd;      /* the accepted loopback socket from libmosquitto */
	SSL *pssl;    /* TLS with an https:// proxy */
	SSL *cssl;    /* TLS with the cloud */
	BIO *up;      /* top of the upstream chain: all upstream I/O */
	int wake[2];  /* tunnel_close pokes the relay */
	pthread_t th;
	bool started;
	atomic_bool closing;

	/* relay state (relay thread only once started) */
	wsframe_dec_t dec;
	unsigned char *rbuf;    /* reads (either side) */
	unsigned char *upbuf;   /* to send upstream: whole frames (wss) or raw bytes */
	size_t up_off, up_len;
	unsigned char *downbuf; /* to send to libmosquitto */
	size_t down_off, down_len;
	unsigned char ctl[TUNNEL_CTL_MAX]; /* wss control frames to send next */
	size_t ctl_len;
	bool up_read_wants_write, up_write_wants_read;
	bool down_eof, up_eof, close_sent;
	size_t first_in; /* bytes in rbuf that came with the 101 answer */
};

const char *tunnel_proxy_fail_name(int f)
{
	switch((enum bridge_proxy_fail)f) {
	case BRIDGE_PROXY_UNREACHABLE: return "unreachable";
	case BRIDGE_PROXY_REFUSED: return "refused";
	case BRIDGE_PROXY_AUTH: return "auth";
	case BRIDGE_PROXY_BAD_REPLY: return "bad_reply";
	case BRIDGE_PROXY_TLS: return "tls";
	case BRIDGE_PROXY_CLOSED: return "closed";
	case BRIDGE_PROXY_FAIL_KINDS: break;
	}
	return "?";
}

static void tunnel_ossl_error(char *out, size_t outlen)
{
	unsigned long e = ERR_get_error();
	out[0] = '\0';
	if(e) {
		ERR_error_string_n(e, out, outlen);
	}
	ERR_clear_error();
}

/* Count and log a proxy failure (its own event; again only when it changes)
 * and make it the connect's reason. */
static void tunnel_proxy_failed(tunnel_ctx_t *tc, enum bridge_proxy_fail kind, const char *hint,
                                char *reason, size_t reasonlen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void tunnel_proxy_failed(tunnel_ctx_t *tc, enum bridge_proxy_fail kind, const char *hint,
                                char *reason, size_t reasonlen, const char *fmt, ...)
{
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	atomic_fetch_add(&tc->b->ctr.proxy_failures[kind], 1);
	util_snprintf(reason, reasonlen, "proxy %s:%u: %s", tc->url.host, (unsigned)tc->url.port, what);
	if(strcmp(reason, tc->last_logged) != 0) {
		static const char *const events[BRIDGE_PROXY_FAIL_KINDS] = {
		    "cloud.proxy_unreachable", "cloud.proxy_refused", "cloud.proxy_auth_failed",
		    "cloud.proxy_bad_reply",   "cloud.proxy_tls_failed", "cloud.proxy_closed"};
		blog(BLOG_WARN, events[kind],
		     "proxy=%s:%u target=%s:%lld reason=\"%s\" hint=\"%s\" note=\"messages stay queued; "
		     "retrying with backoff\"",
		     tc->url.host, (unsigned)tc->url.port, tc->b->cfg->cloud_host,
		     (long long)tc->b->cfg->cloud_port, what, hint);
		util_strlcpy(tc->last_logged, reason, sizeof(tc->last_logged));
	}
}

int tunnel_ctx_new(bridge_t *b, tunnel_ctx_t **out)
{
	const bconf_t *cfg = b->cfg;
	*out = NULL;
	const char *why;
	tunproto_url_t url = {0};
	bool proxy = cfg->cloud_proxy && tunproto_url_parse(cfg->cloud_proxy, &url, &why) == 0;
	const char *no_proxy = cfg->cloud_no_proxy, *np_source = "cloud_no_proxy";
	if(!no_proxy) {
		/* The configuration wins; without it, the usual environment variable. */
		np_source = "NO_PROXY";
		no_proxy = getenv("NO_PROXY");
		if(!no_proxy) {
			np_source = "no_proxy";
			no_proxy = getenv("no_proxy");
		}
	}
	bool direct = proxy && no_proxy && tunproto_no_proxy_match(no_proxy, cfg->cloud_host);
	if(direct) {
		blog(BLOG_INFO, "cloud.proxy_bypassed",
		     "host=%s source=%s note=\"cloud_host is in the no_proxy list: connecting directly\"",
		     cfg->cloud_host, np_source);
		proxy = false;
	}
	bool wss = cfg->cloud_transport == BCONF_TRANSPORT_WSS;
	if(!wss && !proxy) {
		return 0;
	}
	tunnel_ctx_t *tc = calloc(1, sizeof(*tc));
	if(!tc) {
		return -1;
	}
	tc->b = b;
	tc->wss = wss;
	tc->proxy = proxy;
	tc->url = url;
	char via[300] = "none";
	if(proxy) {
		util_snprintf(via, sizeof(via), "%s://%s:%u", url.tls ? "https" : "http", url.host,
		              (unsigned)url.port);
	}
	blog(BLOG_INFO, "cloud.transport", "transport=%s path=%s proxy=%s auth=%s note=\"%s\"",
	     wss ? "wss" : "tls", wss ? cfg->cloud_ws_path : "-", via,
	     proxy && b->secrets.proxy_auth ? "basic" : "none",
	     "the relay does TLS with the cloud with the same certificate, CA and host name check "
	     "as a direct connection");
	*out = tc;
	return 0;
}

void tunnel_ctx_free(tunnel_ctx_t *tc)
{
	free(tc);
}

bool tunnel_lib_tls(const tunnel_ctx_t *tc)
{
	return !tc;
}

/* ---- opening, on the cloud thread ----------------------------------- */

/* Wait for fd to be readable or writable, until the deadline or a stop. */
static int tunnel_wait(tunnel_t *t, bool want_write, int64_t deadline)
{
	for(;;) {
		int64_t left = deadline - util_mono_ms();
		if(left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if(atomic_load(&t->tc->b->stop)) {
			errno = ECANCELED;
			return -1;
		}
		struct pollfd p = {.fd = t->ufd, .events = want_write ? POLLOUT : POLLIN};
		int n = poll(&p, 1, left > 100 ? 100 : (int)left);
		if(n > 0) {
			return 0;
		}
		if(n < 0 && errno != EINTR) {
			return -1;
		}
	}
}

/* TCP to host:port, non-blocking, within the deadline. */
static int tunnel_tcp(tunnel_t *t, const char *host, unsigned port, int64_t deadline, char *why,
                      size_t whylen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	char ps[8];
	snprintf(ps, sizeof(ps), "%u", port);
	int gai = getaddrinfo(host, ps, &hints, &res);
	if(gai) {
		util_snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(gai));
		return -1;
	}
	int err = 0;
	for(struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if(fd < 0) {
			err = errno;
			continue;
		}
		if(connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
			err = errno;
			close(fd);
			continue;
		}
		t->ufd = fd;
		socklen_t sl = sizeof(err);
		if(tunnel_wait(t, true, deadline) != 0) {
			err = errno;
		} else if(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0) {
			err = errno;
		}
		if(!err) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			freeaddrinfo(res);
			return 0;
		}
		close(fd);
		t->ufd = -1;
	}
	freeaddrinfo(res);
	util_snprintf(why, whylen, "cannot connect to %s:%u: %s", host, port,
	              strerror(err ? err : ECONNREFUSED));
	return -1;
}

/* A TLS handshake on ssl (already wired to its BIO), within the deadline. */
static int tunnel_handshake(tunnel_t *t, SSL *ssl, int64_t deadline, char *why, size_t whylen)
{
	for(;;) {
		ERR_clear_error();
		int r = SSL_connect(ssl);
		if(r == 1) {
			return 0;
		}
		int e = SSL_get_error(ssl, r);
		if(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if(tunnel_wait(t, e == SSL_ERROR_WANT_WRITE, deadline) == 0) {
				continue;
			}
			util_snprintf(why, whylen, "TLS handshake: %s", strerror(errno));
			return -1;
		}
		char ossl[256];
		tunnel_ossl_error(ossl, sizeof(ossl));
		long vr = SSL_get_verify_result(ssl);
		if(vr != X509_V_OK) {
			util_snprintf(why, whylen, "%s (%s)", ossl[0] ? ossl : "TLS handshake failed",
			              X509_verify_cert_error_string(vr));
		} else {
			util_snprintf(why, whylen, "%s",
			              ossl[0] ? ossl
			                      : "TLS handshake failed: the peer closed the connection");
		}
		return -1;
	}
}

/* Write all of p[0..n) through the chain, within the deadline. */
static int tunnel_write_all(tunnel_t *t, const void *p, size_t n, int64_t deadline)
{
	size_t off = 0;
	while(off < n) {
		int w = BIO_write(t->up, (const char *)p + off, (int)(n - off));
		if(w > 0) {
			off += (size_t)w;
			continue;
		}
		if(!BIO_should_retry(t->up) || tunnel_wait(t, !BIO_should_read(t->up), deadline)) {
			return -1;
		}
	}
	return 0;
}

/* Read an HTTP response head through the chain.  Bytes after it (wss: the
 * first frames) go to extra[0..*extra_len).  0, or -1 with why. */
static int tunnel_read_head(tunnel_t *t, tunproto_head_t *h, int64_t deadline, char *buf,
                            size_t *extra_len, char *why, size_t whylen)
{
	size_t len = 0;
	const char *perr = NULL;
	for(;;) {
		int r = BIO_read(t->up, buf + len, (int)(TUNPROTO_HEAD_MAX - len));
		if(r > 0) {
			len += (size_t)r;
			enum tunproto_head_rc rc = tunproto_head_parse(buf, len, h, &perr);
			if(rc == TUNPROTO_HEAD_OK) {
				*extra_len = len - h->len;
				memmove(buf, buf + h->len, *extra_len);
				return 0;
			}
			if(rc == TUNPROTO_HEAD_BAD) {
				util_snprintf(why, whylen, "%s", perr);
				return -1;
			}
			continue;
		}
		if(BIO_should_retry(t->up)) {
			if(tunnel_wait(t, BIO_should_write(t->up), deadline) == 0) {
				continue;
			}
			util_snprintf(why, whylen, "no answer: %s", strerror(errno));
			return -1;
		}
		char ossl[256];
		tunnel_ossl_error(ossl, sizeof(ossl));
		util_snprintf(why, whylen, "closed the connection without an answer%s%s",
		              ossl[0] ? ": " : "", ossl);
		return -1;
	}
}

/* Make the SSL (which owns what is below it) the top of the chain. */
static int tunnel_push_ssl(tunnel_t *t, SSL *ssl)
{
	BIO *sb = BIO_new(BIO_f_ssl());
	if(!sb) {
		return -1;
	}
	BIO_set_ssl(sb, ssl, BIO_NOCLOSE);
	t->up = sb;
	return 0;
}

static SSL *tunnel_ssl_new(SSL_CTX *ctx, const char *sni)
{
	SSL *ssl = SSL_new(ctx);
	if(!ssl) {
		return NULL;
	}
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	unsigned char ip[16];
	if(inet_pton(AF_INET, sni, ip) != 1 && inet_pton(AF_INET6, sni, ip) != 1) {
		SSL_set_tlsext_host_name(ssl, sni); /* no SNI for an address (RFC 6066) */
	}
	return ssl;
}

/* 1-2: the proxy and its CONNECT tunnel. */
static int tunnel_via_proxy(tunnel_t *t, int64_t deadline, char *reason, size_t reasonlen)
{
	tunnel_ctx_t *tc = t->tc;
	const bconf_t *cfg = tc->b->cfg;
	char why[400];
	if(tunnel_tcp(t, tc->url.host, tc->url.port, deadline, why, sizeof(why))) {
		tunnel_proxy_failed(tc, BRIDGE_PROXY_UNREACHABLE,
		                    "check cloud_proxy and that this host may reach the proxy", reason,
		                    reasonlen, "%s", why);
		return -1;
	}
	t->up = BIO_new_socket(t->ufd, BIO_NOCLOSE);
	if(!t->up) {
		util_snprintf(reason, reasonlen, "out of memory");
		return -1;
	}
	if(tc->url.tls) {
		t->pssl = tunnel_ssl_new(tc->b->secrets.proxy_tls, tc->url.host);
		if(t->pssl) {
			SSL_set_bio(t->pssl, t->up, t->up); /* the SSL owns the socket BIO now */
			t->up = NULL;
		}
		if(!t->pssl || tunnel_handshake(t, t->pssl, deadline, why, sizeof(why)) ||
		   tunnel_push_ssl(t, t->pssl)) {
			tunnel_proxy_failed(tc, BRIDGE_PROXY_TLS,
			                    "the proxy's certificate must be issued by cloud_proxy_cafile (or "
			                    "the system store) for the name in cloud_proxy",
			                    reason, reasonlen, "TLS with the proxy failed: %s",
			                    t->pssl ? why : "out of memory");
			return -1;
		}
	}
	char req[2048];
	int n = tunproto_connect_request(req, sizeof(req), cfg->cloud_host, (uint16_t)cfg->cloud_port,
	                                 tc->b->secrets.proxy_auth);
	tunproto_head_t h;
	char head[TUNPROTO_HEAD_MAX];
	size_t extra = 0;
	int wrc = n < 0 ? -1 : tunnel_write_all(t, req, (size_t)n, deadline);
	explicit_bzero(req, sizeof(req));
	if(wrc) {
		tunnel_proxy_failed(tc, BRIDGE_PROXY_BAD_REPLY, "check that cloud_proxy is an HTTP proxy",
		                    reason, reasonlen, "cannot send CONNECT: %s", strerror(errno));
		return -1;
	}
	if(tunnel_read_head(t, &h, deadline, head, &extra, why, sizeof(why))) {
		tunnel_proxy_failed(tc, BRIDGE_PROXY_BAD_REPLY,
		                    "check that cloud_proxy is an HTTP proxy that allows CONNECT", reason,
		                    reasonlen, "CONNECT %s:%lld: %s", cfg->cloud_host,
		                    (long long)cfg->cloud_port, why);
		return -1;
	}
	/* 407 is the proxy's "who are you"; some proxies (tinyproxy) answer
	 * wrong credentials with 401. */
	if(h.status == 407 || h.status == 401) {
		tunnel_proxy_failed(
		    tc, BRIDGE_PROXY_AUTH,
		    tc->b->secrets.proxy_auth
		        ? "the user:password in cloud_proxy_auth_file is refused by the proxy"
		        : "the proxy wants credentials: put user:password in a file (mode 0600) named "
		          "by cloud_proxy_auth_file",
		    reason, reasonlen, "%d %s (%s credentials sent; the proxy asks for %s)", h.status,
		    h.reason,
		    tc->b->secrets.proxy_auth ? "Basic" : "no",
		    h.proxy_auth[0] ? h.proxy_auth : "(no Proxy-Authenticate)");
		return -1;
	}
	if(h.status < 200 || h.status > 299) {
		/* 5xx: the proxy tried and could not reach the cloud (it is down, or
		 * the proxy's own DNS or route to it fails); else its policy. */
		tunnel_proxy_failed(tc, BRIDGE_PROXY_REFUSED,
		                    h.status >= 500
		                        ? "the proxy could not reach cloud_host:cloud_port: the cloud is "
		                          "down, or the proxy's DNS or route to it fails"
		                        : "the proxy does not allow a tunnel to cloud_host:cloud_port: ask "
		                          "the network administrator to allow CONNECT to it",
		                    reason, reasonlen, "CONNECT %s:%lld refused: %d %s", cfg->cloud_host,
		                    (long long)cfg->cloud_port, h.status, h.reason);
		return -1;
	}
	if(extra) {
		tunnel_proxy_failed(tc, BRIDGE_PROXY_BAD_REPLY, "check that cloud_proxy is an HTTP proxy",
		                    reason, reasonlen,
		                    "%zu bytes came after the CONNECT answer, before the cloud could speak",
		                    extra);
		return -1;
	}
	return 0;
}

/* 3: TLS with the cloud, with the context libmosquitto uses for a direct
 * connection (secrets.c: CA, certificate, host name check, version, ALPN). */
static int tunnel_cloud_tls(tunnel_t *t, int64_t deadline, char *reason, size_t reasonlen)
{
	bridge_t *b = t->tc->b;
	char why[400];
	t->cssl = tunnel_ssl_new(b->secrets.cloud_tls, b->cfg->cloud_host);
	if(!t->cssl) {
		util_snprintf(reason, reasonlen, "out of memory");
		return -1;
	}
	SSL_set_bio(t->cssl, t->up, t->up);
	t->up = NULL;
	if(tunnel_handshake(t, t->cssl, deadline, why, sizeof(why))) {
		util_snprintf(reason, reasonlen, "TLS with the cloud: %s", why);
		return -1;
	}
	if(tunnel_push_ssl(t, t->cssl)) {
		util_snprintf(reason, reasonlen, "out of memory");
		return -1;
	}
	return 0;
}

/* 3b: the WebSocket upgrade.  Bytes after the 101 answer are the first
 * frames: they go to extra. */
static int tunnel_websocket(tunnel_t *t, int64_t deadline, char *extra, size_t *extra_len,
                            char *reason, size_t reasonlen)
{
	bridge_t *b = t->tc->b;
	const bconf_t *cfg = b->cfg;
	char why[400];
	unsigned char rnd[16];
	for(size_t i = 0; i < sizeof(rnd); i += 4) {
		uint32_t r = util_random32();
		memcpy(rnd + i, &r, 4);
	}
	char key[WSFRAME_KEY_LEN + 1];
	wsframe_key(rnd, key);
	bool v6 = strchr(cfg->cloud_host, ':') != NULL;
	char req[1024];
	int n = util_snprintf(req, sizeof(req),
	                      "GET %s HTTP/1.1\r\nHost: %s%s%s:%lld\r\nUpgrade: websocket\r\n"
	                      "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n"
	                      "User-Agent: plantgate-bridge\r\n\r\n",
	                      cfg->cloud_ws_path, v6 ? "[" : "", cfg->cloud_host, v6 ? "]" : "",
	                      (long long)cfg->cloud_port, key);
	tunproto_head_t h;
	if(n < 0 || tunnel_write_all(t, req, (size_t)n, deadline)) {
		util_snprintf(reason, reasonlen, "WebSocket upgrade: cannot send the request");
		return -1;
	}
	const char *fail = NULL;
	if(tunnel_read_head(t, &h, deadline, extra, extra_len, why, sizeof(why))) {
		fail = why;
	} else if(h.status != 101) {
		util_snprintf(why, sizeof(why), "%d %s (check cloud_ws_path)", h.status, h.reason);
		fail = why;
	} else if(strcasecmp(h.upgrade, "websocket") != 0 || !h.conn_upgrade) {
		fail = "the 101 answer lacks Upgrade: websocket / Connection: upgrade";
	} else if(!wsframe_accept_ok(key, h.ws_accept)) {
		fail = "Sec-WebSocket-Accept does not answer our key (a proxy or server in the way "
		       "rewrote the upgrade)";
	} else if(strcmp(h.ws_protocol, "mqtt") != 0) {
		fail = "the server did not agree to the subprotocol mqtt";
	}
	if(fail) {
		atomic_fetch_add(&b->ctr.ws_failures, 1);
		util_snprintf(reason, reasonlen, "WebSocket upgrade at %s refused: %s", cfg->cloud_ws_path,
		              fail);
		return -1;
	}
	wsframe_dec_init(&t->dec);
	return 0;
}

/* 4: a listener only libmosquitto's socket of this connection may use. */
static int tunnel_listen(int *lfd, int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	*lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if(*lfd < 0 || bind(*lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(*lfd, 4) != 0 ||
	   getsockname(*lfd, (struct sockaddr *)&a, &al) != 0) {
		return -1;
	}
	*port = ntohs(a.sin_port);
	return 0;
}

/* Accept libmosquitto's connection: the peer must be the local end of
 * mosq_fd (same address and port); others are closed and logged. */
static int tunnel_accept(tunnel_t *t, int lfd, int mosq_fd, int64_t deadline)
{
	struct sockaddr_in mine, peer;
	socklen_t ml = sizeof(mine);
	if(getsockname(mosq_fd, (struct sockaddr *)&mine, &ml) != 0 || mine.sin_family != AF_INET) {
		return -1;
	}
	while(util_mono_ms() < deadline) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		if(poll(&p, 1, 100) <= 0) {
			continue;
		}
		socklen_t pl = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if(fd < 0) {
			continue;
		}
		if(peer.sin_family == AF_INET && peer.sin_port == mine.sin_port &&
		   peer.sin_addr.s_addr == mine.sin_addr.s_addr) {
			t->dfd = fd;
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			return 0;
		}
		char ip[INET_ADDRSTRLEN] = "?";
		inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
		blog(BLOG_WARN, "cloud.relay_intruder",
		     "peer=%s:%u action=\"closed\" note=\"another local process connected to the "
		     "bridge's loopback relay; only the bridge's own connection is relayed\"",
		     ip, (unsigned)ntohs(peer.sin_port));
		close(fd);
	}
	return -1;
}

static void *tunnel_run(void *arg);

static void tunnel_free(tunnel_t *t)
{
	if(!t) {
		return;
	}
	BIO_free_all(t->up); /* the chain; SSLs are BIO_NOCLOSE */
	SSL_free(t->cssl);   /* frees the chain below it too */
	SSL_free(t->pssl);
	if(t->ufd >= 0) {
		close(t->ufd);
	}
	if(t->dfd >= 0) {
		close(t->dfd);
	}
	for(int i = 0; i < 2; i++) {
		if(t->wake[i] >= 0) {
			close(t->wake[i]);
		}
	}
	free(t->rbuf);
	free(t->upbuf);
	free(t->downbuf);
	free(t);
}

int tunnel_connect(tunnel_ctx_t *tc, struct mosquitto *mosq, int keepalive, tunnel_t **out,
                   char *reason, size_t reasonlen)
{
	bridge_t *b = tc->b;
	const bconf_t *cfg = b->cfg;
	int64_t deadline = util_mono_ms() + TUNNEL_OPEN_MS;
	int lfd = -1, port = 0, rc = MOSQ_ERR_CONN_REFUSED;
	char extra[TUNPROTO_HEAD_MAX];
	size_t extra_len = 0;
	*out = NULL;
	tunnel_t *t = calloc(1, sizeof(*t));
	if(!t) {
		util_snprintf(reason, reasonlen, "out of memory");
		return MOSQ_ERR_NOMEM;
	}
	t->tc = tc;
	t->ufd = t->dfd = t->wake[0] = t->wake[1] = -1;
	t->rbuf = malloc(TUNNEL_CHUNK);
	t->upbuf = malloc(TUNNEL_CHUNK + WSFRAME_HEADER_MAX);
	t->downbuf = malloc(TUNNEL_CHUNK);
	if(!t->rbuf || !t->upbuf || !t->downbuf || pipe2(t->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
		util_snprintf(reason, reasonlen, "out of memory");
		rc = MOSQ_ERR_NOMEM;
		goto fail;
	}
	if(tc->proxy) {
		if(tunnel_via_proxy(t, deadline, reason, reasonlen)) {
			goto fail;
		}
	} else { /* wss without a proxy */
		char why[400];
		if(tunnel_tcp(t, cfg->cloud_host, (unsigned)cfg->cloud_port, deadline, why, sizeof(why))) {
			util_snprintf(reason, reasonlen, "%s", why);
			goto fail;
		}
		t->up = BIO_new_socket(t->ufd, BIO_NOCLOSE);
		if(!t->up) {
			util_snprintf(reason, reasonlen, "out of memory");
			goto fail;
		}
	}
	if(tunnel_cloud_tls(t, deadline, reason, reasonlen) ||
	   (tc->wss && tunnel_websocket(t, deadline, extra, &extra_len, reason, reasonlen))) {
		goto fail;
	}
	if(tunnel_listen(&lfd, &port)) {
		util_snprintf(reason, reasonlen, "loopback relay: %s", strerror(errno));
		goto fail;
	}
	errno = 0;
	/* No TLS in libmosquitto here: nothing of its lazy OpenSSL set-up to race. */
	rc = mosquitto_connect_bind_v5(mosq, "127.0.0.1", port, keepalive, NULL, NULL);
	if(rc) {
		util_snprintf(reason, reasonlen, "loopback relay: %s",
		              rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		goto fail;
	}
	if(tunnel_accept(t, lfd, mosquitto_socket(mosq), deadline)) {
		util_snprintf(reason, reasonlen, "loopback relay: libmosquitto's connection did not arrive");
		rc = MOSQ_ERR_CONN_REFUSED;
		goto fail;
	}
	close(lfd);
	lfd = -1;
	/* Frames that came with the 101 answer are the first upstream input. */
	if(extra_len) {
		memcpy(t->rbuf, extra, extra_len);
	}
	t->first_in = extra_len;
	if(pthread_create(&t->th, NULL, tunnel_run, t) != 0) {
		util_snprintf(reason, reasonlen, "cannot start the relay thread");
		rc = MOSQ_ERR_NOMEM;
		goto fail;
	}
	t->started = true;
	tc->last_logged[0] = '\0';
	*out = t;
	return MOSQ_ERR_SUCCESS;
fail:
	if(lfd >= 0) {
		close(lfd);
	}
	tunnel_free(t);
	return rc ? rc : MOSQ_ERR_CONN_REFUSED;
}

void tunnel_close(tunnel_t *t)
{
	if(!t) {
		return;
	}
	if(t->started) {
		atomic_store(&t->closing, true);
		if(write(t->wake[1], "x", 1) < 0) {
			/* the relay polls this pipe; a full pipe already wakes it */
		}
		pthread_join(t->th, NULL);
	}
	tunnel_free(t);
}

/* ---- the relay thread ----------------------------------------------- */

/* Why the relay ended; the connection is lost and libmosquitto will see it. */
static void tunnel_end(tunnel_t *t, bool proxy_side, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tunnel_end(tunnel_t *t, bool proxy_side, const char *fmt, ...)
{
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	tunnel_ctx_t *tc = t->tc;
	if(proxy_side && tc->proxy) {
		atomic_fetch_add(&tc->b->ctr.proxy_failures[BRIDGE_PROXY_CLOSED], 1);
		blog(BLOG_WARN, "cloud.proxy_closed",
		     "proxy=%s:%u reason=\"%s\" note=\"the tunnel through the proxy ended: the proxy cut "
		     "it or the cloud behind it closed the connection; unacknowledged messages are sent "
		     "again after reconnecting\"",
		     tc->url.host, (unsigned)tc->url.port, why);
	} else {
		blog(BLOG_WARN, "cloud.relay_closed", "transport=%s reason=\"%s\"",
		     tc->wss ? "wss" : "tls", why);
	}
}

/* Queue a control frame (pong or close) to go upstream after the data. */
static void tunnel_ctl(tunnel_t *t, enum wsframe_op op, const unsigned char *p, size_t n)
{
	if(t->ctl_len + WSFRAME_HEADER_MAX + n > sizeof(t->ctl)) {
		return; /* pongs may be skipped: only the latest ping needs one */
	}
	uint32_t mask = util_random32();
	size_t h = wsframe_header(t->ctl + t->ctl_len, op, n, mask);
	if(n) {
		memcpy(t->ctl + t->ctl_len + h, p, n);
	}
	wsframe_mask(t->ctl + t->ctl_len + h, n, mask, 0);
	t->ctl_len += h + n;
}

/* Upstream input in rbuf[0..n): to libmosquitto (unframed for wss). */
static int tunnel_from_up(tunnel_t *t, size_t n)
{
	if(!t->tc->wss) {
		memcpy(t->downbuf, t->rbuf, n);
		t->down_off = 0;
		t->down_len = n;
		return 0;
	}
	size_t off = 0;
	t->down_off = 0;
	t->down_len = 0;
	for(;;) {
		wsframe_event_t ev;
		size_t used = 0;
		wsframe_decode(&t->dec, t->rbuf + off, n - off, &used, &ev);
		off += used;
		switch(ev.ev) {
		case WSFRAME_EV_MORE:
			return 0;
		case WSFRAME_EV_DATA:
			memcpy(t->downbuf + t->down_len, ev.data, ev.len);
			t->down_len += ev.len;
			break;
		case WSFRAME_EV_PING:
			tunnel_ctl(t, WSFRAME_PONG, ev.data, ev.len);
			break;
		case WSFRAME_EV_PONG:
			break;
		case WSFRAME_EV_CLOSE: {
			char why[130];
			tunproto_log_text((const char *)ev.data, ev.len, why, sizeof(why));
			unsigned char code[2] = {(unsigned char)(ev.code >> 8), (unsigned char)ev.code};
			tunnel_ctl(t, WSFRAME_CLOSE, code, ev.code ? 2 : 0);
			t->close_sent = true;
			t->up_eof = true;
			tunnel_end(t, false, "the cloud closed the WebSocket: code %u %s", ev.code, why);
			return 0;
		}
		case WSFRAME_EV_ERROR:
			atomic_fetch_add(&t->tc->b->ctr.ws_failures, 1);
			tunnel_ctl(t, WSFRAME_CLOSE, (const unsigned char *)"\x03\xea", 2); /* 1002 */
			t->close_sent = true;
			tunnel_end(t, false, "WebSocket protocol error from the cloud: %s", ev.why);
			return -1;
		}
	}
}

/* libmosquitto's bytes in rbuf[0..n): to upstream (one binary frame for wss). */
static void tunnel_to_up(tunnel_t *t, size_t n)
{
	t->up_off = 0;
	if(!t->tc->wss) {
		memcpy(t->upbuf, t->rbuf, n);
		t->up_len = n;
		return;
	}
	uint32_t mask = util_random32();
	size_t h = wsframe_header(t->upbuf, WSFRAME_BINARY, n, mask);
	memcpy(t->upbuf + h, t->rbuf, n);
	wsframe_mask(t->upbuf + h, n, mask, 0);
	t->up_len = h + n;
}

/* Write what is pending upstream.  -1: the upstream failed. */
static int tunnel_flush_up(tunnel_t *t)
{
	for(;;) {
		if(t->up_off == t->up_len && t->ctl_len) {
			memcpy(t->upbuf, t->ctl, t->ctl_len);
			t->up_off = 0;
			t->up_len = t->ctl_len;
			t->ctl_len = 0;
		}
		if(t->up_off == t->up_len) {
			t->up_off = t->up_len = 0;
			return 0;
		}
		t->up_write_wants_read = false;
		int w = BIO_write(t->up, t->upbuf + t->up_off, (int)(t->up_len - t->up_off));
		if(w > 0) {
			t->up_off += (size_t)w;
			continue;
		}
		if(BIO_should_retry(t->up)) {
			t->up_write_wants_read = BIO_should_read(t->up);
			return 0;
		}
		char ossl[256];
		tunnel_ossl_error(ossl, sizeof(ossl));
		if(t->down_eof || atomic_load(&t->closing)) {
			return -1; /* closing anyway */
		}
		tunnel_end(t, true, "writing upstream: %s", ossl[0] ? ossl : strerror(errno ? errno : EPIPE));
		return -1;
	}
}

/* Write what is pending to libmosquitto.  -1: it is gone. */
static int tunnel_flush_down(tunnel_t *t)
{
	while(t->down_off < t->down_len) {
		ssize_t w = write(t->dfd, t->downbuf + t->down_off, t->down_len - t->down_off);
		if(w > 0) {
			t->down_off += (size_t)w;
			continue;
		}
		if(w < 0 && (errno == EAGAIN || errno == EINTR)) {
			return 0;
		}
		return -1; /* libmosquitto closed: the connection is being dropped */
	}
	t->down_off = t->down_len = 0;
	return 0;
}

static bool tunnel_up_pending(tunnel_t *t)
{
	return SSL_has_pending(t->cssl) || (t->pssl && SSL_has_pending(t->pssl));
}

/* One pass of moving data; returns -1 when the relay must end. */
static int tunnel_pump(tunnel_t *t, bool *moved)
{
	/* libmosquitto -> upstream, when the previous chunk has left */
	if(!t->down_eof && t->up_len == 0 && t->ctl_len == 0) {
		ssize_t n = read(t->dfd, t->rbuf, TUNNEL_CHUNK);
		if(n > 0) {
			*moved = true;
			tunnel_to_up(t, (size_t)n);
		} else if(n == 0 || (errno != EAGAIN && errno != EINTR)) {
			/* libmosquitto closed (the cloud thread drops or stops): say
			 * goodbye upstream once what it wrote is out. */
			t->down_eof = true;
			*moved = true;
			if(t->tc->wss && !t->close_sent) {
				tunnel_ctl(t, WSFRAME_CLOSE, (const unsigned char *)"\x03\xe8", 2); /* 1000 */
				t->close_sent = true;
			}
		}
	}
	size_t before = t->up_off;
	if(tunnel_flush_up(t)) {
		return -1;
	}
	*moved |= t->up_off != before;
	/* upstream -> libmosquitto, when the previous chunk has left */
	if(!t->up_eof && t->down_len == 0) {
		t->up_read_wants_write = false;
		int n = BIO_read(t->up, t->rbuf, TUNNEL_CHUNK);
		if(n > 0) {
			*moved = true;
			if(tunnel_from_up(t, (size_t)n)) {
				return -1;
			}
		} else if(BIO_should_retry(t->up)) {
			t->up_read_wants_write = BIO_should_write(t->up);
		} else if(t->down_eof || atomic_load(&t->closing)) {
			return -1; /* we are closing: the end upstream is expected */
		} else {
			char ossl[256];
			tunnel_ossl_error(ossl, sizeof(ossl));
			tunnel_end(t, true, "%s",
			           ossl[0] ? ossl : n == 0 ? "the connection was closed" : strerror(errno));
			return -1;
		}
	}
	before = t->down_off;
	if(t->down_len && tunnel_flush_down(t)) {
		t->down_eof = true;
	}
	*moved |= t->down_off != before;
	return 0;
}

static void *tunnel_run(void *arg)
{
	tunnel_t *t = arg;
	util_thread_name("pg-tunnel");
	int64_t drain_until = 0;
	/* Frames that came with the 101 answer (tunnel_connect left them in rbuf). */
	if(t->first_in && tunnel_from_up(t, t->first_in)) {
		goto out;
	}
	for(;;) {
		bool moved = false;
		if(tunnel_pump(t, &moved)) {
			break;
		}
		bool closing = atomic_load(&t->closing) || t->down_eof || t->up_eof;
		if(closing) {
			if(!drain_until) {
				drain_until = util_mono_ms() + TUNNEL_DRAIN_MS;
			}
			bool flushed = t->up_len == 0 && t->ctl_len == 0;
			if((flushed && (t->down_eof || t->up_eof)) || util_mono_ms() >= drain_until) {
				break;
			}
		}
		if(moved) {
			continue;
		}
		struct pollfd p[3] = {{.fd = t->dfd}, {.fd = t->ufd}, {.fd = t->wake[0], .events = POLLIN}};
		if(!t->down_eof && t->up_len == 0 && t->ctl_len == 0) {
			p[0].events |= POLLIN;
		}
		if(t->down_len) {
			p[0].events |= POLLOUT;
		}
		if((!t->up_eof && t->down_len == 0 && !t->up_read_wants_write) || t->up_write_wants_read) {
			p[1].events |= POLLIN;
		}
		if(t->up_len || t->ctl_len || t->up_read_wants_write) {
			p[1].events |= POLLOUT;
		}
		for(int i = 0; i < 2; i++) {
			if(!p[i].events) {
				p[i].fd = -1; /* nothing to wait for: a hang-up would spin */
			}
		}
		int timeout = closing ? 50 : 1000;
		if(t->down_len == 0 && tunnel_up_pending(t)) {
			timeout = 0;
		}
		if(poll(p, 3, timeout) < 0 && errno != EINTR) {
			tunnel_end(t, false, "poll: %s", strerror(errno));
			break;
		}
		if(p[2].revents & POLLIN) {
			char buf[16];
			if(read(t->wake[0], buf, sizeof(buf)) < 0) {
				/* nothing to drain */
			}
		}
	}
out:
	SSL_shutdown(t->cssl); /* close_notify: best effort, non-blocking */
	/* libmosquitto sees the end of its connection now, not at its keepalive. */
	shutdown(t->dfd, SHUT_RDWR);
	ERR_clear_error();
	OPENSSL_thread_stop();
	return NULL;
}
