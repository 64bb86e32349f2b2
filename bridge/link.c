/*
 * link.c — one MQTT connection of the bridge (see link.h): the libmosquitto
 * lifecycle shared by the plant and cloud links, their backoff and failure
 * reasons, and the TLS buffering that makes group commit pay.
 */
#define _GNU_SOURCE /* ppoll */
#include "link.h"

#include <errno.h>
#include <limits.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blog.h"
#include "gate.h"
#include "mqttwire.h"
#include "util.h"

void *link_owner(void *obj)
{
	return ((link_t *)obj)->conf.owner;
}

/* "<name>.<what>" into ev, for blog(). */
static const char *link_event(const link_t *l, const char *what, char *ev, size_t len)
{
	util_snprintf(ev, len, "%s.%s", l->conf.name, what);
	return ev;
}

/* --- the write buffer below TLS ------------------------------------------ */

/* Our write buffer is marked (app data) so that it is never mistaken for the
 * buffering BIO OpenSSL itself pushes while it writes a handshake. */
static char link_wbuf_mark;

/* The write buffer below this connection's TLS, or NULL when it has none. */
static BIO *link_wbuf(struct mosquitto *mosq)
{
	SSL *ssl = mosquitto_ssl_get(mosq);
	BIO *w = ssl ? SSL_get_wbio(ssl) : NULL;
	return w && BIO_get_app_data(w) == &link_wbuf_mark ? w : NULL;
}

/* Put the write buffer on top of the socket once the handshake is done
 * (OpenSSL has dropped its own handshake buffer by then): a gate (gate.h)
 * on a link that holds acknowledgements back, else OpenSSL's buffer. */
static void link_wbuf_install(link_t *l)
{
	SSL *ssl = mosquitto_ssl_get(l->mosq);
	if(!ssl || !SSL_is_init_finished(ssl) || link_wbuf(l->mosq)) {
		return;
	}
	BIO *w = SSL_get_wbio(ssl);
	BIO *buf = l->conf.gated ? gate_new(LINK_TLS_WBUF, LINK_GATE_MAX) : BIO_new(BIO_f_buffer());
	if(!w || !buf || (!l->conf.gated && BIO_set_write_buffer_size(buf, LINK_TLS_WBUF) != 1) ||
	   !BIO_up_ref(w)) {
		BIO_free(buf);
		return; /* unbuffered still works (a gated link then commits in line) */
	}
	BIO_set_app_data(buf, &link_wbuf_mark);
	BIO_push(buf, w);
	SSL_set0_wbio(ssl, buf); /* drops SSL's reference to w; the chain holds ours */
}

/* Bytes in our buffer that may leave (a gate's held bytes do not count). */
static bool link_wbuf_pending(struct mosquitto *mosq)
{
	BIO *w = link_wbuf(mosq);
	return w && BIO_wpending(w) > 0;
}

/* May libmosquitto's queue be written now?  Not while the link holds it
 * back (link_hold, link_t.defer). */
static bool link_lib_may_write(const link_t *l)
{
	return !l->holding && !l->defer && mosquitto_want_write(l->mosq);
}

/* May raw mode's send buffer be handed to TLS now?  Not while the link
 * holds it back (link_hold, link_t.defer): it holds PUBACKs of messages not
 * committed yet. */
static bool link_raw_may_push(const link_t *l)
{
	return !l->holding && !l->defer && l->tx_len > l->tx_off;
}

/* Anything to write: what libmosquitto queued and may go, or bytes still in
 * our buffer (the socket was full). */
static bool link_want_write(const link_t *l)
{
	return link_lib_may_write(l) || link_wbuf_pending(l->mosq) || link_raw_may_push(l);
}

/* Send what our buffer lets out; an error only when the socket refused for
 * good (the connection is lost). */
static int link_wbuf_flush(struct mosquitto *mosq)
{
	BIO *w = link_wbuf(mosq);
	if(w && BIO_wpending(w) > 0 && BIO_flush(w) <= 0 && !BIO_should_retry(w)) {
		return MOSQ_ERR_CONN_LOST;
	}
	return MOSQ_ERR_SUCCESS;
}

/* Let libmosquitto write what it has queued (unless held back), then flush
 * our buffer. */
static int link_flush(link_t *l)
{
	link_wbuf_install(l);
	int rc = MOSQ_ERR_SUCCESS;
	if(link_lib_may_write(l)) {
		rc = mosquitto_loop_write(l->mosq, 1);
	}
	/* Asked again: writing a DISCONNECT makes libmosquitto free the SSL. */
	int frc = link_wbuf_flush(l->mosq);
	return rc ? rc : frc;
}

static int link_raw_push(link_t *l);

bool link_hold(link_t *l)
{
	if(!l->mosq || l->holding) {
		return false;
	}
	link_wbuf_install(l);
	BIO *w = link_wbuf(l->mosq);
	if(!gate_is(w)) {
		return false;
	}
	gate_hold(w);
	/* Raw mode: the send buffer holds this batch's PUBACKs (and nothing of a
	 * later one: the batch was read up to here), handed to TLS in one go. */
	if(l->raw ? link_raw_push(l) != MOSQ_ERR_SUCCESS
	          : mosquitto_want_write(l->mosq) &&
	                mosquitto_loop_write(l->mosq, 1) != MOSQ_ERR_SUCCESS) {
		l->lost = true; /* link_settle drops it; nothing held ever leaves */
	}
	l->holding = true;
	return true;
}

int link_release(link_t *l)
{
	if(!l->holding) {
		return MOSQ_ERR_SUCCESS;
	}
	l->holding = false;
	if(!l->mosq) {
		return MOSQ_ERR_NO_CONN;
	}
	gate_release(link_wbuf(l->mosq));
	return link_wbuf_flush(l->mosq);
}

bool link_backlogged(const link_t *l)
{
	BIO *w = l->mosq ? link_wbuf(l->mosq) : NULL;
	if(!gate_is(w)) {
		return false;
	}
	long open = BIO_wpending(w); /* may leave: open - sent */
	return (open > 0 ? (size_t)open : 0) + gate_held(w) >= LINK_GATE_BACKLOG;
}

/* Flush and remove the buffer, then send DISCONNECT. */
static int link_disconnect(struct mosquitto *mosq)
{
	/* Write what is buffered, then take the buffer away: libmosquitto frees
	 * the SSL right after it has written the DISCONNECT, so a DISCONNECT
	 * left in our buffer would never leave. */
	BIO *w = link_wbuf(mosq);
	if(w) {
		for(int i = 0; i < 50 && BIO_wpending(w) > 0 && BIO_flush(w) <= 0 && BIO_should_retry(w);
		    i++) {
			struct pollfd pfd = {.fd = mosquitto_socket(mosq), .events = POLLOUT};
			poll(&pfd, 1, 10);
		}
		SSL_set0_wbio(mosquitto_ssl_get(mosq), BIO_pop(w)); /* frees the buffer, keeps the socket */
	}
	int rc = mosquitto_disconnect_v5(mosq, 0, NULL);
	if(!rc && mosquitto_want_write(mosq)) {
		rc = mosquitto_loop_write(mosq, 1);
	}
	return rc;
}

/* True when TLS has read data off the socket that nobody has taken yet.  Both
 * links read ahead (SSL_CTX_set_read_ahead: one read() for many records, not
 * two per record), so such data is invisible to poll(). */
static bool link_tls_buffered(struct mosquitto *mosq)
{
	SSL *ssl = mosquitto_ssl_get(mosq);
	return ssl && SSL_has_pending(ssl);
}

/* --- callbacks ------------------------------------------------------------ */

static void link_on_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
	link_t *l = obj;
	char ev[32], q[512];
	if(level == MOSQ_LOG_ERR) {
		util_strlcpy(l->lib_error, str, sizeof(l->lib_error));
	}
	if(blog_get_level() <= BLOG_DEBUG) {
		blog(BLOG_DEBUG, link_event(l, "lib", ev, sizeof(ev)), "msg=%s",
		     util_log_quote(str, q, sizeof(q)));
	}
}

static void link_on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                            const mosquitto_property *props)
{
	link_t *l = obj;
	if(rc) {
		snprintf(l->cb_reason, sizeof(l->cb_reason), "%s refused the connection: %s",
		         l->conf.peer,
		         l->conf.protocol == 5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc));
		l->lost = true;
		return;
	}
	l->state = LINK_UP;
	atomic_store(l->conf.state_ctr, LINK_UP);
	atomic_fetch_add(l->conf.connects, 1);
	if(l->conf.watch && !atomic_load(&l->conf.watch->cert_requested) &&
	   !l->warned_no_client_cert) {
		/* Mutual TLS is what identifies the bridge; a peer that does not ask
		 * for the certificate would take any client. */
		char ev[40];
		blog(BLOG_WARN, link_event(l, "no_client_certificate", ev, sizeof(ev)),
		     "host=%s port=%d note=\"the %s did not ask for the bridge's certificate "
		     "(%s_certfile): it authenticates clients some other way, or not at all\" "
		     "hint=\"require client certificates there (mosquitto: require_certificate "
		     "true)\"",
		     l->conf.host, l->conf.port, l->conf.peer, l->conf.name);
		l->warned_no_client_cert = true;
	}
	if(l->conf.up) {
		l->conf.up(l->conf.owner, flags, props);
	}
	l->failures_since_up = 0;
	l->logged_reason[0] = '\0';
	if(!l->quiet) {
		backoff_reset(&l->bo);
	}
}

static void link_on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                               const mosquitto_property *props)
{
	link_t *l = obj;
	l->lost = true;
	if(rc >= 128 && rc < 256) {
		l->peer_reason = (uint8_t)rc; /* an MQTT 5 DISCONNECT's reason code */
	}
	if(rc && !l->cb_reason[0]) {
		snprintf(l->cb_reason, sizeof(l->cb_reason), "%s",
		         rc == MOSQ_ERR_KEEPALIVE ? "keepalive timeout"
		                                  : rc < 128 ? mosquitto_strerror(rc)
		                                             : mosquitto_reason_string(rc));
	}
}

void link_lib_log_off(link_t *l)
{
	if(l->mosq && blog_get_level() > BLOG_DEBUG) {
		mosquitto_log_callback_set(l->mosq, NULL);
	}
}

/* libmosquitto writes a byte into an internal socket pair for every packet
 * it queues, to wake a mosquitto_loop() sleeping in select(); the bridge
 * never calls mosquitto_loop() (it polls the socket itself and writes at
 * link_write), nobody reads the pair, and once its buffer is full each of
 * those writes is a failed system call: one per PUBACK on the plant link,
 * one per PUBLISH on the cloud link (issue 14 measured them as 94 % of the
 * bridge's write calls).  libmosquitto has no option to turn it off, so the
 * writing end is closed here, on a fresh client, where libmosquitto 1.5 to
 * 2.0 keep it: right after the socket in struct mosquitto
 * (lib/mosquitto_internal.h: sock, sockpairR, sockpairW), and with
 * sockpairW set to INVALID_SOCKET libmosquitto skips the write.  Only when
 * that layout is proven on this very client: the socket slot holds what
 * mosquitto_socket() returns (-1 before connecting), and a byte written to
 * the supposed writing end arrives at the supposed reading end.  Otherwise
 * nothing is touched and the writes simply go on. */
static void link_drop_wakeup_pair(struct mosquitto *mosq)
{
	int *f = (int *)(void *)mosq;
	if(f[0] != mosquitto_socket(mosq) || f[0] != -1 || f[1] < 0 || f[2] < 0 || f[1] == f[2]) {
		return;
	}
	char out = 'p', in = 0;
	if(write(f[2], &out, 1) != 1 || read(f[1], &in, 1) != 1 || in != out) {
		return;
	}
	close(f[2]);
	f[2] = -1;
}

/* --- connect, fail, drop --------------------------------------------------- */

/* Out of raw mode, nothing buffered: what was not handed to TLS is thrown
 * away (the tx buffers stay allocated for the next connection). */
static void link_raw_reset(link_t *l)
{
	l->raw = false;
	l->rx_len = 0;
	l->tx_off = l->tx_len = 0;
	l->tx_pushed = l->tx_queued;
	l->ping_at = 0;
}

void link_init(link_t *l, bridge_t *b, const link_conf_t *conf)
{
	memset(l, 0, sizeof(*l));
	l->conf = *conf;
	l->b = b;
	l->state = LINK_DOWN;
	backoff_init(&l->bo, b->cfg->reconnect_min_ms, b->cfg->reconnect_max_ms);
	l->down_since = util_mono_ms();
}

void link_drop(link_t *l, const char *reason)
{
	char detail[256] = "", ev[32];
	if(l->mosq) {
		mosquitto_destroy(l->mosq); /* and with it what a gate held */
		l->mosq = NULL;
	}
	l->holding = false;
	link_raw_reset(l);
	if(l->conf.down) {
		l->conf.down(l->conf.owner, detail, sizeof(detail));
	}
	if(l->state == LINK_UP) {
		l->down_since = util_mono_ms();
		blog(l->quiet ? BLOG_DEBUG : BLOG_WARN, link_event(l, "disconnected", ev, sizeof(ev)),
		     "reason=\"%s\"%s%s", reason && reason[0] ? reason : "connection lost",
		     detail[0] ? " " : "", detail);
	}
	l->cb_reason[0] = '\0';
	l->peer_reason = 0;
	l->state = LINK_DOWN;
	atomic_store(l->conf.state_ctr, LINK_DOWN);
	l->lost = false;
	l->next_attempt = util_mono_ms() + backoff_next(&l->bo, util_random32());
}

/* True when a failed connect's reason says the TLS layer refused it. */
static bool link_reason_is_tls(const char *reason)
{
	return strstr(reason, "OpenSSL") || strstr(reason, "SSL routines") ||
	       strstr(reason, "TLS") || strstr(reason, "certificate");
}

/* What an operator should check for a TLS failure reason; x509 is the
 * verification error of the peer's certificate (0 when none was refused). */
static void link_tls_hint(const link_t *l, const char *reason, int x509, char *out, size_t len)
{
	const char *n = l->conf.name, *peer = l->conf.peer;
	out[0] = '\0';
	if(x509 == X509_V_ERR_CERT_HAS_EXPIRED || x509 == X509_V_ERR_CERT_NOT_YET_VALID) {
		util_snprintf(out, len,
		              " hint=\"the %s's certificate is outside its validity period: renew it "
		              "there, or check this host's clock\"",
		              peer);
	} else if(x509 == X509_V_ERR_HOSTNAME_MISMATCH || x509 == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		util_snprintf(out, len,
		              " hint=\"the %s's certificate is not for %s_host '%s': use the name the "
		              "certificate carries, or a certificate for this name\"",
		              peer, n, l->conf.host);
	} else if(x509 == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	          x509 == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
	          x509 == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
	          x509 == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN) {
		util_snprintf(out, len,
		              " hint=\"the %s's certificate was not issued by a CA in %s_cafile: the "
		              "wrong CA file, or not the %s\"",
		              peer, n, peer);
	} else if(strstr(reason, "certificate verify failed")) {
		util_snprintf(out, len,
		              " hint=\"the %s's certificate was refused: not issued by %s_cafile, "
		              "expired, or not for the name in %s_host\"",
		              peer, n, n);
	} else if(strstr(reason, "protocol version")) {
		util_snprintf(out, len,
		              " hint=\"the %s does not offer the TLS version required by "
		              "%s_tls_version\"",
		              peer, n);
	} else if(strstr(reason, "alert") || strstr(reason, "certificate")) {
		util_snprintf(out, len,
		              " hint=\"the %s refused the bridge's certificate (%s_certfile) or the TLS "
		              "settings\"",
		              peer, n);
	}
}

static void link_connect_failed(link_t *l, const char *why)
{
	char ev[32], hint[256], x509[512], reason[1024];
	int xerr = l->conf.watch ? secrets_watch_reason(l->conf.watch, x509, sizeof(x509)) : 0;
	/* OpenSSL says "certificate verify failed"; the verify callback knows why. */
	util_snprintf(reason, sizeof(reason), "%s%s%s", why, xerr ? ": " : "", xerr ? x509 : "");
	atomic_fetch_add(l->conf.failures, 1);
	if(link_reason_is_tls(reason)) {
		atomic_fetch_add(l->conf.tls_failures, 1);
	}
	l->failures_since_up++;
	/* Log a failure once per distinct reason, not once per attempt. */
	if(strcmp(reason, l->logged_reason) != 0) {
		link_tls_hint(l, reason, xerr, hint, sizeof(hint));
		blog(BLOG_WARN, link_event(l, "connect_failed", ev, sizeof(ev)),
		     "host=%s port=%d reason=\"%s\"%s attempts=%u note=\"%sretrying with backoff; "
		     "logged again only if the reason changes\"",
		     l->conf.host, l->conf.port, reason, hint, l->failures_since_up, l->conf.failed_note);
		util_strlcpy(l->logged_reason, reason, sizeof(l->logged_reason));
	}
	l->state = LINK_DOWN; /* no "disconnected" line for a failed attempt */
	link_drop(l, NULL);
}

/* mosquitto_connect_bind_v5, but the first TLS connects of the two threads
 * are serialised: libmosquitto 2.0.11 creates a process-wide OpenSSL
 * UI_METHOD lazily, without a lock, on the first TLS connect, and two
 * threads racing there leak one (found by ASan).  Once one connect has
 * succeeded the object exists and connects run in parallel. */
static int link_connect_serialised(link_t *l, const mosquitto_property *props)
{
	bridge_t *b = l->b;
	if(atomic_load(&b->tls_ready)) {
		return mosquitto_connect_bind_v5(l->mosq, l->conf.host, l->conf.port, l->conf.keepalive_s,
		                                 NULL, props);
	}
	pthread_mutex_lock(&b->connect_mu);
	int rc = mosquitto_connect_bind_v5(l->mosq, l->conf.host, l->conf.port, l->conf.keepalive_s,
	                                   NULL, props);
	if(rc == MOSQ_ERR_SUCCESS) {
		atomic_store(&b->tls_ready, true);
	}
	pthread_mutex_unlock(&b->connect_mu);
	return rc;
}

static void link_connect(link_t *l)
{
	char reason[512];
	int rc;
	l->lib_error[0] = '\0';
	l->lost = false;
	if(l->conf.watch) {
		secrets_watch_reset(l->conf.watch);
	}
	/* A fresh client per attempt: libmosquitto keeps its own in-memory copies
	 * of unacknowledged messages, which the queue, not it, must own. */
	l->mosq = mosquitto_new(l->conf.client_id, !l->conf.persistent, l);
	if(!l->mosq) {
		link_connect_failed(l, "out of memory");
		return;
	}
	mosquitto_int_option(l->mosq, MOSQ_OPT_PROTOCOL_VERSION,
	                     l->conf.protocol == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
	/* Threaded mode: libmosquitto writes nothing until told (link_write),
	 * where unthreaded it writes whatever it queues at once.  Both links
	 * switch to raw mode at the CONNACK (link_raw_start), so no PUBLISH ever
	 * reaches libmosquitto: unthreaded it would write a QoS 1 PUBACK before
	 * on_message ran (upstream issue #2884), ahead of the commit. */
	mosquitto_threaded_set(l->mosq, true);
	/* Both links write a loop turn's packets in one go (the buffer below
	 * TLS, raw mode), so Nagle's algorithm could only hold a turn's last
	 * segment back until the peer acknowledged the one before, which a
	 * delayed ACK makes up to 40 ms: the plant's PUBACKs, the cloud's
	 * publishes. */
	mosquitto_int_option(l->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	link_drop_wakeup_pair(l->mosq);
	mosquitto_connect_v5_callback_set(l->mosq, link_on_connect);
	mosquitto_disconnect_v5_callback_set(l->mosq, link_on_disconnect);
	mosquitto_log_callback_set(l->mosq, link_on_log);
	/* CA, certificate, key, minimum TLS version, ALPN and the host name check
	 * were loaded once at start (secrets.c), before any privilege drop. */
	rc = MOSQ_ERR_SUCCESS;
	if(l->conf.tls) {
		rc = mosquitto_void_option(l->mosq, MOSQ_OPT_SSL_CTX, l->conf.tls);
	}
	if(!rc && l->conf.tls) {
		rc = mosquitto_int_option(l->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
	}
	if(rc) {
		snprintf(reason, sizeof(reason), "TLS setup: %s (check %s_cafile, %s_certfile, %s_keyfile)",
		         mosquitto_strerror(rc), l->conf.name, l->conf.name, l->conf.name);
		link_connect_failed(l, reason);
		return;
	}
	rc = l->conf.setup ? l->conf.setup(l->conf.owner, l->mosq) : MOSQ_ERR_SUCCESS;
	if(rc) {
		snprintf(reason, sizeof(reason), "client setup: %s", mosquitto_strerror(rc));
		link_connect_failed(l, reason);
		return;
	}
	/* A persistent session that outlives the bridge: the broker queues for
	 * us while we are down, and redelivers what we did not acknowledge. */
	mosquitto_property *props = NULL;
	if(l->conf.persistent && l->conf.protocol == 5) {
		mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, UINT32_MAX);
	}
	/* Raw mode reads packets of at most rx_max bytes: say so. */
	if(l->conf.packet && l->conf.rx_max && l->conf.protocol == 5) {
		mosquitto_property_add_int32(&props, MQTT_PROP_MAXIMUM_PACKET_SIZE,
		                             (uint32_t)l->conf.rx_max);
	}
	l->state = LINK_CONNECTING;
	atomic_store(l->conf.state_ctr, LINK_CONNECTING);
	errno = 0;
	reason[0] = '\0';
	if(l->conf.connect) {
		rc = l->conf.connect(l->conf.owner, l->mosq, reason, sizeof(reason));
	} else {
		rc = link_connect_serialised(l, props);
	}
	mosquitto_property_free_all(&props);
	if(rc && reason[0]) {
		link_connect_failed(l, reason);
	} else if(rc) {
		util_snprintf(reason, sizeof(reason), "%s%s%s",
		              rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc),
		              l->lib_error[0] ? ": " : "", l->lib_error);
		link_connect_failed(l, reason);
	}
}

/* --- raw mode (link.h) ------------------------------------------------------ */

int link_raw_start(link_t *l)
{
	if(!l->rx) {
		l->rx = malloc(LINK_RAW_RX);
		if(!l->rx) {
			return MOSQ_ERR_NOMEM;
		}
		l->rx_cap = LINK_RAW_RX;
	}
	SSL *ssl = mosquitto_ssl_get(l->mosq);
	if(ssl) {
		/* Partial writes let a full socket take part of the buffer; the
		 * buffer may move (it is compacted) between a retry and the next. */
		SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	}
	link_raw_reset(l);
	l->raw = true;
	l->last_in = l->last_out = util_mono_ms();
	return MOSQ_ERR_SUCCESS;
}

uint8_t *link_raw_reserve(link_t *l, size_t n)
{
	if(l->tx_off && l->tx_off == l->tx_len) {
		l->tx_off = l->tx_len = 0;
	}
	if(l->tx_cap - l->tx_len >= n) {
		return l->tx + l->tx_len;
	}
	if(l->tx_off) { /* move what is left to the front */
		memmove(l->tx, l->tx + l->tx_off, l->tx_len - l->tx_off);
		l->tx_len -= l->tx_off;
		l->tx_off = 0;
		if(l->tx_cap - l->tx_len >= n) {
			return l->tx + l->tx_len;
		}
	}
	size_t cap = l->tx_cap ? l->tx_cap : 16 * 1024;
	while(cap - l->tx_len < n) {
		if(cap > SIZE_MAX / 2) {
			return NULL;
		}
		cap *= 2;
	}
	uint8_t *t = realloc(l->tx, cap);
	if(!t) {
		return NULL;
	}
	l->tx = t;
	l->tx_cap = cap;
	return l->tx + l->tx_len;
}

void link_raw_commit(link_t *l, size_t n)
{
	l->tx_len += n;
	l->tx_queued += n;
}

/* The reason OpenSSL gives for a failed read or write, into cb_reason. */
static int link_raw_tls_error(link_t *l, SSL *ssl, int ret, const char *what)
{
	int err = SSL_get_error(ssl, ret);
	if(err == SSL_ERROR_ZERO_RETURN) {
		return MOSQ_ERR_CONN_LOST;
	}
	if(err == SSL_ERROR_SYSCALL) {
		ERR_clear_error();
		return errno ? MOSQ_ERR_ERRNO : MOSQ_ERR_CONN_LOST;
	}
	char e[256] = "";
	unsigned long code = ERR_get_error();
	if(code) {
		ERR_error_string_n(code, e, sizeof(e));
	}
	ERR_clear_error();
	if(!l->cb_reason[0]) {
		util_snprintf(l->cb_reason, sizeof(l->cb_reason), "TLS %s failed: %s", what,
		              e[0] ? e : "unknown OpenSSL error");
	}
	return MOSQ_ERR_TLS;
}

/* Hand the send buffer to TLS (or the socket) as far as it takes it, then
 * let our write buffer below TLS out. */
static int link_raw_push(link_t *l)
{
	SSL *ssl = mosquitto_ssl_get(l->mosq);
	int fd = mosquitto_socket(l->mosq);
	while(l->tx_off < l->tx_len) {
		size_t left = l->tx_len - l->tx_off;
		int chunk = left > INT_MAX ? INT_MAX : (int)left;
		ssize_t n;
		errno = 0;
		if(ssl) {
			ERR_clear_error();
			int r = SSL_write(ssl, l->tx + l->tx_off, chunk);
			if(r <= 0) {
				int err = SSL_get_error(ssl, r);
				if(err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
					break; /* the socket is full: again when it is writable */
				}
				return link_raw_tls_error(l, ssl, r, "write");
			}
			n = r;
		} else {
			n = write(fd, l->tx + l->tx_off, (size_t)chunk);
			if(n < 0) {
				if(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
					break;
				}
				return MOSQ_ERR_ERRNO;
			}
		}
		l->tx_off += (size_t)n;
		l->tx_pushed += (uint64_t)n;
		l->last_out = util_mono_ms();
	}
	if(l->tx_off == l->tx_len) {
		l->tx_off = l->tx_len = 0;
	}
	return link_wbuf_flush(l->mosq);
}

int link_raw_put(link_t *l, const uint8_t *p, size_t n)
{
	uint8_t *o = link_raw_reserve(l, n);
	if(!o) {
		util_snprintf(l->cb_reason, sizeof(l->cb_reason), "out of memory");
		return MOSQ_ERR_NOMEM;
	}
	memcpy(o, p, n);
	link_raw_commit(l, n);
	return MOSQ_ERR_SUCCESS;
}

/* libmosquitto's keepalive (lib/util_mosq.c), which no longer runs: a
 * PINGREQ once keepalive_s passed without a packet out or in; no packet in
 * for keepalive_s after it (the PINGRESP included) and the connection is
 * taken as dead. */
static int link_raw_keepalive(link_t *l)
{
	int64_t ka = (int64_t)l->conf.keepalive_s * 1000, now = util_mono_ms();
	if(ka <= 0 || (now - l->last_out < ka && now - l->last_in < ka)) {
		return MOSQ_ERR_SUCCESS;
	}
	if(l->ping_at) {
		util_snprintf(l->cb_reason, sizeof(l->cb_reason),
		              "keepalive timeout: no answer from the %s within %d s of a PINGREQ",
		              l->conf.peer, l->conf.keepalive_s);
		return MOSQ_ERR_KEEPALIVE;
	}
	static const uint8_t pingreq[2] = {MQW_PINGREQ << 4, 0};
	int rc = link_raw_put(l, pingreq, sizeof(pingreq));
	l->ping_at = now;
	l->last_in = now;
	l->last_out = now; /* as libmosquitto: the next check is a keepalive away */
	/* Behind PUBACKs held back, it leaves with them (link_write). */
	return rc || !link_raw_may_push(l) ? rc : link_raw_push(l);
}

/* One packet that arrived: PINGRESP and DISCONNECT are the link's, the rest
 * the protocol's. */
static int link_raw_dispatch(link_t *l, uint8_t header, const uint8_t *body, uint32_t len)
{
	unsigned type = header >> 4;
	if(type == MQW_PINGRESP && mqw_pingresp_parse(header, len) == MQW_OK) {
		l->ping_at = 0;
		return MOSQ_ERR_SUCCESS;
	}
	if(type == MQW_DISCONNECT) {
		uint8_t reason = 0;
		char why[200];
		if(mqw_disconnect_parse(l->conf.protocol, header, body, len, &reason, why, sizeof(why)) ==
		   MQW_OK) {
			l->lost = true;
			l->peer_reason = reason;
			if(reason && !l->cb_reason[0]) {
				char q[300];
				util_snprintf(l->cb_reason, sizeof(l->cb_reason), "%s%s%s",
				              mosquitto_reason_string(reason), why[0] ? ": " : "",
				              why[0] ? util_log_safe(why, q, sizeof(q)) : "");
			}
			return MOSQ_ERR_SUCCESS;
		}
	} else if(type != MQW_PINGRESP && l->conf.packet) {
		return l->conf.packet(l->conf.owner, header, body, len);
	}
	util_snprintf(l->cb_reason, sizeof(l->cb_reason),
	              "protocol error: the %s sent a malformed or unexpected %s packet", l->conf.peer,
	              mqw_type_name(type));
	return MOSQ_ERR_PROTOCOL;
}

/* Is a whole packet (or a broken one) waiting in rx? */
static bool link_raw_frame_ready(const link_t *l)
{
	uint8_t h;
	const uint8_t *body;
	uint32_t blen;
	size_t total;
	return l->raw && l->rx_len &&
	       mqw_frame(l->rx, l->rx_len, l->conf.rx_max, &h, &body, &blen, &total) != MQW_MORE;
}

/* Read what has arrived and pass on every whole packet, up to max_packets
 * and (bytes non-NULL) until *bytes reaches max_bytes. */
static int link_raw_read(link_t *l, int max_packets, const size_t *bytes, size_t max_bytes)
{
	SSL *ssl = mosquitto_ssl_get(l->mosq);
	int fd = mosquitto_socket(l->mosq);
	int done = 0, rc = MOSQ_ERR_SUCCESS;
	for(;;) {
		size_t off = 0;
		bool enough = false;
		while(!(enough = done >= max_packets || (bytes && *bytes >= max_bytes)) && !l->lost &&
		      !rc) {
			uint8_t h;
			const uint8_t *body;
			uint32_t blen;
			size_t total;
			mqw_rc_t m = mqw_frame(l->rx + off, l->rx_len - off, l->conf.rx_max, &h, &body,
			                       &blen, &total);
			if(m == MQW_MORE) {
				break;
			}
			if(m != MQW_OK) {
				util_snprintf(l->cb_reason, sizeof(l->cb_reason),
				              m == MQW_TOO_BIG ? "protocol error: the %s sent a packet larger "
				                                 "than %d bytes"
				                               : "protocol error: the %s sent a malformed packet "
				                                 "length",
				              l->conf.peer, (int)l->conf.rx_max);
				return MOSQ_ERR_PROTOCOL;
			}
			l->last_in = util_mono_ms();
			rc = link_raw_dispatch(l, h, body, blen);
			off += total;
			done++;
		}
		if(off) {
			memmove(l->rx, l->rx + off, l->rx_len - off);
			l->rx_len -= off;
		}
		if(rc || l->lost || enough) {
			return rc;
		}
		if(l->rx_cap > LINK_RAW_RX && l->rx_len <= LINK_RAW_RX) {
			/* A large packet is done with: back to the usual size. */
			uint8_t *r = realloc(l->rx, LINK_RAW_RX);
			if(r) {
				l->rx = r;
				l->rx_cap = LINK_RAW_RX;
			}
		}
		if(l->rx_len == l->rx_cap) {
			/* A packet larger than the buffer (only without rx_max: with
			 * it, mqw_frame said TOO_BIG first); MQTT bounds it. */
			size_t cap = l->rx_cap * 2;
			uint8_t *r = cap <= 2 * (size_t)MQW_MAX_REMAINING ? realloc(l->rx, cap) : NULL;
			if(!r) {
				util_snprintf(l->cb_reason, sizeof(l->cb_reason),
				              "out of memory for a packet of the %s over %zu bytes", l->conf.peer,
				              l->rx_cap);
				return MOSQ_ERR_NOMEM;
			}
			l->rx = r;
			l->rx_cap = cap;
		}
		ssize_t n;
		errno = 0;
		if(ssl) {
			ERR_clear_error();
			size_t room = l->rx_cap - l->rx_len;
			int r = SSL_read(ssl, l->rx + l->rx_len, room > INT_MAX ? INT_MAX : (int)room);
			if(r <= 0) {
				int err = SSL_get_error(ssl, r);
				if(err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
					return MOSQ_ERR_SUCCESS;
				}
				return link_raw_tls_error(l, ssl, r, "read");
			}
			n = r;
		} else {
			n = read(fd, l->rx + l->rx_len, l->rx_cap - l->rx_len);
			if(n == 0) {
				return MOSQ_ERR_CONN_LOST;
			}
			if(n < 0) {
				return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
				           ? MOSQ_ERR_SUCCESS
				           : MOSQ_ERR_ERRNO;
			}
		}
		l->rx_len += (size_t)n;
		if(l->quickack) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		}
	}
}

/* Graceful end in raw mode: what is queued, then DISCONNECT, pushed for at
 * most half a second. */
static void link_raw_disconnect(link_t *l)
{
	static const uint8_t disconnect[2] = {MQW_DISCONNECT << 4, 0};
	if(link_raw_put(l, disconnect, sizeof(disconnect))) {
		return;
	}
	for(int i = 0; i < 50; i++) {
		if(link_raw_push(l) || (l->tx_len == l->tx_off && !link_wbuf_pending(l->mosq))) {
			return;
		}
		struct pollfd pfd = {.fd = mosquitto_socket(l->mosq), .events = POLLOUT};
		poll(&pfd, 1, 10);
	}
}

/* --- one turn of the loop -------------------------------------------------- */

void link_idle(link_t *l, bool may_connect)
{
	int64_t now = util_mono_ms();
	if(now >= l->next_attempt && may_connect) {
		link_connect(l);
		return;
	}
	int64_t wait = l->next_attempt - now;
	usleep((useconds_t)(wait > 100 || wait < 1 ? 100 : wait) * 1000);
}

int link_poll(link_t *l, bool want_read, struct pollfd *extra, int64_t timeout_us, bool *readable)
{
	struct pollfd pfd[2] = {{.fd = mosquitto_socket(l->mosq), .events = want_read ? POLLIN : 0}};
	nfds_t n = 1;
	*readable = false;
	if(extra) {
		extra->revents = 0;
		pfd[n++] = *extra;
	}
	if(pfd[0].fd < 0) {
		return MOSQ_ERR_NO_CONN;
	}
	if(link_want_write(l)) {
		pfd[0].events |= POLLOUT;
	}
	bool buffered = want_read && (link_tls_buffered(l->mosq) || link_raw_frame_ready(l));
	/* ppoll: a commit's pause is a few ms, and poll's whole milliseconds
	 * made 2ms into ~2.7 (docs/benchmarks.md, issue 14). */
	int64_t us = buffered || timeout_us < 0 ? 0 : timeout_us;
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = us % 1000000 * 1000};
	if(ppoll(pfd, n, &ts, NULL) < 0 && errno != EINTR) {
		return MOSQ_ERR_ERRNO;
	}
	if(extra) {
		extra->revents = pfd[1].revents;
	}
	*readable = want_read && (buffered || (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)));
	return MOSQ_ERR_SUCCESS;
}

int link_read(link_t *l, int max_reads, const size_t *bytes, size_t max_bytes)
{
	if(l->raw) {
		return link_raw_read(l, max_reads, bytes, max_bytes);
	}
	int rc = mosquitto_loop_read(l->mosq, 1);
	for(int i = 1; rc == MOSQ_ERR_SUCCESS && i < max_reads && !(bytes && *bytes >= max_bytes); i++) {
		if(l->raw) { /* the CONNACK just started raw mode */
			return l->lost ? MOSQ_ERR_SUCCESS : link_raw_read(l, max_reads - i, bytes, max_bytes);
		}
		if(!link_tls_buffered(l->mosq)) {
			struct pollfd pfd = {.fd = mosquitto_socket(l->mosq), .events = POLLIN};
			if(pfd.fd < 0 || poll(&pfd, 1, 0) <= 0 || !(pfd.revents & POLLIN)) {
				break;
			}
		}
		rc = mosquitto_loop_read(l->mosq, 1);
	}
	return rc;
}

int link_write(link_t *l, int rc)
{
	if(l->raw) {
		if(!rc && !l->lost && (link_raw_may_push(l) || link_wbuf_pending(l->mosq))) {
			rc = link_raw_may_push(l) ? link_raw_push(l) : link_wbuf_flush(l->mosq);
		}
		return rc || l->lost ? rc : link_raw_keepalive(l);
	}
	if(!rc && link_want_write(l)) {
		rc = link_flush(l);
	}
	if(!rc) {
		rc = mosquitto_loop_misc(l->mosq);
	}
	return rc;
}

bool link_settle(link_t *l, int rc)
{
	if(!rc && !l->lost) {
		return false;
	}
	char reason[512];
	util_snprintf(reason, sizeof(reason), "%s%s%s",
	              l->cb_reason[0] ? l->cb_reason
	              : rc == MOSQ_ERR_ERRNO ? strerror(errno)
	                                     : mosquitto_strerror(rc ? rc : MOSQ_ERR_CONN_LOST),
	              l->lib_error[0] ? ": " : "", l->lib_error);
	if(l->state == LINK_UP) {
		link_drop(l, reason);
	} else {
		link_connect_failed(l, reason);
	}
	return true;
}

void link_close(link_t *l)
{
	if(l->mosq) {
		/* Everything read has been committed: let the PUBACKs out, then leave. */
		if(l->state == LINK_UP && l->raw) {
			link_raw_disconnect(l);
		} else if(l->state == LINK_UP) {
			link_flush(l);
			link_disconnect(l->mosq);
		}
		mosquitto_destroy(l->mosq);
		l->mosq = NULL;
	}
	link_raw_reset(l);
	free(l->rx);
	free(l->tx);
	l->rx = l->tx = NULL;
	l->rx_cap = l->tx_cap = 0;
}
