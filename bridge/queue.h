/*
 * queue.h — the bridge's durable store-and-forward queue: one SQLite file in
 * WAL mode (synchronous=FULL), a row per message, keyed by a sequence number
 * that is never reused (AUTOINCREMENT), so consumers can drop duplicates.
 *
 * The plant side pushes batches (one transaction per batch: group commit) and
 * acknowledges to the plant broker only after queue_push returned 0.  The
 * cloud side reads small pages in sequence order and deletes a message only
 * when the cloud acknowledged it.  Memory use does not depend on the backlog:
 * nothing is cached but two counters.
 *
 * A queue_t may be shared by threads: every call takes an internal mutex.
 * Time is passed in (now_ms, wall clock in ms) so tests control it.
 */
#ifndef PG_QUEUE_H
#define PG_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct queue queue_t;

enum queue_when_full { QUEUE_BACKPRESSURE = 0, QUEUE_DROP_OLDEST = 1 };

typedef struct queue_limits {
	uint64_t max_bytes;   /* sum of payload and topic sizes */
	int64_t max_messages;
	int when_full; /* enum queue_when_full */
} queue_limits_t;

/* One message.  For queue_push the strings and payload are borrowed; from
 * queue_peek they are owned (free with queue_msg_clear). */
typedef struct queue_msg {
	int64_t seq;        /* set by the queue */
	int64_t rx_ms;      /* when the bridge received it */
	int64_t expires_ms; /* 0 = never */
	int qos;
	bool retain;
	char *local_topic;  /* the plant topic */
	char *remote_topic; /* the cloud topic */
	char *device;       /* plantgate-device of the plant message (the verified
	                     * sender); "" or NULL = none.  Signed into the envelope */
	void *payload;
	size_t len;
	int plant_mid; /* queue_push: the plant broker's packet id of a QoS 1
	                * delivery, remembered for queue_ingest_seen; 0 = none */
} queue_msg_t;

typedef struct queue_stats {
	int64_t messages;
	uint64_t bytes;
	int64_t oldest_rx_ms; /* 0 when empty */
	uint64_t dropped_oldest; /* evicted by drop-oldest since open */
	uint64_t expired;        /* removed by TTL since open */
	int64_t dead_letters;    /* messages held in the dead-letter table */
} queue_stats_t;

/* Result codes, append-only. */
typedef enum queue_rc {
	QUEUE_OK = 0,
	QUEUE_ERR_OPEN,    /* cannot open or create the file */
	QUEUE_ERR_CORRUPT, /* the file is not a healthy plantgate queue */
	QUEUE_ERR_FULL,    /* disk full (SQLITE_FULL) */
	QUEUE_ERR_IO,      /* any other SQLite or I/O failure */
	QUEUE_ERR_NOMEM,
} queue_rc_t;

const char *queue_strerror(queue_rc_t rc);

/* Open (creating if absent) the queue at path.  On failure returns an error
 * and a message in err that says what is wrong and how to recover; the file is
 * never deleted or rewritten.  The caller frees *out with queue_close. */
queue_rc_t queue_open(const char *path, const queue_limits_t *lim, queue_t **out, char *err,
                      size_t errlen);
void queue_close(queue_t *q);

/* Change the limits (e.g. after a reload). */
void queue_set_limits(queue_t *q, const queue_limits_t *lim);

/* Store n messages in one transaction: all or none.  With drop-oldest, the
 * oldest messages are evicted in the same transaction to stay within limits
 * (*dropped says how many; may be NULL).  With backpressure the batch is
 * stored even when it takes the queue over its limit (by at most one batch);
 * the caller stops reading (queue_is_full).  err gets SQLite's message. */
queue_rc_t queue_push(queue_t *q, const queue_msg_t *msgs, size_t n, int64_t *dropped, char *err,
                      size_t errlen);

/* Was m (local_topic, device, payload, plant_mid) stored already?  After a
 * crash the plant broker redelivers the messages whose PUBACK never left,
 * with their packet ids; queue_push remembers packet id and a hash of the
 * content of the last 1,024 messages in the same transaction as the
 * messages, so such a redelivery is recognised: *seq is its sequence number,
 * or 0 when not seen (or m has no packet id).  The caller decides when a
 * match can only be a redelivery (see plant.c). */
queue_rc_t queue_ingest_seen(queue_t *q, const queue_msg_t *m, int64_t *seq);

/* --- dead letters --------------------------------------------------------
 * A message the cloud would never take (it drops the connection whenever the
 * message is sent) is moved out of the way into the table dead_letter of the
 * same file: kept, inspectable, replayable by an operator. */

/* One dead letter; strings owned (queue_dead_clear). */
typedef struct queue_dead {
	queue_msg_t msg; /* msg.seq: its original sequence number */
	char *reason;
	int attempts;
	int64_t first_failure_ms, last_failure_ms; /* wall clock */
} queue_dead_t;

void queue_dead_clear(queue_dead_t *d);

/* Move message seq from the queue to the dead letters, in one transaction.
 * QUEUE_OK also when seq is no longer queued (then *moved is false). */
queue_rc_t queue_dead_letter(queue_t *q, int64_t seq, const char *reason, int attempts,
                             int64_t first_failure_ms, int64_t last_failure_ms, bool *moved);

/* Call cb for each dead letter with seq == `seq` (0 = all), in seq order,
 * at most `max` (0 = no limit).  d is borrowed for the call. */
queue_rc_t queue_dead_list(queue_t *q, int64_t seq, int64_t max,
                           void (*cb)(void *arg, const queue_dead_t *d), void *arg);

/* Put dead letter seq (0 = all) back at the end of the queue, under a new
 * sequence number (consumers drop a seq at or below the highest they saw),
 * without its ttl; *n gets how many.  Needs the queue opened by queue_open. */
queue_rc_t queue_dead_replay(queue_t *q, int64_t seq, int64_t *n);

/* Delete dead letter seq (0 = all); *n gets how many. */
queue_rc_t queue_dead_purge(queue_t *q, int64_t seq, int64_t *n);

/* Open the queue for reading only, beside a running bridge (no lock, no
 * schema change): for queue_dead_list and queue_get_stats.  Close with
 * queue_close. */
queue_rc_t queue_open_readonly(const char *path, queue_t **out, char *err, size_t errlen);

/* True when the queue holds max_messages or max_bytes. */
bool queue_is_full(queue_t *q);

/* True when the queue holds at most pct percent of both max_messages and
 * max_bytes: where backpressure ends, so that reading does not flap on and
 * off at the limit while the cloud drains. */
bool queue_has_room(queue_t *q, unsigned pct);

/* Up to max messages with seq > after_seq, in seq order, skipping expired
 * ones (as of now_ms).  *n is set to the number filled; free each with
 * queue_msg_clear. */
queue_rc_t queue_peek(queue_t *q, int64_t after_seq, int64_t now_ms, queue_msg_t *out,
                      size_t max, size_t *n);

/* Delete the given sequence numbers (those not present are ignored), in one
 * transaction. */
queue_rc_t queue_ack(queue_t *q, const int64_t *seqs, size_t n);

/* Delete expired messages; *expired (may be NULL) gets how many. */
queue_rc_t queue_expire(queue_t *q, int64_t now_ms, int64_t *expired);

void queue_get_stats(queue_t *q, queue_stats_t *st);

/* Bytes the queue can still grow by: free space on its file system (for an
 * unprivileged user) plus pages SQLite has freed inside the file and will
 * reuse, less the WAL's size (a checkpoint may need that much again to
 * grow the database file before the WAL shrinks).  The plant side stops
 * reading when this falls below queue_min_free_disk, so deletes and
 * checkpoints always have room. */
queue_rc_t queue_space_free(queue_t *q, uint64_t *bytes);

/* Free what queue_peek allocated in m; m is zeroed.  NULL is fine. */
void queue_msg_clear(queue_msg_t *m);

/* Copy the WAL into the database and truncate it: gives back the disk space
 * the WAL took, e.g. while the disk is low.  Safe at any time. */
queue_rc_t queue_checkpoint(queue_t *q);

#endif
