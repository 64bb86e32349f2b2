/*
 * http.c — the operator HTTP endpoints of plantgate-bridge (see http.h):
 * /healthz, /metrics (Prometheus text 0.0.4, written here: libwebsockets has
 * no metrics API), the status page / (bridge/status.html, embedded at build
 * time) and its WebSocket /ws.
 *
 * Everything here runs on the HTTP thread, inside lws_service(): the
 * one-second sampler (an lws timer), the ring buffer of the last ten minutes,
 * and every response.  Nothing is shared with the plant and cloud threads
 * but the atomic counters in bridge_t and the internally locked queue.
 *
 * Responses are built whole in memory (the largest, the WebSocket history, is
 * about 40 KB) and written in chunks as the socket accepts them.  At most one
 * log line per non-200 response, at most HTTP_LOG_BURST per 10 s, and never
 * the query string (it could carry a secret).
 */
#include "http.h"

#include <errno.h>
#include <libwebsockets.h>
#include <mosquitto.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "blog.h"
#include "json.h"
#include "pg_version.h"
#include "tunnel.h"
#include "util.h"

#define HTTP_HISTORY 600    /* samples kept: ten minutes at one per second */
#define HTTP_MAX_WS 32      /* concurrent status pages */
#define HTTP_CHUNK 4096     /* bytes written per writable callback */
#define HTTP_LOG_BURST 10   /* non-200 lines per HTTP_LOG_WINDOW */
#define HTTP_LOG_WINDOW_MS 10000
#define HTTP_BYTES_WARN_PCT 80
/* File descriptors left to the rest of the bridge (queue, links, pipes, logs)
 * whatever http_max_connections says: the HTTP port can never take the last
 * ones, so accept() never meets EMFILE (libwebsockets 4.1.6 retries a failed
 * accept at once and logs each failure: a busy loop). */
#define HTTP_FD_RESERVE 64
/* Slots of libwebsockets' poll table besides connections: the listening
 * socket and the cancel pipe, plus the one it keeps free (it stops polling
 * the listener when fds_count reaches fd_limit_per_thread - 1). */
#define HTTP_FD_OVERHEAD 3

/* At most HTTP_LOG_BURST lines per HTTP_LOG_WINDOW_MS; then a count. */
typedef struct http_ratelimit {
	int64_t window_start;
	unsigned in_window, suppressed;
} http_ratelimit_t;

/* bridge/status.html, embedded by bridge/embed.cmake */
extern const unsigned char http_status_html[];
extern const size_t http_status_html_len;

enum { HTTP_PLANT = 0, HTTP_CLOUD = 1 };

/* Why the plant thread does not read (enum bridge_block): the reason label
 * in /metrics and the status page, the words in /healthz.  A new reason is a
 * new row. */
static const struct http_block {
	unsigned bit;
	const char *label;
	const char *words;
} http_blocks[] = {
    {BRIDGE_BLOCK_QUEUE_FULL, "queue_full",
     "the queue is full (queue_max_messages or queue_max_bytes; queue_when_full backpressure)"},
    {BRIDGE_BLOCK_DISK_LOW, "disk_low",
     "free space on the queue's file system is below queue_min_free_disk"},
    {BRIDGE_BLOCK_WRITE_FAILED, "write_failed",
     "writing to the queue failed (disk full or I/O error), retrying"},
    {BRIDGE_BLOCK_OUT_OF_MEMORY, "out_of_memory", "out of memory, reconnecting"},
};
#define HTTP_NBLOCKS (sizeof(http_blocks) / sizeof(http_blocks[0]))

typedef struct http_sample {
	int64_t t_ms;      /* wall clock */
	double in_rate;    /* messages/s committed to the queue */
	double out_rate;   /* messages/s acknowledged by the cloud */
	int64_t depth;     /* messages queued */
	int64_t oldest_s;  /* age of the oldest queued message */
	int state[2];      /* enum link_state */
} http_sample_t;

/* One consistent-enough reading of everything (each value read atomically). */
typedef struct http_snap {
	uint64_t received, queued, unmatched, rejected, acked, refused, dropped_oldest, expired,
	    ignored, redelivered, dead_lettered;
	int64_t refusal_pause_ms;
	uint64_t connects[2], failures[2], tls_failures[2];
	int state[2];
	unsigned blocked; /* enum bridge_block bits */
	queue_stats_t q;
	int64_t now_ms;
	int64_t oldest_age_ms;
	int64_t down_ms[2]; /* how long the link has not been up; 0 when up */
} http_snap_t;

/* A growing text buffer with LWS_PRE bytes of headroom (for lws_write). */
typedef struct http_buf {
	char *mem; /* LWS_PRE + cap + 1 */
	size_t len, cap;
	bool oom;
} http_buf_t;

struct http {
	bridge_t *b;
	struct lws_context *ctx;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	lws_sorted_usec_list_t sul;       /* the one-second sampler */
	lws_sorted_usec_list_t sul_links; /* link up/down tracking, every 100 ms */

	http_sample_t hist[HTTP_HISTORY];
	size_t hist_n, hist_head; /* head: where the next sample goes */
	uint64_t last_queued, last_acked;
	int64_t last_sample_mono;
	uint64_t seq;       /* samples taken */
	http_buf_t live;    /* the latest sample as JSON, for the WebSockets */
	int64_t up_since_mono[2], down_since_mono[2];
	int64_t start_ms;
	int ws_clients;

	http_ratelimit_t log_rl; /* non-200 responses */
	int64_t max_conns;       /* connections held at most (http_fd_budget) */
};

/* Per connection: an HTTP response being written, or a WebSocket. */
typedef struct http_pss {
	http_buf_t body;
	size_t off;
	bool is_ws;
	bool need_history;
	uint64_t sent_seq;
} http_pss_t;

/* ---------------------------------------------------------------- buffers */

static void http_buf_free(http_buf_t *sb)
{
	free(sb->mem);
	memset(sb, 0, sizeof(*sb));
}

static char *http_buf_data(http_buf_t *sb)
{
	return sb->mem ? sb->mem + LWS_PRE : NULL;
}

static bool http_buf_reserve(http_buf_t *sb, size_t more)
{
	if(sb->oom) {
		return false;
	}
	if(sb->mem && sb->len + more <= sb->cap) {
		return true;
	}
	size_t ncap = sb->cap ? sb->cap : 1024;
	while(ncap < sb->len + more) {
		ncap *= 2;
	}
	char *n = realloc(sb->mem, LWS_PRE + ncap + 1);
	if(!n) {
		sb->oom = true;
		return false;
	}
	sb->mem = n;
	sb->cap = ncap;
	return true;
}

static void http_buf_printf(http_buf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void http_buf_printf(http_buf_t *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if(n < 0 || !http_buf_reserve(sb, (size_t)n + 1)) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(sb->mem + LWS_PRE + sb->len, sb->cap - sb->len + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

static void http_buf_put(http_buf_t *sb, const void *data, size_t n)
{
	if(!http_buf_reserve(sb, n + 1)) {
		return;
	}
	memcpy(sb->mem + LWS_PRE + sb->len, data, n);
	sb->len += n;
	sb->mem[LWS_PRE + sb->len] = '\0';
}

static void http_buf_json_put(void *sb, const char *s, size_t n)
{
	http_buf_put(sb, s, n);
}

/* A JSON string: quoted, escaped by common/json.c. */
static void http_buf_json_str(http_buf_t *sb, const char *s)
{
	http_buf_put(sb, "\"", 1);
	json_escape(s, strlen(s), 0, http_buf_json_put, sb);
	http_buf_put(sb, "\"", 1);
}

/* ------------------------------------------------------------- the state */

static const char *http_state_name(int s)
{
	return s == LINK_UP ? "up" : s == LINK_CONNECTING ? "connecting" : "down";
}

/* Follow the links' up/down transitions (polled every 100 ms). */
static void http_track_links(http_t *h, const int state[2], int64_t mono)
{
	for(int i = 0; i < 2; i++) {
		if(state[i] == LINK_UP) {
			if(!h->up_since_mono[i]) {
				h->up_since_mono[i] = mono;
			}
			h->down_since_mono[i] = 0;
		} else {
			if(!h->down_since_mono[i]) {
				h->down_since_mono[i] = mono;
			}
			h->up_since_mono[i] = 0;
		}
	}
}

static void http_snapshot(http_t *h, http_snap_t *s)
{
	bridge_counters_t *c = &h->b->ctr;
	memset(s, 0, sizeof(*s));
	s->received = atomic_load(&c->in_received);
	s->queued = atomic_load(&c->in_queued);
	s->unmatched = atomic_load(&c->in_unmatched);
	s->rejected = atomic_load(&c->in_rejected);
	s->acked = atomic_load(&c->out_acked);
	s->refused = atomic_load(&c->out_refused);
	s->dropped_oldest = atomic_load(&c->dropped_oldest);
	s->expired = atomic_load(&c->expired);
	s->ignored = atomic_load(&c->cloud_ignored);
	s->redelivered = atomic_load(&c->in_redelivered);
	s->dead_lettered = atomic_load(&c->out_dead_lettered);
	s->refusal_pause_ms = atomic_load(&c->refusal_pause_ms);
	s->connects[HTTP_PLANT] = atomic_load(&c->plant_connects);
	s->connects[HTTP_CLOUD] = atomic_load(&c->cloud_connects);
	s->failures[HTTP_PLANT] = atomic_load(&c->plant_failures);
	s->failures[HTTP_CLOUD] = atomic_load(&c->cloud_failures);
	s->tls_failures[HTTP_PLANT] = atomic_load(&c->plant_tls_failures);
	s->tls_failures[HTTP_CLOUD] = atomic_load(&c->cloud_tls_failures);
	s->state[HTTP_PLANT] = atomic_load(&c->plant_state);
	s->state[HTTP_CLOUD] = atomic_load(&c->cloud_state);
	s->blocked = atomic_load(&c->ingest_blocked);
	queue_get_stats(h->b->queue, &s->q);
	s->now_ms = util_wall_ms();
	s->oldest_age_ms = s->q.oldest_rx_ms && s->now_ms > s->q.oldest_rx_ms
	                       ? s->now_ms - s->q.oldest_rx_ms
	                       : 0;
	int64_t mono = util_mono_ms();
	http_track_links(h, s->state, mono);
	for(int i = 0; i < 2; i++) {
		s->down_ms[i] = h->down_since_mono[i] ? mono - h->down_since_mono[i] : 0;
	}
}

/* Why the bridge is not healthy, as one line; "" when it is. */
static void http_health_reason(const http_t *h, const http_snap_t *s, char *out, size_t outlen)
{
	const bconf_t *cfg = h->b->cfg;
	static const char *const names[2] = {"plant", "cloud"};
	size_t used = 0;
	out[0] = '\0';
#define HTTP_REASON(...)                                                                         \
	do {                                                                                       \
		if(used < outlen) {                                                                  \
			int n_ = snprintf(out + used, outlen - used, "%s", used ? "; " : "");           \
			used += n_ > 0 ? (size_t)n_ : 0;                                                 \
		}                                                                                    \
		if(used < outlen) {                                                                  \
			int n_ = snprintf(out + used, outlen - used, __VA_ARGS__);                       \
			used += n_ > 0 ? (size_t)n_ : 0;                                                 \
		}                                                                                    \
	} while(0)
	for(int i = 0; i < 2; i++) {
		if(s->state[i] != LINK_UP) {
			HTTP_REASON("%s link %s for %lld s", names[i],
			            s->state[i] == LINK_CONNECTING ? "connecting" : "down",
			            (long long)(s->down_ms[i] / 1000));
		}
	}
	bool queue_bad = false;
	if(s->q.messages >= cfg->queue_warn_messages) {
		HTTP_REASON("queue at or above its warning level of %lld messages",
		            (long long)cfg->queue_warn_messages);
		queue_bad = true;
	}
	if(s->oldest_age_ms >= cfg->queue_warn_age_ms) {
		HTTP_REASON("oldest queued message older than %lld s",
		            (long long)(cfg->queue_warn_age_ms / 1000));
		queue_bad = true;
	}
	if(s->q.bytes >= cfg->queue_max_bytes / 100 * HTTP_BYTES_WARN_PCT) {
		HTTP_REASON("queue holds %llu bytes, %d%% of queue_max_bytes",
		            (unsigned long long)s->q.bytes, HTTP_BYTES_WARN_PCT);
		queue_bad = true;
	}
	if(s->blocked) {
		HTTP_REASON("not reading from the plant broker, which holds the messages:");
		const char *sep = " ";
		for(size_t i = 0; i < HTTP_NBLOCKS; i++) {
			if((s->blocked & http_blocks[i].bit) && used < outlen) {
				int n_ = snprintf(out + used, outlen - used, "%s%s", sep, http_blocks[i].words);
				used += n_ > 0 ? (size_t)n_ : 0;
				sep = ", and ";
			}
		}
	}
	if(used && (queue_bad || s->q.messages > 0)) {
		HTTP_REASON("%lld messages queued, oldest %lld s", (long long)s->q.messages,
		            (long long)(s->oldest_age_ms / 1000));
	}
#undef HTTP_REASON
}

/* Take a sample into the ring buffer and rebuild the live JSON. */
static void http_build_sample_json(http_t *h, const http_snap_t *s, const http_sample_t *smp,
                                   http_buf_t *out);

static void http_sample(http_t *h)
{
	http_snap_t s;
	http_snapshot(h, &s);
	int64_t mono = util_mono_ms();
	double dt = h->last_sample_mono ? (double)(mono - h->last_sample_mono) / 1000.0 : 0;
	http_sample_t *smp = &h->hist[h->hist_head];
	smp->t_ms = s.now_ms;
	smp->in_rate = dt > 0 ? (double)(s.queued - h->last_queued) / dt : 0;
	smp->out_rate = dt > 0 ? (double)(s.acked - h->last_acked) / dt : 0;
	smp->depth = s.q.messages;
	smp->oldest_s = s.oldest_age_ms / 1000;
	smp->state[0] = s.state[0];
	smp->state[1] = s.state[1];
	h->last_queued = s.queued;
	h->last_acked = s.acked;
	h->last_sample_mono = mono;
	h->hist_head = (h->hist_head + 1) % HTTP_HISTORY;
	if(h->hist_n < HTTP_HISTORY) {
		h->hist_n++;
	}
	h->seq++;
	h->live.len = 0;
	http_build_sample_json(h, &s, smp, &h->live);
}

/* --------------------------------------------------------------- bodies */

static void http_build_sample_json(http_t *h, const http_snap_t *s, const http_sample_t *smp,
                                   http_buf_t *out)
{
	char reason[1024];
	http_health_reason(h, s, reason, sizeof(reason));
	http_buf_printf(out,
	                "{\"type\":\"sample\",\"t\":%lld,\"plant\":\"%s\",\"cloud\":\"%s\","
	                "\"plant_for\":%lld,\"cloud_for\":%lld,\"in_rate\":%.1f,\"out_rate\":%.1f,"
	                "\"depth\":%lld,\"bytes\":%llu,\"oldest\":%lld,\"received\":%llu,"
	                "\"queued\":%llu,\"delivered\":%llu,\"dropped\":%llu,\"blocked\":%s,"
	                "\"healthy\":%s,\"reason\":",
	                (long long)smp->t_ms, http_state_name(s->state[0]),
	                http_state_name(s->state[1]),
	                (long long)((s->state[0] == LINK_UP
	                                 ? util_mono_ms() - h->up_since_mono[0]
	                                 : s->down_ms[0]) /
	                            1000),
	                (long long)((s->state[1] == LINK_UP
	                                 ? util_mono_ms() - h->up_since_mono[1]
	                                 : s->down_ms[1]) /
	                            1000),
	                smp->in_rate, smp->out_rate, (long long)s->q.messages,
	                (unsigned long long)s->q.bytes, (long long)(s->oldest_age_ms / 1000),
	                (unsigned long long)s->received, (unsigned long long)s->queued,
	                (unsigned long long)s->acked,
	                (unsigned long long)(s->unmatched + s->rejected + s->dropped_oldest + s->expired),
	                s->blocked ? "true" : "false", reason[0] ? "false" : "true");
	http_buf_json_str(out, reason);
	http_buf_printf(out, ",\"blocked_by\":[");
	const char *sep = "";
	for(size_t i = 0; i < HTTP_NBLOCKS; i++) {
		if(s->blocked & http_blocks[i].bit) {
			http_buf_printf(out, "%s\"%s\"", sep, http_blocks[i].label);
			sep = ",";
		}
	}
	http_buf_printf(out,
	                "],\"dead_letters\":%lld,\"redelivered\":%llu,\"refusal_pause_ms\":%lld,"
	                "\"version\":\"%s\",\"queue_warn\":%lld,\"config\":",
	                (long long)s->q.dead_letters, (unsigned long long)s->redelivered,
	                (long long)s->refusal_pause_ms, PG_VERSION,
	                (long long)h->b->cfg->queue_warn_messages);
	/* the file the page's deadletter command names */
	http_buf_json_str(out, h->b->cfg_path ? h->b->cfg_path : "FILE");
	http_buf_printf(out, "}");
}

/* All samples, oldest first, as arrays: [t, in, out, depth, oldest], and the
 * latest full sample, so a page shows everything at once. */
static void http_build_history(const http_t *h, http_buf_t *out)
{
	http_buf_printf(out, "{\"type\":\"history\",\"interval\":1,\"samples\":[");
	size_t start = (h->hist_head + HTTP_HISTORY - h->hist_n) % HTTP_HISTORY;
	for(size_t i = 0; i < h->hist_n; i++) {
		const http_sample_t *s = &h->hist[(start + i) % HTTP_HISTORY];
		http_buf_printf(out, "%s[%lld,%.1f,%.1f,%lld,%lld]", i ? "," : "", (long long)s->t_ms,
		                s->in_rate, s->out_rate, (long long)s->depth, (long long)s->oldest_s);
	}
	http_buf_printf(out, "]");
	if(h->live.len) {
		http_buf_printf(out, ",\"last\":");
		http_buf_put(out, http_buf_data((http_buf_t *)&h->live), h->live.len);
	}
	http_buf_printf(out, "}");
}

/* A Prometheus label value: \, " and newline escaped. */
static void http_label_value(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	for(; *in && o + 3 < outlen; in++) {
		if(*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if(*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

/* ------------------------------------------------------------ /metrics */

/* What a metric reads: one snapshot per scrape, the configuration, the
 * bridge's live counters. */
typedef struct http_mctx {
	const http_t *h;
	const http_snap_t *s;
	const bconf_t *cfg;
	bridge_counters_t *c;
	bool healthy;
} http_mctx_t;

static const char *const http_link_name[2] = {"plant", "cloud"};

/* One row per metric, in the order /metrics lists them: the name after
 * "plantgate_bridge_", the type, the help text, and one way to get the
 * samples: u (one unsigned value), i (one signed value), f (seconds, three
 * decimals), link (one value per link, labelled link="plant"|"cloud") or
 * lines (writes labelled samples itself). */
typedef struct http_metric {
	const char *name, *type, *help;
	uint64_t (*u)(const http_mctx_t *x);
	int64_t (*i)(const http_mctx_t *x);
	double (*f)(const http_mctx_t *x);
	uint64_t (*link)(const http_mctx_t *x, int link);
	void (*lines)(const http_mctx_t *x, http_buf_t *m, const char *name);
} http_metric_t;

/* The value getters: one expression each. */
#define HTTP_GET(fn, type, expr)                                                                   \
	static type fn(const http_mctx_t *x)                                                           \
	{                                                                                              \
		return (type)(expr);                                                                       \
	}
#define HTTP_GET_LINK(fn, expr)                                                                    \
	static uint64_t fn(const http_mctx_t *x, int l)                                                \
	{                                                                                              \
		return (uint64_t)(expr);                                                                   \
	}
HTTP_GET(http_m_start, int64_t, x->h->start_ms / 1000)
HTTP_GET(http_m_received, uint64_t, x->s->received)
HTTP_GET(http_m_queued, uint64_t, x->s->queued)
HTTP_GET(http_m_delivered, uint64_t, x->s->acked)
HTTP_GET(http_m_redelivered, uint64_t, x->s->redelivered)
HTTP_GET(http_m_dead_total, uint64_t, x->s->dead_lettered)
HTTP_GET(http_m_refusals, uint64_t, x->s->refused)
HTTP_GET(http_m_dead, int64_t, x->s->q.dead_letters)
HTTP_GET(http_m_ignored, uint64_t, x->s->ignored)
HTTP_GET(http_m_queue_messages, int64_t, x->s->q.messages)
HTTP_GET(http_m_queue_bytes, uint64_t, x->s->q.bytes)
HTTP_GET(http_m_oldest, double, (double)x->s->oldest_age_ms / 1000.0)
HTTP_GET(http_m_max_messages, int64_t, x->cfg->queue_max_messages)
HTTP_GET(http_m_max_bytes, uint64_t, x->cfg->queue_max_bytes)
HTTP_GET(http_m_warn_messages, int64_t, x->cfg->queue_warn_messages)
HTTP_GET(http_m_blocked, int64_t, x->s->blocked ? 1 : 0)
HTTP_GET(http_m_commit_pause, double, (double)atomic_load(&x->c->commit_pause_us) / 1e6)
HTTP_GET(http_m_refusal_pause, double, (double)atomic_load(&x->c->refusal_pause_ms) / 1e3)
HTTP_GET(http_m_ws_failures, uint64_t, atomic_load(&x->c->ws_failures))
HTTP_GET(http_m_status_pages, int64_t, x->h->ws_clients)
HTTP_GET(http_m_healthy, int64_t, x->healthy)
HTTP_GET_LINK(http_m_link_up, x->s->state[l] == LINK_UP)
HTTP_GET_LINK(http_m_link_state, x->s->state[l])
HTTP_GET_LINK(http_m_link_down, x->s->down_ms[l] / 1000)
HTTP_GET_LINK(http_m_connects, x->s->connects[l])
HTTP_GET_LINK(http_m_reconnects, x->s->connects[l] ? x->s->connects[l] - 1 : 0)
HTTP_GET_LINK(http_m_failures, x->s->failures[l])
HTTP_GET_LINK(http_m_tls_failures, x->s->tls_failures[l])
#undef HTTP_GET
#undef HTTP_GET_LINK

static void http_m_build_info(const http_mctx_t *x, http_buf_t *m, const char *name)
{
	(void)x;
	char lws_v[64], ossl_v[64], sqlite_v[64];
	int maj = 0, min = 0, rev = 0;
	mosquitto_lib_version(&maj, &min, &rev);
	http_label_value(lws_get_library_version(), lws_v, sizeof(lws_v));
	http_label_value(OpenSSL_version(OPENSSL_VERSION_STRING), ossl_v, sizeof(ossl_v));
	http_label_value(sqlite3_libversion(), sqlite_v, sizeof(sqlite_v));
	http_buf_printf(m,
	                "plantgate_bridge_%s{version=\"%s\",libmosquitto=\"%d.%d.%d\","
	                "libwebsockets=\"%s\",openssl=\"%s\",sqlite=\"%s\"} 1\n",
	                name, PG_VERSION, maj, min, rev, lws_v, ossl_v, sqlite_v);
}

static void http_m_dropped(const http_mctx_t *x, http_buf_t *m, const char *name)
{
	const struct {
		const char *reason;
		uint64_t n;
	} by[] = {{"no_rule", x->s->unmatched},
	          {"rejected", x->s->rejected},
	          {"drop_oldest", x->s->dropped_oldest},
	          {"expired", x->s->expired}};
	for(size_t i = 0; i < sizeof(by) / sizeof(by[0]); i++) {
		http_buf_printf(m, "plantgate_bridge_%s{reason=\"%s\"} %llu\n", name, by[i].reason,
		                (unsigned long long)by[i].n);
	}
}

static void http_m_blocked_reason(const http_mctx_t *x, http_buf_t *m, const char *name)
{
	for(size_t i = 0; i < HTTP_NBLOCKS; i++) {
		http_buf_printf(m, "plantgate_bridge_%s{reason=\"%s\"} %d\n", name, http_blocks[i].label,
		                (x->s->blocked & http_blocks[i].bit) ? 1 : 0);
	}
}

static void http_m_proxy_failures(const http_mctx_t *x, http_buf_t *m, const char *name)
{
	for(int i = 0; i < BRIDGE_PROXY_FAIL_KINDS; i++) {
		http_buf_printf(m, "plantgate_bridge_%s{reason=\"%s\"} %llu\n", name,
		                tunnel_proxy_fail_name(i),
		                (unsigned long long)atomic_load(&x->c->proxy_failures[i]));
	}
}

static void http_m_transport(const http_mctx_t *x, http_buf_t *m, const char *name)
{
	const char *proxy = x->cfg->cloud_proxy;
	http_buf_printf(m, "plantgate_bridge_%s{transport=\"%s\",proxy=\"%s\"} 1\n", name,
	                x->cfg->cloud_transport == BCONF_TRANSPORT_WSS ? "wss" : "tls",
	                !proxy                                     ? "none"
	                : strncasecmp(proxy, "https:", 6) == 0 ? "https"
	                                                           : "http");
}

static void http_m_commit(const http_mctx_t *x, http_buf_t *m, const char *name)
{
	uint64_t cum = 0;
	for(int i = 0; i < BRIDGE_COMMIT_BUCKETS; i++) {
		cum += atomic_load(&x->c->commit_buckets[i]);
		if(i == BRIDGE_COMMIT_BUCKETS - 1) {
			http_buf_printf(m, "plantgate_bridge_%s_bucket{le=\"+Inf\"} %llu\n", name,
			                (unsigned long long)cum);
		} else {
			http_buf_printf(m, "plantgate_bridge_%s_bucket{le=\"%g\"} %llu\n", name,
			                (double)bridge_commit_bound_us(i) / 1e6, (unsigned long long)cum);
		}
	}
	/* count read after the buckets: a commit landing in between makes count
	 * at most larger, never smaller than +Inf by more than in-flight ones */
	http_buf_printf(m, "plantgate_bridge_%s_sum %.6f\n", name,
	                (double)atomic_load(&x->c->commit_us_sum) / 1e6);
	http_buf_printf(m, "plantgate_bridge_%s_count %llu\n", name, (unsigned long long)cum);
}

static const http_metric_t http_metrics[] = {
    {"build_info", "gauge", "Always 1; the labels name the bridge version and the libraries in use.",
     .lines = http_m_build_info},
    {"start_time_seconds", "gauge", "When the bridge started (Unix time).", .i = http_m_start},
    {"messages_received_total", "counter",
     "Messages received from the plant broker (before the forward rules).", .u = http_m_received},
    {"messages_queued_total", "counter",
     "Messages committed to the durable queue (and so acknowledged to the plant broker).",
     .u = http_m_queued},
    {"messages_delivered_total", "counter",
     "Messages acknowledged by the cloud and deleted from the queue.", .u = http_m_delivered},
    {"messages_dropped_total", "counter",
     "Messages not forwarded, by reason: no_rule (no forward rule matched), rejected (too large "
     "or an invalid cloud topic), drop_oldest (evicted from a full queue), expired (ttl).",
     .lines = http_m_dropped},
    {"plant_redelivered_total", "counter",
     "Messages the plant broker delivered again (after a bridge restart or a lost connection) "
     "that were already stored: acknowledged, not stored twice.",
     .u = http_m_redelivered},
    {"cloud_refusal_pause_seconds", "gauge",
     "The pause in sending after the cloud's last refusal (reconnect_min doubling to reconnect_max); "
     "0 once the cloud takes a message sent after it.",
     .f = http_m_refusal_pause},
    {"cloud_refusals_total", "counter",
     "PUBACKs with a reason code >= 0x80, and messages the cloud's CONNACK limits rule out: each "
     "message is kept, sent again later or moved to the dead-letter table, never deleted.",
     .u = http_m_refusals},
    {"dead_letters_total", "counter",
     "Messages moved to the dead-letter table: the cloud dropped the connection each time they "
     "were sent (dead_letter_after), or refused them (cloud.refused).",
     .u = http_m_dead_total},
    {"dead_letters", "gauge",
     "Messages held in the dead-letter table (plantgate-bridge deadletter list).", .i = http_m_dead},
    {"cloud_messages_ignored_total", "counter",
     "Messages the cloud sent to the bridge; dropped (outbound only).", .u = http_m_ignored},
    {"queue_messages", "gauge", "Messages in the durable queue.", .i = http_m_queue_messages},
    {"queue_bytes", "gauge", "Payload and topic bytes in the durable queue.",
     .u = http_m_queue_bytes},
    {"queue_oldest_age_seconds", "gauge",
     "Age of the oldest queued message; 0 when the queue is empty.", .f = http_m_oldest},
    {"queue_max_messages", "gauge", "queue_max_messages.", .i = http_m_max_messages},
    {"queue_max_bytes", "gauge", "queue_max_bytes.", .u = http_m_max_bytes},
    {"queue_warn_messages", "gauge", "queue_warn_messages: /healthz fails at this backlog.",
     .i = http_m_warn_messages},
    {"ingest_blocked", "gauge",
     "1 while the bridge does not read from the plant broker (queue full, disk low or a failed "
     "write); the plant broker holds the messages.",
     .i = http_m_blocked},
    {"ingest_blocked_reason", "gauge",
     "1 for each reason the bridge does not read from the plant broker now: queue_full, "
     "disk_low, write_failed, out_of_memory.",
     .lines = http_m_blocked_reason},
    {"link_up", "gauge", "1 when the link is connected, else 0.", .link = http_m_link_up},
    {"link_state", "gauge", "0 down, 1 connecting, 2 up.", .link = http_m_link_state},
    {"link_down_seconds", "gauge", "How long the link has not been up (to the second); 0 when up.",
     .link = http_m_link_down},
    {"connects_total", "counter", "Successful connects of the link.", .link = http_m_connects},
    {"reconnects_total", "counter", "Successful connects after the first one (connects_total - 1).",
     .link = http_m_reconnects},
    {"connect_failures_total", "counter",
     "Connection attempts that failed, and connections lost before CONNACK.",
     .link = http_m_failures},
    {"tls_handshake_failures_total", "counter",
     "Connection attempts refused in TLS (certificate, name, version).",
     .link = http_m_tls_failures},
    {"cloud_proxy_failures_total", "counter",
     "Ways to the cloud through cloud_proxy that failed, by reason: unreachable (no TCP "
     "connection to the proxy), refused (CONNECT answered with an error), auth (407), bad_reply "
     "(not HTTP or no answer), tls (https:// proxy), closed (an open tunnel ended: the proxy cut "
     "it or the cloud closed it).",
     .lines = http_m_proxy_failures},
    {"cloud_websocket_failures_total", "counter",
     "cloud_transport wss: WebSocket upgrades refused and WebSocket protocol errors from the "
     "cloud.",
     .u = http_m_ws_failures},
    {"cloud_transport_info", "gauge",
     "Always 1; the labels say how the cloud is reached (cloud_transport, and whether "
     "cloud_proxy is configured).",
     .lines = http_m_transport},
    {"commit_duration_seconds", "histogram",
     "Time to commit one batch of plant messages to the queue (SQLite transaction with fsync), "
     "before their acknowledgements may leave.",
     .lines = http_m_commit},
    {"commit_pause_seconds", "gauge",
     "The pause between the starts of two commits now, which puts more messages into each fsync: "
     "queue_commit_interval; with auto (the default) 0.002 while the plant broker sends 2,000 "
     "messages a second or more, else 0.",
     .f = http_m_commit_pause},
    {"status_pages", "gauge", "Status pages (WebSocket clients of /ws) open now.",
     .i = http_m_status_pages},
    {"healthy", "gauge", "1 when /healthz answers 200, else 0.", .i = http_m_healthy},
};

static void http_build_metrics(http_t *h, http_buf_t *m)
{
	http_snap_t s;
	http_snapshot(h, &s);
	char reason[1024];
	http_health_reason(h, &s, reason, sizeof(reason));
	const http_mctx_t x = {.h = h, .s = &s, .cfg = h->b->cfg, .c = &h->b->ctr, .healthy = !reason[0]};
	for(size_t i = 0; i < sizeof(http_metrics) / sizeof(http_metrics[0]); i++) {
		const http_metric_t *r = &http_metrics[i];
		http_buf_printf(m, "# HELP plantgate_bridge_%s %s\n# TYPE plantgate_bridge_%s %s\n", r->name,
		                r->help, r->name, r->type);
		if(r->u) {
			http_buf_printf(m, "plantgate_bridge_%s %llu\n", r->name, (unsigned long long)r->u(&x));
		} else if(r->i) {
			http_buf_printf(m, "plantgate_bridge_%s %lld\n", r->name, (long long)r->i(&x));
		} else if(r->f) {
			http_buf_printf(m, "plantgate_bridge_%s %.3f\n", r->name, r->f(&x));
		} else if(r->link) {
			for(int l = 0; l < 2; l++) {
				http_buf_printf(m, "plantgate_bridge_%s{link=\"%s\"} %llu\n", r->name,
				                http_link_name[l], (unsigned long long)r->link(&x, l));
			}
		} else {
			r->lines(&x, m, r->name);
		}
	}
}

/* ------------------------------------------------------------ responses */

/* May a line be logged now?  When a window with suppressed lines ends, logs
 * `event` with their count first. */
static bool http_rate_allow(http_ratelimit_t *rl, const char *event)
{
	int64_t now = util_mono_ms();
	if(now - rl->window_start >= HTTP_LOG_WINDOW_MS) {
		if(rl->suppressed) {
			blog(BLOG_INFO, event, "count=%u window_s=%d", rl->suppressed,
			     HTTP_LOG_WINDOW_MS / 1000);
		}
		rl->window_start = now;
		rl->in_window = 0;
		rl->suppressed = 0;
	}
	if(rl->in_window >= HTTP_LOG_BURST) {
		rl->suppressed++;
		return false;
	}
	rl->in_window++;
	return true;
}

static void http_log_status(http_t *h, struct lws *wsi, int status, const char *path)
{
	if(!http_rate_allow(&h->log_rl, "http.responses_suppressed")) {
		return;
	}
	char peer[64] = "", q[300];
	lws_get_peer_simple(wsi, peer, sizeof(peer));
	blog(BLOG_INFO, "http.response", "status=%d path=%s peer=%s",
	     status, util_log_quote(path, q, sizeof(q)), peer[0] ? peer : "unknown");
}

static int http_add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                           unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
	                                   (const unsigned char *)value, (int)strlen(value), p, end);
}

/* Send the headers and queue body (taken over by pss) for writing. */
static int http_respond(http_t *h, struct lws *wsi, http_pss_t *pss, int status,
                        const char *ctype, http_buf_t *body, const char *path)
{
	unsigned char hdr[LWS_PRE + 2048], *start = hdr + LWS_PRE, *p = start,
	                                   *end = hdr + sizeof(hdr) - 1;
	if(body->oom) {
		http_buf_free(body);
		return -1;
	}
	if(status != 200) {
		http_log_status(h, wsi, status, path);
	}
	if(lws_add_http_common_headers(wsi, (unsigned)status, ctype, body->len, &p, end) ||
	   http_add_header(wsi, "cache-control:", "no-store", &p, end) ||
	   http_add_header(wsi, "x-content-type-options:", "nosniff", &p, end) ||
	   http_add_header(wsi, "x-frame-options:", "DENY", &p, end) ||
	   http_add_header(wsi, "referrer-policy:", "no-referrer", &p, end) ||
	   http_add_header(wsi, "content-security-policy:",
	                   "default-src 'none'; script-src 'unsafe-inline'; style-src "
	                   "'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; "
	                   "form-action 'none'; frame-ancestors 'none'",
	                   &p, end) ||
	   lws_finalize_write_http_header(wsi, start, &p, end)) {
		http_buf_free(body);
		return -1;
	}
	http_buf_free(&pss->body);
	pss->body = *body;
	memset(body, 0, sizeof(*body));
	pss->off = 0;
	lws_callback_on_writable(wsi);
	return 0;
}

static int http_respond_text(http_t *h, struct lws *wsi, http_pss_t *pss, int status,
                             const char *text, const char *path)
{
	http_buf_t b = {0};
	http_buf_printf(&b, "%s\n", text);
	return http_respond(h, wsi, pss, status, "text/plain; charset=utf-8", &b, path);
}

static int http_on_request(http_t *h, struct lws *wsi, http_pss_t *pss, const char *path)
{
	if(lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
		return http_respond_text(h, wsi, pss, 405, "only GET is served", path);
	}
	http_buf_t b = {0};
	if(strcmp(path, "/healthz") == 0) {
		http_snap_t s;
		char reason[1024];
		http_snapshot(h, &s);
		http_health_reason(h, &s, reason, sizeof(reason));
		return http_respond_text(h, wsi, pss, reason[0] ? 503 : 200, reason[0] ? reason : "ok",
		                         path);
	}
	if(strcmp(path, "/metrics") == 0) {
		http_build_metrics(h, &b);
		return http_respond(h, wsi, pss, 200, "text/plain; version=0.0.4; charset=utf-8", &b,
		                    path);
	}
	if(strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
		http_buf_put(&b, http_status_html, http_status_html_len);
		return http_respond(h, wsi, pss, 200, "text/html; charset=utf-8", &b, path);
	}
	return http_respond_text(h, wsi, pss, 404,
	                         "not found: this bridge serves /, /healthz, /metrics and /ws", path);
}

/* Write the next chunk of the pending response. */
static int http_write_body(struct lws *wsi, http_pss_t *pss)
{
	unsigned char buf[LWS_PRE + HTTP_CHUNK];
	size_t left = pss->body.len - pss->off;
	size_t n = left < HTTP_CHUNK ? left : HTTP_CHUNK;
	bool last = n == left;
	if(n) {
		memcpy(buf + LWS_PRE, http_buf_data(&pss->body) + pss->off, n);
	}
	if(lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
	   (int)n) {
		return -1;
	}
	pss->off += n;
	if(!last) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	http_buf_free(&pss->body);
	pss->off = 0;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Only same-origin pages may open the WebSocket (or non-browser clients,
 * which send no Origin). */
/* The whole value of request header t, allocated (the caller frees it), or
 * NULL when the request has none.  *failed when it could not be copied whole
 * (out of memory): the caller refuses; a truncated value is never compared. */
static char *http_hdr(struct lws *wsi, enum lws_token_indexes t, bool *failed)
{
	int len = lws_hdr_total_length(wsi, t);
	*failed = false;
	if(len <= 0) {
		return NULL;
	}
	char *v = malloc((size_t)len + 1);
	if(!v || lws_hdr_copy(wsi, v, len + 1, t) != len) {
		free(v);
		*failed = true;
		return NULL;
	}
	return v;
}

/* Only same-origin pages may open the WebSocket (or non-browser clients,
 * which send no Origin).  Origin and Host are compared whole, whatever
 * their length. */
static bool http_ws_allowed(struct lws *wsi)
{
	char uri[64];
	if(lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/ws") != 0) {
		return false;
	}
	bool failed;
	char *origin = http_hdr(wsi, WSI_TOKEN_ORIGIN, &failed);
	if(!origin) {
		return !failed;
	}
	char *host = http_hdr(wsi, WSI_TOKEN_HOST, &failed);
	const char *scheme = lws_is_ssl(wsi) ? "https://" : "http://";
	size_t sl = strlen(scheme);
	bool ok = host && strncmp(origin, scheme, sl) == 0 && strcmp(origin + sl, host) == 0;
	free(origin);
	free(host);
	return ok;
}

static int http_ws_write(struct lws *wsi, http_buf_t *msg)
{
	if(msg->oom || !msg->mem) {
		return -1;
	}
	int n = lws_write(wsi, (unsigned char *)http_buf_data(msg), msg->len, LWS_WRITE_TEXT);
	return n < (int)msg->len ? -1 : 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	http_t *h = ctx ? lws_context_user(ctx) : NULL;
	http_pss_t *pss = user;
	switch(reason) {
	case LWS_CALLBACK_HTTP: {
		char path[256];
		size_t n = len < sizeof(path) - 1 ? len : sizeof(path) - 1;
		memcpy(path, in ? in : "", in ? n : 0);
		path[in ? n : 0] = '\0';
		return http_on_request(h, wsi, pss, path);
	}
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if(!pss || !pss->body.mem) {
			return 0;
		}
		return http_write_body(wsi, pss);
	case LWS_CALLBACK_CLOSED_HTTP:
		if(pss) {
			http_buf_free(&pss->body);
		}
		return 0;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		if(!http_ws_allowed(wsi)) {
			http_log_status(h, wsi, 403, "/ws (refused: wrong path or foreign origin)");
			return 1;
		}
		if(h->ws_clients >= HTTP_MAX_WS) {
			http_log_status(h, wsi, 503, "/ws (refused: too many status pages open)");
			return 1;
		}
		return 0;
	case LWS_CALLBACK_ESTABLISHED:
		memset(pss, 0, sizeof(*pss));
		pss->is_ws = true;
		pss->need_history = true;
		h->ws_clients++;
		lws_callback_on_writable(wsi);
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE: {
		if(pss->need_history) {
			http_buf_t hist = {0};
			http_build_history(h, &hist);
			int rc = http_ws_write(wsi, &hist);
			http_buf_free(&hist);
			pss->need_history = false;
			if(rc) {
				return -1;
			}
			pss->sent_seq = h->seq; /* the history carried the latest sample */
			return 0;
		}
		if(h->seq && pss->sent_seq != h->seq) {
			pss->sent_seq = h->seq;
			return http_ws_write(wsi, &h->live);
		}
		return 0;
	}
	case LWS_CALLBACK_RECEIVE:
		return 0; /* the page sends nothing we need */
	case LWS_CALLBACK_CLOSED:
		if(pss && pss->is_ws) {
			h->ws_clients--;
			pss->is_ws = false;
		}
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		return 0; /* woken by http_stop: the loop checks h->stop */
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols http_protocols[] = {
    {"plantgate-status", http_callback, sizeof(http_pss_t), 1024, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* ----------------------------------------------------------- the thread */

static void http_on_tick(lws_sorted_usec_list_t *sul)
{
	http_t *h = lws_container_of(sul, http_t, sul);
	http_sample(h);
	lws_callback_on_writable_all_protocol(h->ctx, &http_protocols[0]);
	lws_sul_schedule(h->ctx, 0, &h->sul, http_on_tick, LWS_US_PER_SEC);
}

static void http_on_links_tick(lws_sorted_usec_list_t *sul)
{
	http_t *h = lws_container_of(sul, http_t, sul_links);
	int state[2] = {atomic_load(&h->b->ctr.plant_state), atomic_load(&h->b->ctr.cloud_state)};
	http_track_links(h, state, util_mono_ms());
	lws_sul_schedule(h->ctx, 0, &h->sul_links, http_on_links_tick, 100 * LWS_US_PER_MS);
}

/* libwebsockets' own lines (errors and warnings), rate limited: a failing
 * accept() or a flood of bad requests must not flood the log. */
static void http_lws_log(int level, const char *line)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static http_ratelimit_t rl;
	pthread_mutex_lock(&mu);
	bool allow = http_rate_allow(&rl, "http.lws_suppressed");
	pthread_mutex_unlock(&mu);
	if(!allow) {
		return;
	}
	char q[600];
	size_t n = strlen(line);
	char copy[512];
	util_strlcpy(copy, line, sizeof(copy));
	if(n && n < sizeof(copy) && copy[n - 1] == '\n') {
		copy[n - 1] = '\0';
	}
	blog(level == LLL_ERR ? BLOG_WARN : BLOG_DEBUG, "http.lws", "msg=%s",
	     util_log_quote(copy, q, sizeof(q)));
}

static void *http_run(void *arg)
{
	http_t *h = arg;
	util_thread_name("pg-http");
	http_sample(h);
	lws_sul_schedule(h->ctx, 0, &h->sul, http_on_tick, LWS_US_PER_SEC);
	lws_sul_schedule(h->ctx, 0, &h->sul_links, http_on_links_tick, 100 * LWS_US_PER_MS);
	while(!atomic_load(&h->stop)) {
		if(lws_service(h->ctx, 0) < 0) {
			break;
		}
	}
	lws_sul_cancel(&h->sul);
	lws_sul_cancel(&h->sul_links);
	OPENSSL_thread_stop();
	return NULL;
}

/* How many connections the HTTP port may hold: http_max_connections, less
 * when the process's file descriptor limit (RLIMIT_NOFILE) would not leave
 * HTTP_FD_RESERVE to the rest of the bridge (then logged once). */
static int64_t http_fd_budget(const bconf_t *cfg)
{
	int64_t want = cfg->http_max_connections;
	struct rlimit rl;
	if(getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
		return want;
	}
	int64_t room = (int64_t)rl.rlim_cur - HTTP_FD_RESERVE - HTTP_FD_OVERHEAD;
	if(room < want) {
		int64_t got = room < 4 ? 4 : room;
		blog(BLOG_WARN, "http.max_connections_lowered",
		     "configured=%lld used=%lld nofile=%llu reserve=%d note=\"the file descriptor limit "
		     "leaves too few for http_max_connections next to the links and the queue\" "
		     "fix=\"raise LimitNOFILE (systemd) or lower http_max_connections\"",
		     (long long)want, (long long)got, (unsigned long long)rl.rlim_cur, HTTP_FD_RESERVE);
		return got;
	}
	return want;
}

int http_create(bridge_t *b, http_t **out, char *err, size_t errlen)
{
	const bconf_t *cfg = b->cfg;
	*out = NULL;
	http_t *h = calloc(1, sizeof(*h));
	if(!h) {
		util_snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->b = b;
	h->start_ms = util_wall_ms();
	lws_set_log_level(LLL_ERR | LLL_WARN, http_lws_log);

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = (int)cfg->http_port;
	info.iface = cfg->http_host;
	info.protocols = http_protocols;
	info.user = h;
	info.uid = (uid_t)-1;
	info.gid = (gid_t)-1;
	info.vhost_name = "plantgate-bridge";
	info.server_string = "plantgate-bridge";
	info.timeout_secs = 10;
	h->max_conns = http_fd_budget(cfg);
	info.fd_limit_per_thread = (unsigned)(h->max_conns + HTTP_FD_OVERHEAD);
	info.keepalive_timeout = 30;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
	if(strchr(cfg->http_host, ':')) {
		info.options &= ~(uint64_t)LWS_SERVER_OPTION_DISABLE_IPV6;
	}
	if(cfg->http_tls_cert) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = cfg->http_tls_cert;
		info.ssl_private_key_filepath = cfg->http_tls_key;
		info.alpn = "http/1.1";
		if(cfg->http_tls_client_ca) {
			info.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
			info.ssl_ca_filepath = cfg->http_tls_client_ca;
		}
	}
	h->ctx = lws_create_context(&info);
	if(!h->ctx) {
		util_snprintf(err, errlen,
		              "http_listen %s: cannot serve the status page and metrics there (address "
		              "in use, not an address of this host%s); choose another address or port, or "
		              "set `http_listen off`",
		              cfg->http_listen, cfg->http_tls_cert ? ", or the TLS files cannot be used" : "");
		free(h);
		return -1;
	}
	*out = h;
	return 0;
}

int http_start(http_t *h)
{
	if(pthread_create(&h->thread, NULL, http_run, h) != 0) {
		return -1;
	}
	h->started = true;
	const bconf_t *cfg = h->b->cfg;
	blog(BLOG_INFO, "http.listening", "address=%s url=%s://%s%s%s:%lld/ client_cert=%s max_connections=%lld",
	     cfg->http_listen, cfg->http_tls_cert ? "https" : "http",
	     strchr(cfg->http_host, ':') ? "[" : "", cfg->http_host,
	     strchr(cfg->http_host, ':') ? "]" : "", (long long)cfg->http_port,
	     cfg->http_tls_client_ca ? "required" : "no", (long long)h->max_conns);
	return 0;
}

void http_stop(http_t *h)
{
	if(!h) {
		return;
	}
	if(h->started) {
		atomic_store(&h->stop, true);
		lws_cancel_service(h->ctx);
		pthread_join(h->thread, NULL);
	}
	lws_context_destroy(h->ctx);
	http_buf_free(&h->live);
	free(h);
}
