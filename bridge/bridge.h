/*
 * bridge.h — runtime state shared by the threads of plantgate-bridge:
 *
 *   main thread   signals (SIGTERM/SIGINT stop, SIGHUP reloads the whitelist)
 *   plant thread  plant.c: subscribes to the plant broker, commits each read
 *                 batch to the queue, then lets the PUBACKs out
 *   cloud thread  cloud.c: publishes from the queue in sequence order, deletes
 *                 on the cloud's PUBACK
 *
 * The two links meet only in the queue (queue.h, internally locked) and in
 * the counters below, which the /metrics endpoint of issue 6 will read.
 */
#ifndef PG_BRIDGE_H
#define PG_BRIDGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "bconf.h"
#include "envelope.h"
#include "queue.h"
#include "secrets.h"

enum link_state { LINK_DOWN = 0, LINK_CONNECTING = 1, LINK_UP = 2 };

/* Commit latency histogram (plant side, one observation per batch commit):
 * upper bounds in microseconds of the buckets, the last is +Inf. */
#define BRIDGE_COMMIT_BUCKETS 12
static inline int64_t bridge_commit_bound_us(int i)
{
	switch(i) {
	case 0: return 500;
	case 1: return 1000;
	case 2: return 2500;
	case 3: return 5000;
	case 4: return 10000;
	case 5: return 25000;
	case 6: return 50000;
	case 7: return 100000;
	case 8: return 250000;
	case 9: return 500000;
	case 10: return 1000000;
	default: return INT64_MAX;
	}
}

/* Monotonic counters (never reset) and gauges for operators and metrics. */
typedef struct bridge_counters {
	atomic_uint_fast64_t in_received;  /* PUBLISH received from the plant */
	atomic_uint_fast64_t in_queued;    /* committed to the queue */
	atomic_uint_fast64_t in_unmatched; /* no forward rule (never leaves) */
	atomic_uint_fast64_t in_rejected;  /* too large / bad cloud topic */
	atomic_uint_fast64_t out_acked;    /* acknowledged by the cloud, deleted */
	atomic_uint_fast64_t out_refused;  /* refused by the cloud (v5 reason >= 0x80) */
	atomic_uint_fast64_t dropped_oldest;
	atomic_uint_fast64_t expired;
	atomic_uint_fast64_t cloud_ignored; /* messages the cloud sent us (dropped) */
	atomic_uint_fast64_t plant_connects, cloud_connects;
	atomic_uint_fast64_t plant_failures, cloud_failures;
	atomic_int plant_state, cloud_state; /* enum link_state */
	atomic_bool ingest_blocked;          /* backpressure or disk error */
	atomic_uint_fast64_t plant_tls_failures, cloud_tls_failures; /* connects failed in TLS */
	/* commit latency: per-bucket (not cumulative) counts, count and sum */
	atomic_uint_fast64_t commit_buckets[BRIDGE_COMMIT_BUCKETS];
	atomic_uint_fast64_t commit_count, commit_us_sum;
} bridge_counters_t;

static inline int64_t bridge_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Record one batch commit that took `us` microseconds. */
static inline void bridge_commit_observe(bridge_counters_t *c, int64_t us)
{
	int i = 0;
	while(i < BRIDGE_COMMIT_BUCKETS - 1 && us > bridge_commit_bound_us(i)) {
		i++;
	}
	atomic_fetch_add(&c->commit_buckets[i], 1);
	atomic_fetch_add(&c->commit_count, 1);
	atomic_fetch_add(&c->commit_us_sum, (uint64_t)(us < 0 ? 0 : us));
}

/* True when a failed connect's reason says the TLS layer refused it. */
static inline bool bridge_reason_is_tls(const char *reason)
{
	return strstr(reason, "OpenSSL") || strstr(reason, "SSL routines") ||
	       strstr(reason, "TLS") || strstr(reason, "certificate");
}

typedef struct bridge {
	const bconf_t *cfg; /* startup configuration, read-only; owned by main */
	queue_t *queue;
	atomic_bool stop;  /* set on SIGTERM: finish in-flight work and exit */
	atomic_bool fatal; /* a thread hit an unrecoverable error */
	int wake[2];       /* pipe: the plant thread pokes the cloud thread */
	bool insecure_hostname; /* PLANTGATE_TEST_INSECURE_HOSTNAME=1: tests only */
	/* The integrity envelope's signing key (sign.c), loaded at start; NULL =
	 * messages leave unsigned.  Owned by main; used by the cloud thread. */
	const envelope_key_t *sign_key;

	pthread_mutex_t mu;
	whitelist_t *pending_whitelist; /* from SIGHUP, taken by the plant thread */

	pthread_mutex_t connect_mu; /* see bridge_connect */
	atomic_bool tls_ready;

	secrets_t secrets; /* TLS contexts, loaded before any privilege drop */

	bridge_counters_t ctr;
} bridge_t;

void *plant_run(void *bridge);
void *cloud_run(void *bridge);

struct mosquitto;
struct mqtt5__property;
/* mosquitto_connect_bind_v5, but the first TLS connects of the two threads
 * are serialised: libmosquitto 2.0.11 creates a process-wide OpenSSL
 * UI_METHOD lazily, without a lock, on the first TLS connect, and two
 * threads racing there leak one (found by ASan).  Once one connect has
 * succeeded the object exists and connects run in parallel. */
int bridge_connect(bridge_t *b, struct mosquitto *mosq, const char *host, int port, int keepalive,
                   const struct mqtt5__property *props);

/* mosquitto_loop_read() reads one packet per call (plus what TLS already
 * decrypted).  This keeps reading while the socket or TLS has data, up to
 * max_reads packets, so one commit (plant side) or one delete transaction
 * (cloud side) covers everything that arrived together: group commit.
 * With `bytes` non-NULL, also stops once *bytes (updated by the message
 * callback) reaches max_bytes.  Returns the first error, or MOSQ_ERR_SUCCESS. */
int bridge_read_available(struct mosquitto *mosq, int max_reads, const size_t *bytes, size_t max_bytes);
/* True when TLS has read data off the socket that nobody has taken yet.  Both
 * links read ahead (SSL_CTX_set_read_ahead: one read() for many records, not
 * two per record), so such data is invisible to poll(): the loops check this
 * first and do not wait when it is true. */
bool bridge_tls_buffered(struct mosquitto *mosq);
/* Writes go through a buffer below TLS once the handshake is done, so the
 * PUBACKs of a batch (plant side) or the publishes of a page (cloud side)
 * leave in one write() instead of one each.  bridge_write() lets libmosquitto
 * write what it has queued, then flushes; bridge_want_write() is
 * mosquitto_want_write() or bytes still buffered (the socket was full). */
#define BRIDGE_TLS_WBUF (64 * 1024)
int bridge_write(struct mosquitto *mosq);
/* Flush and remove the buffer, then send DISCONNECT (graceful shutdown). */
int bridge_disconnect(struct mosquitto *mosq);
bool bridge_want_write(struct mosquitto *mosq);

/* Clocks and randomness for the I/O side (the pure core gets them injected). */
int64_t bridge_wall_ms(void);
int64_t bridge_mono_ms(void);
uint32_t bridge_random(void);

/* True when a cloud topic respects the profile's limits (checked per message
 * because a '#' rule cannot be bounded at config check). */
bool bridge_remote_topic_ok(const bconf_t *cfg, const char *topic, const char **why);

#endif
