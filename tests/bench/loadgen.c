/*
 * loadgen.c — the MQTT load generator of scripts/bench.
 *
 * One process drives many libmosquitto clients, each with its own X.509
 * certificate, from a few epoll threads (no thread per client): publishers
 * live on one worker, subscribers on another, so the generator costs about as
 * much CPU as the broker it drives and reports its own CPU time to prove it.
 * Every client gets a prebuilt SSL_CTX (MOSQ_OPT_SSL_CTX), so certificates and
 * keys are parsed once at start, not on every connect.
 *
 * Modes (first argument):
 *   run    N publishers -> M subscribers (optionally on another broker, e.g. a
 *          cloud broker behind a bridge), payload size, QoS, a total rate or
 *          flat out (bounded by an end-to-end window of undelivered
 *          messages), a warm-up and a measured duration.  Each payload starts
 *          with a CLOCK_MONOTONIC timestamp and a sequence number: subscribers
 *          on the same host compute end-to-end latency.  A "reference"
 *          subscriber on the publishers' broker gives the latency added by
 *          what lies between the two brokers (the bridge), message by message.
 *          --count N publishes exactly N messages (e.g. to fill a bridge's
 *          queue while the cloud is down) and may run without subscribers.
 *          --go-stdin starts several generators together: once all its
 *          clients are connected and subscribed a generator prints
 *          "READY clients=N" and waits for "GO T" on stdin, T a
 *          CLOCK_MONOTONIC time in seconds; publishing (the warm-up) starts
 *          at T in every generator given the same T.
 *   sub    subscribers only: wait for --expect messages (or --timeout),
 *          printing progress every 0.5 s; used to time a backlog drain.
 *   storm  connect all clients, disconnect them, then reconnect all of them
 *          at once (at most --max-pending TLS handshakes in flight, because
 *          mosquitto listens with a backlog of 100): connects/s, latency.
 *   hold   connect N clients (they may share one certificate and differ in
 *          client id), print READY, hold them for --hold seconds.
 *
 * Output: human-readable lines on stderr, and one machine-readable line
 * "RESULT key=value ..." on stdout (READY/PROGRESS lines too), which
 * scripts/bench parses.  Times are in microseconds unless the key says so.
 * CPU of other processes (broker, bridge) is read from /proc/PID/stat over
 * the measured interval (--pid name:PID, repeatable).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <mosquitto.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Certificate paths and identities come from printf formats given on the
 * command line (e.g. pki/issued/%s.crt, dev-%04d): that is the point. */
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

/* ------------------------------------------------------------- helpers ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("loadgen: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if(errno || !end || *end || v < lo || v > hi) {
		die("%s: '%s' is not an integer in %ld..%ld", opt, s, lo, hi);
	}
	return v;
}

static double parse_double(const char *opt, const char *s, double lo, double hi)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if(errno || !end || *end || !(v >= lo && v <= hi)) {
		die("%s: '%s' is not a number in %g..%g", opt, s, lo, hi);
	}
	return v;
}

/* ----------------------------------------------------------- histogram ---- */
/* Log-linear buckets: exact below 64 ns, then 32 buckets per power of two
 * (about 3 % resolution) up to 2^63 ns. */
#define H_SUB 32
#define H_BUCKETS (64 + 64 * H_SUB)

typedef struct histo {
	uint64_t n;
	uint64_t b[H_BUCKETS];
} histo_t;

static void histo_add(histo_t *h, uint64_t v)
{
	unsigned idx;
	if(v < 64) {
		idx = (unsigned)v;
	} else {
		int msb = 63 - __builtin_clzll(v);
		int shift = msb - 5;
		idx = 64 + (unsigned)(shift - 1) * H_SUB + (unsigned)((v >> shift) - 32);
	}
	if(idx >= H_BUCKETS) {
		idx = H_BUCKETS - 1;
	}
	h->b[idx]++;
	h->n++;
}

static double histo_value(unsigned idx)
{
	if(idx < 64) {
		return idx;
	}
	unsigned shift = (idx - 64) / H_SUB + 1;
	unsigned top = (idx - 64) % H_SUB + 32;
	return ((double)top + 0.5) * (double)(1ull << shift);
}

/* The q-quantile in microseconds; -1 when empty. */
static double histo_quantile_us(const histo_t *h, double q)
{
	if(h->n == 0) {
		return -1;
	}
	uint64_t want = (uint64_t)ceil(q * (double)h->n);
	if(want < 1) {
		want = 1;
	}
	uint64_t cum = 0;
	for(unsigned i = 0; i < H_BUCKETS; i++) {
		cum += h->b[i];
		if(cum >= want) {
			return histo_value(i) / 1000.0;
		}
	}
	return histo_value(H_BUCKETS - 1) / 1000.0;
}

static void histo_merge(histo_t *into, const histo_t *from)
{
	into->n += from->n;
	for(unsigned i = 0; i < H_BUCKETS; i++) {
		into->b[i] += from->b[i];
	}
}

/* ------------------------------------------------------------- options ---- */

enum mode { MODE_RUN, MODE_SUB, MODE_STORM, MODE_HOLD };

struct endpoint {
	const char *host;
	int port;
	const char *cafile;
	const char *certfmt; /* printf format with %s = identity */
	const char *keyfmt;
	const char *idfmt;   /* printf format with %d = index */
	int idbase;
	const char *cidfmt;  /* client id format (%d = index); NULL = identity */
};

static struct opts {
	enum mode mode;
	struct endpoint pub, sub, ref;
	int npub, nsub, nref;
	const char *pubtopic; /* {id} identity, {n} index, {l} index % lines */
	const char *subtopic;
	const char *reftopic;
	int lines;
	int size;
	int qos, subqos;
	double rate; /* total msg/s; 0 = flat out */
	long window; /* flat out: undelivered deliveries allowed */
	double warmup, duration;
	long count;  /* publish exactly this many (0 = time-bound) */
	long expect; /* sub mode */
	double timeout;
	int max_pending;
	double hold;
	int workers;
	int protocol;
	int keepalive;
	bool quiet;
	bool nodelay;
	bool persistent; /* subscribers keep their session (clean session off) */
	bool go_stdin;   /* run: READY, then wait for "GO T" on stdin */
	const char *pidspec[8];
	int npid;
} O = {
	.pub = {"127.0.0.1", 0, NULL, NULL, NULL, "dev-%04d", 0, NULL},
	.lines = 10,
	.size = 64,
	.qos = 0,
	.subqos = -1,
	.window = 0,
	.warmup = 1,
	.duration = 5,
	.timeout = 120,
	.max_pending = 64,
	.hold = 3,
	.workers = 2,
	.protocol = 5,
	.keepalive = 60,
};

static void usage(void)
{
	fputs("usage: loadgen run|sub|storm|hold [options]\n"
	      "  --host H --port P --cafile F --cert FMT --key FMT   publishers' broker and certs\n"
	      "      (FMT: printf with %s = identity, e.g. pki/issued/%s.crt)\n"
	      "  --ids FMT[:BASE]     publisher identities, %d = index (default dev-%04d:0)\n"
	      "  --clientid FMT       client ids (%d = index); default: the identity\n"
	      "  --sub-clientid FMT   the subscribers' client ids (%d = index); default: the identity\n"
	      "  --pubs N --pub-topic T   T may use {id} {n} {l} (= n % --lines)\n"
	      "  --subs M --sub-topic F --sub-ids FMT[:BASE] [--sub-host H --sub-port P\n"
	      "      --sub-cafile F --sub-cert FMT --sub-key FMT]   subscribers (default: same broker)\n"
	      "  --ref-subs 1 --ref-topic F --ref-ids FMT[:BASE]   reference subscriber on the publishers'\n"
	      "      broker: latency added between the brokers, per message\n"
	      "  --size B --qos Q --sub-qos Q --rate R (total msg/s, 0 = flat out) --window W\n"
	      "  --warmup S --duration S --count N --expect N --timeout S\n"
	      "  --max-pending N (storm/hold) --hold S (hold) --workers N --protocol 4|5\n"
	      "  --persistent        subscribers keep their session (MQTT 3.1.1 clean session off;\n"
	      "      use with --protocol 4: an MQTT 5 session would end at disconnect)\n"
	      "  --pid NAME:PID      report CPU of that process over the measured interval\n"
	      "  --go-stdin          run: print READY when connected, start publishing at T of\n"
	      "      a line \"GO T\" on stdin (CLOCK_MONOTONIC seconds), to start generators together\n",
	      stderr);
	exit(2);
}

/* ------------------------------------------------------------- clients ---- */

enum role { R_PUB, R_SUB, R_REF };

struct worker;

typedef struct client {
	struct mosquitto *mosq;
	struct worker *w;
	enum role role;
	int idx;
	char ident[96];
	char cid[128];
	char topic[256];
	int fd;        /* fd registered with epoll, -1 = none */
	uint32_t ev;   /* events registered */
	bool connected, subscribed, dead, stopping;
	bool pending;  /* connect started, CONNACK not yet seen */
	int unacked;   /* QoS 1 publishes without PUBACK */
	uint64_t t_connect;
} client_t;

typedef struct worker {
	int id;
	int epfd;
	pthread_t th;
	client_t **cl;
	int ncl;
	/* publishing */
	int rr;
	uint64_t sent, sent_measured, pub_errors;
	/* receiving */
	uint64_t recv, recv_measured, bytes_measured;
	uint64_t ref_recv, unmatched;
	histo_t lat, added, conn;
	uint64_t disconnects, connect_fail;
	uint64_t first_rx, last_rx;
	/* storm / hold */
	int to_start;     /* clients of this worker still to connect */
	int next_start;
	int npending;
	int nconnected;
} worker_t;

static worker_t *W;
static client_t *C;
static int NC;

static atomic_bool g_stop;
static atomic_bool g_publishing;
static atomic_uint_fast64_t g_recv;  /* main-subscriber deliveries, all time */
static atomic_uint_fast64_t g_sent;  /* publishes, all time */
static atomic_uint_fast64_t g_acked; /* PUBACKs, all time */
static atomic_int g_connected, g_subscribed;
static atomic_uint_fast64_t g_t_start, g_t_end; /* measured interval (ns) */

/* Reference-subscriber arrival times, by sequence number. */
#define REF_RING (1u << 21)
static struct ref_slot {
	_Atomic uint64_t seq;
	_Atomic uint64_t t;
} *REF;

/* ---------------------------------------------------------------- TLS ----- */

struct ctx_entry {
	char key[512];
	SSL_CTX *ctx;
};
static struct ctx_entry *CTXS;
static int NCTX, CAPCTX;

/* A client SSL_CTX for one certificate: verifies the broker (CA file, IP or
 * name), presents the certificate.  Cached by (cafile, cert). */
static SSL_CTX *tls_ctx(const struct endpoint *e, const char *ident)
{
	char cert[400], key[400], ck[512];
	snprintf(cert, sizeof cert, e->certfmt, ident);
	snprintf(key, sizeof key, e->keyfmt, ident);
	snprintf(ck, sizeof ck, "%s|%s", e->cafile, cert);
	for(int i = 0; i < NCTX; i++) {
		if(!strcmp(CTXS[i].key, ck)) {
			return CTXS[i].ctx;
		}
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if(!ctx) {
		die("SSL_CTX_new failed");
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if(SSL_CTX_load_verify_locations(ctx, e->cafile, NULL) != 1) {
		die("cannot load CA file %s", e->cafile);
	}
	if(SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		die("cannot load certificate %s", cert);
	}
	if(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		die("cannot load key %s", key);
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
	if(X509_VERIFY_PARAM_set1_ip_asc(vp, e->host) != 1) {
		X509_VERIFY_PARAM_set1_host(vp, e->host, 0);
	}
	if(NCTX == CAPCTX) {
		CAPCTX = CAPCTX ? CAPCTX * 2 : 64;
		CTXS = realloc(CTXS, (size_t)CAPCTX * sizeof *CTXS);
		if(!CTXS) {
			die("out of memory");
		}
	}
	snprintf(CTXS[NCTX].key, sizeof CTXS[NCTX].key, "%s", ck);
	CTXS[NCTX].ctx = ctx;
	NCTX++;
	return ctx;
}

/* ------------------------------------------------------------ payload ----- */

static void payload_stamp(unsigned char *buf, uint64_t seq)
{
	uint64_t t = now_ns();
	memcpy(buf, &t, 8);
	memcpy(buf + 8, &seq, 8);
}

/* ---------------------------------------------------------- callbacks ----- */

static bool in_window(uint64_t t)
{
	uint64_t s = atomic_load_explicit(&g_t_start, memory_order_relaxed);
	uint64_t e = atomic_load_explicit(&g_t_end, memory_order_relaxed);
	return s && t >= s && (!e || t < e);
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
	client_t *c = ud;
	worker_t *w = c->w;
	if(c->pending) {
		c->pending = false;
		w->npending--;
	}
	if(rc != 0) {
		w->connect_fail++;
		c->dead = true;
		if(!O.quiet) {
			fprintf(stderr, "loadgen: %s refused: %s\n", c->cid, mosquitto_connack_string(rc));
		}
		return;
	}
	histo_add(&w->conn, now_ns() - c->t_connect);
	c->connected = true;
	w->nconnected++;
	atomic_fetch_add(&g_connected, 1);
	if(c->role != R_PUB && O.mode != MODE_STORM && O.mode != MODE_HOLD) {
		int q = O.subqos >= 0 ? O.subqos : O.qos;
		if(mosquitto_subscribe(m, NULL, c->topic, q) != MOSQ_ERR_SUCCESS) {
			w->disconnects++;
		}
	}
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
	client_t *c = ud;
	if(n >= 1 && granted[0] >= 0x80) {
		fprintf(stderr, "loadgen: %s: subscription to %s refused\n", c->cid, c->topic);
		c->w->disconnects++;
		return;
	}
	c->subscribed = true;
	atomic_fetch_add(&g_subscribed, 1);
}

static void on_publish(struct mosquitto *m, void *ud, int mid)
{
	client_t *c = ud;
	if(c->unacked > 0) {
		c->unacked--;
	}
	atomic_fetch_add_explicit(&g_acked, 1, memory_order_relaxed);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
	client_t *c = ud;
	worker_t *w = c->w;
	uint64_t t = now_ns();
	if(msg->payloadlen < 16) {
		return;
	}
	uint64_t ts, seq;
	memcpy(&ts, msg->payload, 8);
	memcpy(&seq, (const char *)msg->payload + 8, 8);
	if(c->role == R_REF) {
		struct ref_slot *s = &REF[seq & (REF_RING - 1)];
		atomic_store_explicit(&s->t, t, memory_order_relaxed);
		atomic_store_explicit(&s->seq, seq + 1, memory_order_release);
		w->ref_recv++;
		return;
	}
	w->recv++;
	atomic_fetch_add_explicit(&g_recv, 1, memory_order_relaxed);
	if(!w->first_rx) {
		w->first_rx = t;
	}
	w->last_rx = t;
	if(in_window(ts)) {
		w->recv_measured++;
		w->bytes_measured += (uint64_t)msg->payloadlen;
		histo_add(&w->lat, t > ts ? t - ts : 0);
		if(REF) {
			struct ref_slot *s = &REF[seq & (REF_RING - 1)];
			if(atomic_load_explicit(&s->seq, memory_order_acquire) == seq + 1) {
				uint64_t tr = atomic_load_explicit(&s->t, memory_order_relaxed);
				histo_add(&w->added, t > tr ? t - tr : 0);
			} else {
				w->unmatched++;
			}
		}
	}
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc)
{
	client_t *c = ud;
	if(c->connected) {
		c->connected = false;
		c->w->nconnected--;
		atomic_fetch_sub(&g_connected, 1);
	}
	if(c->pending) {
		c->pending = false;
		c->w->npending--;
		c->w->connect_fail++;
	}
	if(!c->stopping && !atomic_load(&g_stop)) {
		c->w->disconnects++;
		c->dead = true;
		if(!O.quiet) {
			fprintf(stderr, "loadgen: %s disconnected: %s\n", c->cid, mosquitto_strerror(rc));
		}
	}
}

/* ------------------------------------------------------------- epoll ------ */

static void interest(client_t *c)
{
	int fd = mosquitto_socket(c->mosq);
	if(fd != c->fd) {
		if(c->fd >= 0) {
			epoll_ctl(c->w->epfd, EPOLL_CTL_DEL, c->fd, NULL); /* may already be gone */
		}
		c->fd = -1;
		c->ev = 0;
		if(fd < 0) {
			return;
		}
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
		if(epoll_ctl(c->w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			die("epoll_ctl add: %s", strerror(errno));
		}
		c->fd = fd;
		c->ev = ev.events;
		return;
	}
	if(fd < 0) {
		return;
	}
	uint32_t want = EPOLLIN | (mosquitto_want_write(c->mosq) ? EPOLLOUT : 0);
	if(want != c->ev) {
		struct epoll_event ev = {.events = want, .data.ptr = c};
		epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, fd, &ev);
		c->ev = want;
	}
}

static void client_start(client_t *c, bool first)
{
	int rc;
	c->t_connect = now_ns();
	c->pending = true;
	c->w->npending++;
	c->dead = false;
	c->stopping = false;
	if(first) {
		rc = mosquitto_connect_async(c->mosq, c->role == R_PUB ? O.pub.host
		                                      : c->role == R_SUB ? O.sub.host : O.ref.host,
		                             c->role == R_PUB ? O.pub.port
		                             : c->role == R_SUB ? O.sub.port : O.ref.port,
		                             O.keepalive);
	} else {
		rc = mosquitto_reconnect_async(c->mosq);
	}
	if(rc != MOSQ_ERR_SUCCESS) {
		c->pending = false;
		c->w->npending--;
		c->w->connect_fail++;
		c->dead = true;
		if(!O.quiet) {
			fprintf(stderr, "loadgen: %s: connect: %s\n", c->cid, mosquitto_strerror(rc));
		}
		return;
	}
	interest(c);
}

static void client_io(client_t *c, uint32_t events)
{
	int rc = MOSQ_ERR_SUCCESS;
	/* libmosquitto 2.0 drives a pending TLS handshake only from
	 * mosquitto_loop_read() (packet__write() waits while want_connect is
	 * set), so a handshake that must write next (e.g. the ClientHello after
	 * the TCP connect completed) is driven from here on EPOLLOUT too. */
	if(events & (EPOLLIN | EPOLLERR | EPOLLHUP) || (c->pending && (events & EPOLLOUT))) {
		rc = mosquitto_loop_read(c->mosq, 1000);
	}
	if(rc == MOSQ_ERR_SUCCESS && (events & EPOLLOUT)) {
		rc = mosquitto_loop_write(c->mosq, 1000);
	}
	if(rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
		/* loop_read/write closed the socket and ran on_disconnect */
		if(c->pending) {
			c->pending = false;
			c->w->npending--;
			c->w->connect_fail++;
		}
	}
	interest(c);
}

/* ----------------------------------------------------------- publish ------ */

static unsigned char *PAYLOAD_TEMPLATE;

/* Can the pipeline take one more publish? */
static bool window_open(void)
{
	uint64_t sent = atomic_load_explicit(&g_sent, memory_order_relaxed);
	if(O.nsub > 0 && O.count == 0) {
		uint64_t recv = atomic_load_explicit(&g_recv, memory_order_relaxed);
		return sent * (uint64_t)O.nsub < recv + (uint64_t)O.window;
	}
	if(O.qos > 0) {
		uint64_t acked = atomic_load_explicit(&g_acked, memory_order_relaxed);
		return sent < acked + (uint64_t)O.window;
	}
	return true;
}

/* Publish up to `budget` messages round-robin over this worker's connected
 * publishers; returns how many went out. */
static int publish_some(worker_t *w, long budget, bool flat)
{
	int done = 0;
	unsigned char *buf = PAYLOAD_TEMPLATE;
	int tries = 0;
	while(budget > 0 && tries < w->ncl) {
		client_t *c = w->cl[w->rr];
		w->rr = (w->rr + 1) % w->ncl;
		tries++;
		if(c->role != R_PUB || !c->connected) {
			continue;
		}
		if(flat) {
			if(!window_open()) {
				break;
			}
			/* TCP backpressure: do not queue behind a full socket. */
			if(mosquitto_want_write(c->mosq) || (O.qos > 0 && c->unacked >= 100)) {
				continue;
			}
		}
		if(O.count > 0 && (long)atomic_load(&g_sent) >= O.count) {
			break;
		}
		uint64_t seq = atomic_fetch_add_explicit(&g_sent, 1, memory_order_relaxed);
		payload_stamp(buf, seq);
		int mid;
		int rc = mosquitto_publish(c->mosq, &mid, c->topic, O.size, buf, O.qos, false);
		if(rc != MOSQ_ERR_SUCCESS) {
			w->pub_errors++;
		} else {
			if(O.qos > 0) {
				c->unacked++;
			}
			w->sent++;
			if(in_window(now_ns())) {
				w->sent_measured++;
			}
		}
		interest(c);
		budget--;
		done++;
		tries = 0;
	}
	return done;
}

/* ------------------------------------------------------------ workers ----- */

static void misc_all(worker_t *w)
{
	for(int i = 0; i < w->ncl; i++) {
		client_t *c = w->cl[i];
		if(mosquitto_socket(c->mosq) >= 0) {
			mosquitto_loop_misc(c->mosq);
			interest(c);
		}
	}
}

/* Start connects up to --max-pending in flight (storm/hold), or all (run/sub). */
static void start_more(worker_t *w, bool first)
{
	int cap = (O.mode == MODE_STORM || O.mode == MODE_HOLD) ? O.max_pending : 1 << 30;
	while(w->to_start > 0 && w->npending < cap) {
		client_t *c = w->cl[w->next_start++];
		w->to_start--;
		client_start(c, first);
	}
}

static atomic_int g_phase; /* storm/hold: 0 connect, 1 disconnect, 2 reconnect */

static void *worker_main(void *arg)
{
	worker_t *w = arg;
	struct epoll_event evs[256];
	uint64_t last_misc = now_ns();
	bool has_pub = false;
	int phase = 0;
	for(int i = 0; i < w->ncl; i++) {
		has_pub |= w->cl[i]->role == R_PUB;
	}
	w->to_start = w->ncl;
	w->next_start = 0;
	start_more(w, true);
	uint64_t rate_t0 = 0;
	uint64_t rate_sent = 0;
	while(!atomic_load(&g_stop)) {
		int timeout = has_pub ? 1 : 5;
		bool publishing = has_pub && atomic_load(&g_publishing);
		bool spin = false;
		if(publishing) {
			if(O.rate > 0) {
				uint64_t t = now_ns();
				if(!rate_t0) {
					rate_t0 = t;
				}
				uint64_t due = (uint64_t)((double)(t - rate_t0) * O.rate / 1e9);
				if(due > rate_sent) {
					rate_sent += (uint64_t)publish_some(w, (long)(due - rate_sent), false);
					if(due > rate_sent) {
						rate_sent = due; /* no publisher connected: do not burst later */
					}
				}
			} else if(publish_some(w, 256, true) > 0) {
				spin = true; /* more may fit: only poll the sockets */
			}
		} else {
			rate_t0 = 0;
			rate_sent = 0;
		}
		int n = epoll_wait(w->epfd, evs, 256, spin ? 0 : timeout);
		for(int i = 0; i < n; i++) {
			client_io(evs[i].data.ptr, evs[i].events);
		}
		if(O.mode == MODE_STORM || O.mode == MODE_HOLD) {
			int ph = atomic_load(&g_phase);
			if(ph != phase) {
				phase = ph;
				if(ph == 1) { /* disconnect all */
					for(int i = 0; i < w->ncl; i++) {
						w->cl[i]->stopping = true;
						if(w->cl[i]->connected) {
							mosquitto_disconnect(w->cl[i]->mosq);
							interest(w->cl[i]);
						}
					}
				} else if(ph == 2) { /* reconnect all at once */
					w->conn = (histo_t){0};
					w->connect_fail = 0;
					w->to_start = w->ncl;
					w->next_start = 0;
				}
			}
			start_more(w, phase == 0);
		}
		uint64_t t = now_ns();
		if(t - last_misc > 500000000ull) {
			misc_all(w);
			last_misc = t;
		}
	}
	return NULL;
}

/* --------------------------------------------------------------- CPU ------ */

static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* utime+stime of a process in seconds, -1 if it cannot be read. */
static double proc_cpu_s(int pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if(!f) {
		return -1;
	}
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* comm may contain spaces */
	if(!p) {
		return -1;
	}
	unsigned long ut = 0, st = 0;
	/* after ") " come fields 3.. ; utime is field 14, stime 15 */
	if(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) {
		return -1;
	}
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

struct pidmon {
	char name[32];
	int pid;
	double c0, c1;
};
static struct pidmon PIDS[8];

static void cpu_snapshot(int which, double *self)
{
	*self = self_cpu_s();
	for(int i = 0; i < O.npid; i++) {
		double v = proc_cpu_s(PIDS[i].pid);
		if(which == 0) {
			PIDS[i].c0 = v;
		} else {
			PIDS[i].c1 = v;
		}
	}
}

/* ------------------------------------------------------------ set-up ------ */

static void parse_ids(const char *s, const char **fmt, int *base)
{
	const char *colon = strrchr(s, ':');
	if(colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
		char *f = strndup(s, (size_t)(colon - s));
		*fmt = f;
		*base = (int)parse_long("--ids", colon + 1, 0, 100000000);
	} else {
		*fmt = s;
		*base = 0;
	}
}

/* Expand {id} {n} {l} in a topic template. */
static void expand_topic(char *out, size_t len, const char *tpl, const char *ident, int n)
{
	size_t o = 0;
	for(const char *p = tpl; *p && o + 1 < len;) {
		char rep[128];
		const char *r = NULL;
		size_t skip = 0;
		if(!strncmp(p, "{id}", 4)) {
			r = ident;
			skip = 4;
		} else if(!strncmp(p, "{n}", 3)) {
			snprintf(rep, sizeof rep, "%d", n);
			r = rep;
			skip = 3;
		} else if(!strncmp(p, "{l}", 3)) {
			snprintf(rep, sizeof rep, "%d", n % O.lines);
			r = rep;
			skip = 3;
		}
		if(r) {
			size_t rl = strlen(r);
			if(o + rl >= len) {
				break;
			}
			memcpy(out + o, r, rl);
			o += rl;
			p += skip;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
}

static void client_init(client_t *c, enum role role, int idx, const struct endpoint *e,
                        const char *topic_tpl)
{
	int n = e->idbase + idx;
	snprintf(c->ident, sizeof c->ident, e->idfmt, n);
	if(e->cidfmt) {
		snprintf(c->cid, sizeof c->cid, e->cidfmt, n);
	} else {
		snprintf(c->cid, sizeof c->cid, "%s", c->ident);
	}
	c->role = role;
	c->idx = idx;
	c->fd = -1;
	if(topic_tpl) {
		expand_topic(c->topic, sizeof c->topic, topic_tpl, c->ident, n);
	}
	c->mosq = mosquitto_new(c->cid, !(O.persistent && role == R_SUB), c);
	if(!c->mosq) {
		die("mosquitto_new failed");
	}
	mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION,
	                     O.protocol == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
	mosquitto_int_option(c->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
	mosquitto_void_option(c->mosq, MOSQ_OPT_SSL_CTX, tls_ctx(e, c->ident));
	mosquitto_max_inflight_messages_set(c->mosq, 100);
	if(O.nodelay) {
		mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	}
	mosquitto_connect_callback_set(c->mosq, on_connect);
	mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
	mosquitto_subscribe_callback_set(c->mosq, on_subscribe);
	mosquitto_publish_callback_set(c->mosq, on_publish);
	mosquitto_message_callback_set(c->mosq, on_message);
}

static void endpoint_defaults(struct endpoint *e, const struct endpoint *from)
{
	if(!e->host) e->host = from->host;
	if(!e->port) e->port = from->port;
	if(!e->cafile) e->cafile = from->cafile;
	if(!e->certfmt) e->certfmt = from->certfmt;
	if(!e->keyfmt) e->keyfmt = from->keyfmt;
	if(!e->idfmt) {
		e->idfmt = from->idfmt;
		e->idbase = from->idbase;
	}
}

static void sleep_until(uint64_t t)
{
	for(;;) {
		uint64_t n = now_ns();
		if(n >= t || atomic_load(&g_stop)) {
			return;
		}
		uint64_t d = t - n;
		if(d > 100000000ull) {
			d = 100000000ull;
		}
		struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
		nanosleep(&ts, NULL);
	}
}

static bool wait_until(bool (*pred)(void), double timeout_s)
{
	uint64_t end = now_ns() + (uint64_t)(timeout_s * 1e9);
	while(!pred()) {
		if(now_ns() >= end) {
			return false;
		}
		sleep_until(now_ns() + 2000000ull);
	}
	return true;
}

static int NPUB_CL, NSUBS_CL; /* clients that must be connected / subscribed */
static bool all_ready(void)
{
	return atomic_load(&g_connected) >= NC && atomic_load(&g_subscribed) >= NSUBS_CL;
}
static bool all_connected(void)
{
	return atomic_load(&g_connected) >= NC;
}
static bool none_connected(void)
{
	return atomic_load(&g_connected) == 0;
}
static bool all_delivered(void)
{
	uint64_t s = atomic_load(&g_sent);
	if(O.nsub > 0) {
		return atomic_load(&g_recv) >= s * (uint64_t)O.nsub;
	}
	return O.qos == 0 || atomic_load(&g_acked) >= s;
}
static bool count_sent(void)
{
	return (long)atomic_load(&g_sent) >= O.count && all_delivered();
}
static bool expect_reached(void)
{
	return (long)atomic_load(&g_recv) >= O.expect;
}

/* --go-stdin: say READY, read "GO T" (CLOCK_MONOTONIC seconds) from stdin
 * and sleep until T.  False on end of input or a malformed line. */
static bool wait_go(void)
{
	char line[128];
	printf("READY clients=%d\n", NC);
	fflush(stdout);
	if(!fgets(line, sizeof line, stdin) || strncmp(line, "GO ", 3) != 0) {
		fprintf(stderr, "loadgen: --go-stdin: expected \"GO T\" on stdin\n");
		return false;
	}
	line[strcspn(line, "\r\n")] = '\0';
	double t = parse_double("GO", line + 3, 0, 1e9);
	uint64_t go = (uint64_t)(t * 1e9);
	if(go > now_ns() + 60000000000ull) {
		fprintf(stderr, "loadgen: --go-stdin: GO %s is more than 60 s ahead\n", line + 3);
		return false;
	}
	sleep_until(go);
	return true;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&g_stop, true);
}

/* ------------------------------------------------------------- report ----- */

static void report(double seconds, double gen_cpu, uint64_t t0_ns)
{
	histo_t lat = {0}, added = {0}, conn = {0};
	uint64_t sent = 0, sent_m = 0, recv = 0, recv_m = 0, bytes_m = 0, pub_err = 0, disc = 0,
	         cfail = 0, unmatched = 0, ref_recv = 0, first_rx = 0, last_rx = 0;
	for(int i = 0; i < O.workers; i++) {
		worker_t *w = &W[i];
		histo_merge(&lat, &w->lat);
		histo_merge(&added, &w->added);
		histo_merge(&conn, &w->conn);
		sent += w->sent;
		sent_m += w->sent_measured;
		recv += w->recv;
		recv_m += w->recv_measured;
		bytes_m += w->bytes_measured;
		pub_err += w->pub_errors;
		disc += w->disconnects;
		cfail += w->connect_fail;
		unmatched += w->unmatched;
		ref_recv += w->ref_recv;
		if(w->first_rx && (!first_rx || w->first_rx < first_rx)) {
			first_rx = w->first_rx;
		}
		if(w->last_rx > last_rx) {
			last_rx = w->last_rx;
		}
	}
	long lost = 0;
	if(O.mode == MODE_RUN && O.nsub > 0) {
		lost = (long)(sent * (uint64_t)O.nsub) - (long)recv;
	}
	printf("RESULT mode=%s seconds=%.3f sent=%" PRIu64 " recv=%" PRIu64, O.mode == MODE_RUN ? "run"
	       : O.mode == MODE_SUB ? "sub" : O.mode == MODE_STORM ? "storm" : "hold",
	       seconds, sent, recv);
	if(O.mode == MODE_RUN && O.count == 0) {
		printf(" rate=%.1f pub_rate=%.1f mbit=%.2f", recv_m / seconds, sent_m / seconds,
		       bytes_m * 8 / seconds / 1e6);
	} else if(O.mode == MODE_RUN) {
		printf(" rate=%.1f", seconds > 0 ? sent / seconds : 0);
	}
	if(O.mode == MODE_SUB) {
		double span = last_rx > first_rx ? (last_rx - first_rx) / 1e9 : 0;
		printf(" rate=%.1f first_rx_ns=%" PRIu64 " last_rx_ns=%" PRIu64 " span=%.3f",
		       span > 0 ? recv / span : 0, first_rx, last_rx, span);
	}
	if(lat.n) {
		printf(" p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f", histo_quantile_us(&lat, 0.5),
		       histo_quantile_us(&lat, 0.99), histo_quantile_us(&lat, 0.999),
		       histo_quantile_us(&lat, 1.0));
	}
	if(added.n) {
		printf(" added_p50_us=%.1f added_p99_us=%.1f added_p999_us=%.1f ref_recv=%" PRIu64
		       " unmatched=%" PRIu64,
		       histo_quantile_us(&added, 0.5), histo_quantile_us(&added, 0.99),
		       histo_quantile_us(&added, 0.999), ref_recv, unmatched);
	}
	if(O.mode == MODE_STORM || O.mode == MODE_HOLD) {
		printf(" clients=%d connected=%d connects_per_s=%.1f conn_p50_us=%.1f conn_p99_us=%.1f", NC,
		       atomic_load(&g_connected), seconds > 0 ? NC / seconds : 0,
		       histo_quantile_us(&conn, 0.5), histo_quantile_us(&conn, 0.99));
	}
	printf(" acked=%" PRIu64, (uint64_t)atomic_load(&g_acked));
	printf(" lost=%ld errors=%" PRIu64 " pub_errors=%" PRIu64 " disconnects=%" PRIu64
	       " connect_failures=%" PRIu64,
	       lost > 0 ? lost : 0, pub_err + disc + cfail + (uint64_t)(lost > 0 ? lost : 0), pub_err,
	       disc, cfail);
	printf(" gen_cpu_pct=%.1f", seconds > 0 ? 100.0 * gen_cpu / seconds : 0);
	for(int i = 0; i < O.npid; i++) {
		if(PIDS[i].c0 >= 0 && PIDS[i].c1 >= 0 && seconds > 0) {
			printf(" cpu_%s_pct=%.1f", PIDS[i].name, 100.0 * (PIDS[i].c1 - PIDS[i].c0) / seconds);
		}
	}
	printf("\n");
	fflush(stdout);
	(void)t0_ns;
}

/* --------------------------------------------------------------- main ----- */

int main(int argc, char **argv)
{
	if(argc < 2) {
		usage();
	}
	if(!strcmp(argv[1], "run")) {
		O.mode = MODE_RUN;
	} else if(!strcmp(argv[1], "sub")) {
		O.mode = MODE_SUB;
	} else if(!strcmp(argv[1], "storm")) {
		O.mode = MODE_STORM;
	} else if(!strcmp(argv[1], "hold")) {
		O.mode = MODE_HOLD;
	} else {
		usage();
	}
	enum {
		o_host = 256, o_port, o_cafile, o_cert, o_key, o_ids, o_cid, o_pubs, o_pubtopic, o_subs,
		o_subtopic, o_subids, o_subhost, o_subport, o_subca, o_subcert, o_subkey, o_refs,
		o_reftopic, o_refids, o_size, o_qos, o_subqos, o_rate, o_window, o_warmup, o_duration,
		o_count, o_expect, o_timeout, o_maxpending, o_hold, o_workers, o_protocol, o_pid, o_lines,
		o_quiet, o_nodelay, o_persistent, o_subcid, o_go,
	};
	static const struct option lo[] = {
		{"host", 1, 0, o_host}, {"port", 1, 0, o_port}, {"cafile", 1, 0, o_cafile},
		{"cert", 1, 0, o_cert}, {"key", 1, 0, o_key}, {"ids", 1, 0, o_ids},
		{"clientid", 1, 0, o_cid}, {"pubs", 1, 0, o_pubs}, {"pub-topic", 1, 0, o_pubtopic},
		{"subs", 1, 0, o_subs}, {"sub-topic", 1, 0, o_subtopic}, {"sub-ids", 1, 0, o_subids},
		{"sub-host", 1, 0, o_subhost}, {"sub-port", 1, 0, o_subport},
		{"sub-cafile", 1, 0, o_subca}, {"sub-cert", 1, 0, o_subcert},
		{"sub-key", 1, 0, o_subkey}, {"ref-subs", 1, 0, o_refs}, {"ref-topic", 1, 0, o_reftopic},
		{"ref-ids", 1, 0, o_refids}, {"size", 1, 0, o_size}, {"qos", 1, 0, o_qos},
		{"sub-qos", 1, 0, o_subqos}, {"rate", 1, 0, o_rate}, {"window", 1, 0, o_window},
		{"warmup", 1, 0, o_warmup}, {"duration", 1, 0, o_duration}, {"count", 1, 0, o_count},
		{"expect", 1, 0, o_expect}, {"timeout", 1, 0, o_timeout},
		{"max-pending", 1, 0, o_maxpending}, {"hold", 1, 0, o_hold},
		{"workers", 1, 0, o_workers}, {"protocol", 1, 0, o_protocol}, {"pid", 1, 0, o_pid},
		{"lines", 1, 0, o_lines}, {"quiet", 0, 0, o_quiet},
		{"nodelay", 0, 0, o_nodelay}, {"persistent", 0, 0, o_persistent},
		{"sub-clientid", 1, 0, o_subcid}, {"go-stdin", 0, 0, o_go}, {0, 0, 0, 0},
	};
	int ch;
	optind = 2;
	while((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch(ch) {
		case o_host: O.pub.host = optarg; break;
		case o_port: O.pub.port = (int)parse_long("--port", optarg, 1, 65535); break;
		case o_cafile: O.pub.cafile = optarg; break;
		case o_cert: O.pub.certfmt = optarg; break;
		case o_key: O.pub.keyfmt = optarg; break;
		case o_ids: parse_ids(optarg, &O.pub.idfmt, &O.pub.idbase); break;
		case o_cid: O.pub.cidfmt = optarg; break;
		case o_pubs: O.npub = (int)parse_long("--pubs", optarg, 0, 100000); break;
		case o_pubtopic: O.pubtopic = optarg; break;
		case o_subs: O.nsub = (int)parse_long("--subs", optarg, 0, 100000); break;
		case o_subtopic: O.subtopic = optarg; break;
		case o_subids: parse_ids(optarg, &O.sub.idfmt, &O.sub.idbase); break;
		case o_subhost: O.sub.host = optarg; break;
		case o_subport: O.sub.port = (int)parse_long("--sub-port", optarg, 1, 65535); break;
		case o_subca: O.sub.cafile = optarg; break;
		case o_subcert: O.sub.certfmt = optarg; break;
		case o_subkey: O.sub.keyfmt = optarg; break;
		case o_refs: O.nref = (int)parse_long("--ref-subs", optarg, 0, 1); break;
		case o_reftopic: O.reftopic = optarg; break;
		case o_refids: parse_ids(optarg, &O.ref.idfmt, &O.ref.idbase); break;
		case o_size: O.size = (int)parse_long("--size", optarg, 16, 256 * 1024 * 1024); break;
		case o_qos: O.qos = (int)parse_long("--qos", optarg, 0, 2); break;
		case o_subqos: O.subqos = (int)parse_long("--sub-qos", optarg, 0, 2); break;
		case o_rate: O.rate = parse_double("--rate", optarg, 0, 1e8); break;
		case o_window: O.window = parse_long("--window", optarg, 1, 100000000); break;
		case o_warmup: O.warmup = parse_double("--warmup", optarg, 0, 3600); break;
		case o_duration: O.duration = parse_double("--duration", optarg, 0.1, 3600); break;
		case o_count: O.count = parse_long("--count", optarg, 0, 1000000000); break;
		case o_expect: O.expect = parse_long("--expect", optarg, 0, 1000000000); break;
		case o_timeout: O.timeout = parse_double("--timeout", optarg, 0.1, 36000); break;
		case o_maxpending: O.max_pending = (int)parse_long("--max-pending", optarg, 1, 100000); break;
		case o_hold: O.hold = parse_double("--hold", optarg, 0, 36000); break;
		case o_workers: O.workers = (int)parse_long("--workers", optarg, 1, 64); break;
		case o_protocol: O.protocol = (int)parse_long("--protocol", optarg, 4, 5); break;
		case o_lines: O.lines = (int)parse_long("--lines", optarg, 1, 1000000); break;
		case o_quiet: O.quiet = true; break;
		case o_nodelay: O.nodelay = true; break;
		case o_persistent: O.persistent = true; break;
		case o_subcid: O.sub.cidfmt = optarg; break;
		case o_go: O.go_stdin = true; break;
		case o_pid: {
			const char *colon = strchr(optarg, ':');
			if(!colon || O.npid == 8) {
				die("--pid NAME:PID (at most 8)");
			}
			snprintf(PIDS[O.npid].name, sizeof PIDS[O.npid].name, "%.*s", (int)(colon - optarg),
			         optarg);
			PIDS[O.npid].pid = (int)parse_long("--pid", colon + 1, 1, 1 << 30);
			O.npid++;
			break;
		}
		default: usage();
		}
	}
	if(!O.pub.port || !O.pub.cafile || !O.pub.certfmt || !O.pub.keyfmt) {
		die("--port, --cafile, --cert and --key are required");
	}
	endpoint_defaults(&O.sub, &O.pub);
	endpoint_defaults(&O.ref, &O.pub);
	if(O.mode == MODE_SUB) {
		O.npub = 0;
		if(O.nsub == 0 || O.expect == 0) {
			die("sub mode needs --subs and --expect");
		}
	}
	if(O.mode == MODE_STORM || O.mode == MODE_HOLD) {
		O.nsub = 0;
		O.nref = 0;
		if(O.npub == 0) {
			die("%s needs --pubs N (the clients)", argv[1]);
		}
	}
	if((O.nsub && !O.subtopic) || (O.nref && !O.reftopic) ||
	   (O.mode == MODE_RUN && O.npub && !O.pubtopic)) {
		die("--pub-topic, --sub-topic and --ref-topic are needed with publishers/subscribers");
	}
	if(!O.window) {
		O.window = O.nsub > 1 ? 20L * O.nsub : 1000;
		if(O.window < 1000) {
			O.window = 1000;
		}
	}

	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	mosquitto_lib_init();
	if(O.nref) {
		REF = calloc(REF_RING, sizeof *REF);
	}
	PAYLOAD_TEMPLATE = calloc(1, (size_t)O.size);
	for(int i = 16; i < O.size; i++) {
		PAYLOAD_TEMPLATE[i] = (unsigned char)('a' + i % 26);
	}

	NC = O.npub + O.nsub + O.nref;
	NSUBS_CL = O.nsub + O.nref;
	NPUB_CL = O.npub;
	C = calloc((size_t)NC, sizeof *C);
	W = calloc((size_t)O.workers, sizeof *W);
	if(!C || !W) {
		die("out of memory");
	}
	for(int i = 0; i < O.workers; i++) {
		W[i].id = i;
		W[i].epfd = epoll_create1(EPOLL_CLOEXEC);
		W[i].cl = calloc((size_t)NC, sizeof(client_t *));
	}
	int k = 0;
	for(int i = 0; i < O.npub; i++, k++) {
		client_init(&C[k], R_PUB, i, &O.pub, O.pubtopic);
	}
	for(int i = 0; i < O.nsub; i++, k++) {
		client_init(&C[k], R_SUB, i, &O.sub, O.subtopic);
	}
	for(int i = 0; i < O.nref; i++, k++) {
		client_init(&C[k], R_REF, i, &O.ref, O.reftopic);
	}
	/* run: publishers on worker 0, the receivers on the others; else spread */
	int rr = 0;
	for(int i = 0; i < NC; i++) {
		int wi;
		if(O.mode == MODE_RUN && O.workers > 1) {
			wi = C[i].role == R_PUB ? 0 : 1 + (rr++ % (O.workers - 1));
		} else {
			wi = i % O.workers;
		}
		C[i].w = &W[wi];
		W[wi].cl[W[wi].ncl++] = &C[i];
	}

	uint64_t t_begin = now_ns();
	for(int i = 0; i < O.workers; i++) {
		pthread_create(&W[i].th, NULL, worker_main, &W[i]);
	}

	double cpu0 = 0, cpu1 = 0, seconds = 0;
	int rc = 0;
	if(O.mode == MODE_RUN || O.mode == MODE_SUB) {
		if(!wait_until(all_ready, 60)) {
			fprintf(stderr, "loadgen: only %d of %d clients connected, %d of %d subscribed\n",
			        atomic_load(&g_connected), NC, atomic_load(&g_subscribed), NSUBS_CL);
			rc = 1;
			atomic_store(&g_stop, true);
		}
	}
	if(!rc && O.mode == MODE_RUN && O.count == 0 && O.go_stdin && !wait_go()) {
		rc = 1;
		atomic_store(&g_stop, true);
	}
	if(!rc && O.mode == MODE_RUN && O.count == 0) {
		uint64_t t0 = now_ns();
		uint64_t ts = t0 + (uint64_t)(O.warmup * 1e9);
		uint64_t te = ts + (uint64_t)(O.duration * 1e9);
		atomic_store(&g_t_start, ts);
		atomic_store(&g_t_end, te);
		atomic_store(&g_publishing, true);
		sleep_until(ts);
		cpu_snapshot(0, &cpu0);
		sleep_until(te);
		cpu_snapshot(1, &cpu1);
		seconds = (now_ns() - ts) / 1e9;
		atomic_store(&g_publishing, false);
		wait_until(all_delivered, O.qos > 0 ? 5 : 1);
		if(O.qos == 0) {
			/* QoS 0 may legitimately drop: give stragglers a moment */
			uint64_t last = atomic_load(&g_recv);
			for(int i = 0; i < 5; i++) {
				sleep_until(now_ns() + 100000000ull);
				if(atomic_load(&g_recv) == last) {
					break;
				}
				last = atomic_load(&g_recv);
			}
		}
	} else if(!rc && O.mode == MODE_RUN) {
		uint64_t ts = now_ns();
		atomic_store(&g_t_start, ts);
		atomic_store(&g_publishing, true);
		cpu_snapshot(0, &cpu0);
		uint64_t deadline = ts + (uint64_t)(O.timeout * 1e9);
		uint64_t next = ts;
		while(!count_sent() && now_ns() < deadline && !atomic_load(&g_stop)) {
			sleep_until(now_ns() + 20000000ull);
			if(now_ns() >= next) {
				printf("PROGRESS t=%.1f sent=%" PRIu64 " acked=%" PRIu64 "\n", (now_ns() - ts) / 1e9,
				       (uint64_t)atomic_load(&g_sent), (uint64_t)atomic_load(&g_acked));
				fflush(stdout);
				next += 1000000000ull;
			}
		}
		cpu_snapshot(1, &cpu1);
		seconds = (now_ns() - ts) / 1e9;
		atomic_store(&g_publishing, false);
		if(!count_sent()) {
			rc = 1;
		}
	} else if(!rc && O.mode == MODE_SUB) {
		uint64_t ts = now_ns();
		atomic_store(&g_t_start, 1); /* every message counts */
		printf("READY subscribed=%d t_ns=%" PRIu64 "\n", NSUBS_CL, ts);
		fflush(stdout);
		cpu_snapshot(0, &cpu0);
		uint64_t deadline = ts + (uint64_t)(O.timeout * 1e9);
		uint64_t next = ts;
		while(!expect_reached() && now_ns() < deadline && !atomic_load(&g_stop)) {
			sleep_until(now_ns() + 20000000ull);
			if(now_ns() >= next) {
				printf("PROGRESS t=%.1f recv=%" PRIu64 "\n", (now_ns() - ts) / 1e9,
				       (uint64_t)atomic_load(&g_recv));
				fflush(stdout);
				next += 500000000ull;
			}
		}
		cpu_snapshot(1, &cpu1);
		seconds = (now_ns() - ts) / 1e9;
		if(!expect_reached()) {
			rc = 1;
		}
	} else if(O.mode == MODE_STORM) {
		if(!wait_until(all_connected, O.timeout)) {
			fprintf(stderr, "loadgen: storm: only %d of %d connected in the first round\n",
			        atomic_load(&g_connected), NC);
			rc = 1;
		} else {
			atomic_store(&g_phase, 1);
			if(!wait_until(none_connected, 30)) {
				fprintf(stderr, "loadgen: storm: %d still connected after DISCONNECT\n",
				        atomic_load(&g_connected));
			}
			sleep_until(now_ns() + 200000000ull);
			cpu_snapshot(0, &cpu0);
			uint64_t ts = now_ns();
			atomic_store(&g_phase, 2);
			if(!wait_until(all_connected, O.timeout)) {
				fprintf(stderr, "loadgen: storm: only %d of %d reconnected\n",
				        atomic_load(&g_connected), NC);
				for(int i = 0; i < NC && getenv("LOADGEN_DEBUG"); i++) {
					if(!C[i].connected) {
						fprintf(stderr, "  %s pending=%d dead=%d fd=%d sock=%d ev=%x want_write=%d\n",
						        C[i].cid, C[i].pending, C[i].dead, C[i].fd, mosquitto_socket(C[i].mosq),
						        C[i].ev, mosquitto_want_write(C[i].mosq));
					}
				}
				rc = 1;
			}
			seconds = (now_ns() - ts) / 1e9;
			cpu_snapshot(1, &cpu1);
		}
	} else if(O.mode == MODE_HOLD) {
		uint64_t ts = now_ns();
		cpu_snapshot(0, &cpu0);
		if(!wait_until(all_connected, O.timeout)) {
			fprintf(stderr, "loadgen: hold: only %d of %d connected\n", atomic_load(&g_connected),
			        NC);
			rc = 1;
		}
		seconds = (now_ns() - ts) / 1e9;
		cpu_snapshot(1, &cpu1);
		printf("READY connected=%d seconds=%.3f\n", atomic_load(&g_connected), seconds);
		fflush(stdout);
		sleep_until(now_ns() + (uint64_t)(O.hold * 1e9));
	}
	atomic_store(&g_stop, true);
	for(int i = 0; i < O.workers; i++) {
		pthread_join(W[i].th, NULL);
	}
	report(seconds, cpu1 - cpu0, t_begin);
	/* Clients are not destroyed: they share SSL_CTXs and the process ends. */
	return rc;
}
