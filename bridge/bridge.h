/*
 * bridge.h — runtime state shared by the threads of plantgate-bridge:
 *
 *   main thread   main.c: signals (SIGTERM/SIGINT stop, SIGHUP reloads the
 *                 forward rules)
 *   plant thread  plant.c: subscribes to the plant broker, reads batches and
 *                 lets each batch's PUBACKs out once its commit returned
 *   commit thread plant.c: commits one batch at a time to the queue while
 *                 the plant thread reads the next
 *   cloud thread  cloud.c: publishes from the queue in sequence order, deletes
 *                 on the cloud's PUBACK
 *   HTTP thread   http.c: /healthz, /metrics and the status page
 *
 * Both MQTT links run on link.c.  The threads meet only in the queue
 * (queue.h, internally locked) and in the counters below, which http.c reads.
 */
#ifndef PG_BRIDGE_H
#define PG_BRIDGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bconf.h"
#include "envelope.h"
#include "queue.h"
#include "secrets.h"

enum link_state { LINK_DOWN = 0, LINK_CONNECTING = 1, LINK_UP = 2 };

/* Why the plant thread does not read from the plant broker (which then holds
 * the messages): bits of bridge_counters_t.ingest_blocked, each shown by
 * /healthz, /metrics and the status page (http.c names them). */
enum bridge_block {
	BRIDGE_BLOCK_QUEUE_FULL = 1 << 0,   /* queue_max_* reached, queue_when_full backpressure */
	BRIDGE_BLOCK_DISK_LOW = 1 << 1,     /* free disk below queue_min_free_disk */
	BRIDGE_BLOCK_WRITE_FAILED = 1 << 2, /* a commit failed (disk full, I/O error): retrying */
	BRIDGE_BLOCK_OUT_OF_MEMORY = 1 << 3 /* a batch could not be held: reconnecting */
};

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

/* Why a way to the cloud through cloud_proxy failed (tunnel.c), for the
 * metric plantgate_bridge_cloud_proxy_failures_total{reason}. */
enum bridge_proxy_fail {
	BRIDGE_PROXY_UNREACHABLE = 0, /* no TCP connection to the proxy */
	BRIDGE_PROXY_REFUSED,         /* CONNECT answered with an error (403, 502, ...) */
	BRIDGE_PROXY_AUTH,            /* 407: no or wrong credentials */
	BRIDGE_PROXY_BAD_REPLY,       /* not HTTP, or no answer in time */
	BRIDGE_PROXY_TLS,             /* https:// proxy: TLS with the proxy failed */
	BRIDGE_PROXY_CLOSED,          /* an open tunnel ended without the bridge closing it */
	BRIDGE_PROXY_FAIL_KINDS
};

/* Monotonic counters (never reset) and gauges for operators and metrics. */
typedef struct bridge_counters {
	atomic_uint_fast64_t in_received;  /* PUBLISH received from the plant */
	atomic_uint_fast64_t in_queued;    /* committed to the queue */
	atomic_uint_fast64_t in_unmatched; /* no forward rule (never leaves) */
	atomic_uint_fast64_t in_rejected;  /* too large / bad cloud topic */
	atomic_uint_fast64_t out_acked;    /* acknowledged by the cloud, deleted */
	atomic_uint_fast64_t out_refused;  /* refusals: v5 PUBACK reason >= 0x80, or over the CONNACK limits */
	atomic_uint_fast64_t in_redelivered; /* stored already: a redelivery, acked, not stored */
	atomic_uint_fast64_t out_dead_lettered; /* moved to the dead-letter table */
	atomic_uint_fast64_t dropped_oldest;
	atomic_uint_fast64_t expired;
	atomic_uint_fast64_t cloud_ignored; /* messages the cloud sent us (dropped) */
	atomic_uint_fast64_t plant_connects, cloud_connects;
	atomic_uint_fast64_t plant_failures, cloud_failures;
	atomic_int plant_state, cloud_state; /* enum link_state */
	atomic_uint ingest_blocked;          /* enum bridge_block bits; 0 = reading */
	atomic_uint_fast64_t plant_tls_failures, cloud_tls_failures; /* connects failed in TLS */
	atomic_uint_fast64_t proxy_failures[BRIDGE_PROXY_FAIL_KINDS];
	atomic_uint_fast64_t ws_failures; /* wss: upgrade refused or a WebSocket protocol error */
	/* commit latency: per-bucket (not cumulative) counts, count and sum */
	atomic_uint_fast64_t commit_buckets[BRIDGE_COMMIT_BUCKETS];
	atomic_uint_fast64_t commit_count, commit_us_sum;
	/* The pause between two commits' starts in effect now, µs (plant.c:
	 * queue_commit_interval, with auto 0 or PLANT_AUTO_PAUSE_US by rate). */
	atomic_int_fast64_t commit_pause_us;
	/* The pause after the cloud's last refusal, ms; 0 once the cloud takes
	 * a message sent after it (cloud.c: cloud_hold, cloud_acked). */
	atomic_int_fast64_t refusal_pause_ms;
} bridge_counters_t;

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

typedef struct bridge {
	const bconf_t *cfg; /* startup configuration, read-only; owned by main */
	const char *cfg_path; /* its file, for commands named in log lines */
	queue_t *queue;
	atomic_bool stop;  /* set on SIGTERM: finish in-flight work and exit */
	atomic_bool fatal; /* a thread hit an unrecoverable error */
	int wake[2];       /* pipe: the plant thread pokes the cloud thread */
	bool insecure_hostname; /* PLANTGATE_TEST_INSECURE_HOSTNAME=1: tests only */
	int test_commit_delay_ms; /* PLANTGATE_TEST_COMMIT_DELAY_MS: tests only */
	/* The integrity envelope's signing key (sign.c), loaded at start; NULL =
	 * messages leave unsigned.  Owned by main; used by the cloud thread. */
	const envelope_key_t *sign_key;

	pthread_mutex_t mu;
	whitelist_t *pending_whitelist; /* from SIGHUP, taken by the plant thread */

	pthread_mutex_t connect_mu; /* serialises the first TLS connect (link.c) */
	atomic_bool tls_ready;

	secrets_t secrets; /* TLS contexts, loaded before any privilege drop */

	bridge_counters_t ctr;
} bridge_t;

/* The thread bodies (pthread_create); the argument is the bridge_t. */
void *plant_run(void *bridge);
void *cloud_run(void *bridge);

#endif
