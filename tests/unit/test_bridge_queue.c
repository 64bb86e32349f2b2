/*
 * test_bridge_queue.c — the durable queue (bridge/queue.c) on real SQLite
 * files in a private temporary directory: push/peek/ack in sequence order,
 * sequence numbers never reused (also when the queue empties and after a
 * reopen), drop-oldest and backpressure limits, TTL, contents surviving a
 * reopen, a second opener refused, and corrupt or foreign files refused with
 * recovery steps and left untouched.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "queue.h"

#define T0 INT64_C(1714564800000)

typedef struct fx {
	char dir[64];
	char path[128];
} fx_t;

static int setup(void **state)
{
	fx_t *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/pgq-XXXXXX");
	if(!mkdtemp(f->dir)) {
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/q.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx_t *f = *state;
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if(system(cmd) != 0) {
		return -1;
	}
	free(f);
	return 0;
}

static const queue_limits_t big = {.max_bytes = 1u << 30, .max_messages = 1000000};

static queue_t *open_ok(const char *path, const queue_limits_t *lim)
{
	char err[2048];
	queue_t *q = NULL;
	queue_rc_t rc = queue_open(path, lim, &q, err, sizeof(err));
	if(rc != QUEUE_OK) {
		fail_msg("queue_open: %s", err);
	}
	return q;
}

static void push_n(queue_t *q, int from, int n, int64_t expires, int64_t *dropped)
{
	queue_msg_t m[64];
	char payload[64][16];
	assert_true(n <= 64);
	for(int i = 0; i < n; i++) {
		snprintf(payload[i], sizeof(payload[i]), "m%d", from + i);
		m[i] = (queue_msg_t){.rx_ms = T0 + from + i,
		                     .expires_ms = expires,
		                     .qos = 1,
		                     .local_topic = "plant/a",
		                     .remote_topic = "cloud/a",
		                     .payload = payload[i],
		                     .len = strlen(payload[i])};
	}
	char err[256];
	assert_int_equal(queue_push(q, m, (size_t)n, dropped, err, sizeof(err)), QUEUE_OK);
}

/* Peek everything after `after`; returns the count, payloads in out. */
static size_t peek_all(queue_t *q, int64_t after, int64_t now, char out[][16], int64_t *seqs,
                       size_t max)
{
	queue_msg_t m[128];
	size_t n = 0;
	assert_true(max <= 128);
	assert_int_equal(queue_peek(q, after, now, m, max, &n), QUEUE_OK);
	for(size_t i = 0; i < n; i++) {
		if(out) {
			snprintf(out[i], 16, "%.*s", (int)m[i].len, (const char *)m[i].payload);
		}
		if(seqs) {
			seqs[i] = m[i].seq;
		}
		queue_msg_clear(&m[i]);
	}
	return n;
}

static void test_push_peek_ack_order(void **state)
{
	fx_t *f = *state;
	queue_t *q = open_ok(f->path, &big);
	push_n(q, 0, 10, 0, NULL);
	char p[128][16];
	int64_t seqs[128];
	assert_int_equal(peek_all(q, 0, T0, p, seqs, 4), 4);
	assert_string_equal(p[0], "m0");
	assert_string_equal(p[3], "m3");
	/* Paging: after the last seen seq. */
	assert_int_equal(peek_all(q, seqs[3], T0, p, NULL, 100), 6);
	assert_string_equal(p[0], "m4");
	assert_string_equal(p[5], "m9");
	queue_stats_t st;
	queue_get_stats(q, &st);
	assert_int_equal(st.messages, 10);
	assert_int_equal(st.bytes, 10 * (2 + 7 + 7));
	assert_int_equal(st.oldest_rx_ms, T0);
	/* Ack out of order; unknown seqs are ignored. */
	int64_t ack[] = {seqs[2], seqs[0], 9999};
	assert_int_equal(queue_ack(q, ack, 3), QUEUE_OK);
	assert_int_equal(peek_all(q, 0, T0, p, NULL, 100), 8);
	assert_string_equal(p[0], "m1");
	assert_string_equal(p[1], "m3");
	queue_get_stats(q, &st);
	assert_int_equal(st.messages, 8);
	queue_close(q);
	queue_close(NULL);
}

/* Many acks at once are split into several delete transactions (the queue
 * bounds each one): all are deleted and the counters stay exact. */
static void test_ack_many(void **state)
{
	fx_t *f = *state;
	queue_t *q = open_ok(f->path, &big);
	for(int i = 0; i < 5; i++) {
		push_n(q, i * 60, 60, 0, NULL);
	}
	int64_t seqs[300];
	queue_msg_t m[128];
	size_t got = 0;
	while(got < 300) {
		size_t n = 0;
		assert_int_equal(queue_peek(q, got ? seqs[got - 1] : 0, T0, m, 128, &n), QUEUE_OK);
		assert_true(n > 0);
		for(size_t i = 0; i < n; i++) {
			seqs[got++] = m[i].seq;
			queue_msg_clear(&m[i]);
		}
	}
	/* Keep the last one; delete 299 in one call. */
	assert_int_equal(queue_ack(q, seqs, 299), QUEUE_OK);
	queue_stats_t st;
	queue_get_stats(q, &st);
	assert_int_equal(st.messages, 1);
	assert_int_equal(st.bytes, 4 + 7 + 7); /* "m299" */
	char p[4][16];
	assert_int_equal(peek_all(q, 0, T0, p, NULL, 4), 1);
	assert_string_equal(p[0], "m299");
	queue_close(q);
}

/* The cloud side reads through its own connection while the plant side
 * commits: every committed message is seen exactly once and in order, and
 * the WAL stays within a few checkpoint intervals. */
typedef struct reader_arg {
	queue_t *q;
	int want;
	int seen;
	bool in_order;
} reader_arg_t;

static void *reader_main(void *arg)
{
	reader_arg_t *r = arg;
	int64_t last = 0;
	queue_msg_t m[64];
	r->in_order = true;
	for(int spins = 0; r->seen < r->want && spins < 2000000; spins++) {
		size_t n = 0;
		if(queue_peek(r->q, last, T0, m, 64, &n) != QUEUE_OK) {
			r->in_order = false;
			return NULL;
		}
		for(size_t i = 0; i < n; i++) {
			char want[16];
			snprintf(want, sizeof(want), "m%d", r->seen);
			if(m[i].len != strlen(want) || memcmp(m[i].payload, want, m[i].len)) {
				r->in_order = false;
			}
			last = m[i].seq;
			r->seen++;
			queue_msg_clear(&m[i]);
		}
		if(n && queue_ack(r->q, &last, 1) != QUEUE_OK) {
			r->in_order = false; /* no cmocka asserts off the main thread */
			return NULL;
		}
	}
	return NULL;
}

static void test_reader_beside_writer(void **state)
{
	fx_t *f = *state;
	queue_t *q = open_ok(f->path, &big);
	reader_arg_t r = {.q = q, .want = 64 * 200};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
	for(int i = 0; i < 200; i++) {
		push_n(q, i * 64, 64, 0, NULL);
	}
	pthread_join(th, NULL);
	assert_true(r.in_order);
	assert_int_equal(r.seen, r.want);
	char wal[600];
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	struct stat st;
	if(stat(wal, &st) == 0) {
		/* Pushes checkpoint past 64 pages, deletes alone past 256 (1 MiB),
		 * plus one transaction. */
		assert_true(st.st_size < 1280 * 1024);
	}
	queue_close(q);
}

static void test_seq_never_reused(void **state)
{
	fx_t *f = *state;
	queue_t *q = open_ok(f->path, &big);
	push_n(q, 0, 3, 0, NULL);
	int64_t seqs[128];
	assert_int_equal(peek_all(q, 0, T0, NULL, seqs, 100), 3);
	int64_t last = seqs[2];
	assert_int_equal(queue_ack(q, seqs, 3), QUEUE_OK);
	push_n(q, 3, 1, 0, NULL); /* empty queue: a plain rowid would restart */
	assert_int_equal(peek_all(q, 0, T0, NULL, seqs, 100), 1);
	assert_true(seqs[0] > last);
	last = seqs[0];
	assert_int_equal(queue_ack(q, seqs, 1), QUEUE_OK);
	queue_close(q);
	q = open_ok(f->path, &big); /* and across a restart */
	push_n(q, 4, 1, 0, NULL);
	assert_int_equal(peek_all(q, 0, T0, NULL, seqs, 100), 1);
	assert_true(seqs[0] > last);
	queue_close(q);
}

static void test_reopen_keeps_messages(void **state)
{
	fx_t *f = *state;
	queue_t *q = open_ok(f->path, &big);
	push_n(q, 0, 5, 0, NULL);
	queue_close(q);
	q = open_ok(f->path, &big);
	queue_stats_t st;
	queue_get_stats(q, &st);
	assert_int_equal(st.messages, 5);
	assert_int_equal(st.bytes, 5 * 16);
	char p[128][16];
	assert_int_equal(peek_all(q, 0, T0, p, NULL, 100), 5);
	assert_string_equal(p[4], "m4");
	queue_close(q);
}

static void test_second_opener_refused(void **state)
{
	fx_t *f = *state;
	queue_t *q = open_ok(f->path, &big);
	queue_t *q2 = NULL;
	char err[2048];
	assert_int_equal(queue_open(f->path, &big, &q2, err, sizeof(err)), QUEUE_ERR_OPEN);
	assert_null(q2);
	assert_non_null(strstr(err, "in use by another process"));
	queue_close(q);
}

static void test_backpressure_limit(void **state)
{
	fx_t *f = *state;
	queue_limits_t lim = {.max_bytes = 1u << 30, .max_messages = 5, .when_full = QUEUE_BACKPRESSURE};
	queue_t *q = open_ok(f->path, &lim);
	push_n(q, 0, 4, 0, NULL);
	assert_false(queue_is_full(q));
	int64_t dropped = -1;
	push_n(q, 4, 3, 0, &dropped); /* a batch is never split: 7 > 5 is allowed */
	assert_int_equal(dropped, 0);
	assert_true(queue_is_full(q));
	int64_t seqs[128];
	assert_int_equal(peek_all(q, 0, T0, NULL, seqs, 3), 3);
	assert_int_equal(queue_ack(q, seqs, 3), QUEUE_OK);
	assert_false(queue_is_full(q));
	queue_close(q);
}

static void test_drop_oldest(void **state)
{
	fx_t *f = *state;
	queue_limits_t lim = {.max_bytes = 1u << 30, .max_messages = 5, .when_full = QUEUE_DROP_OLDEST};
	queue_t *q = open_ok(f->path, &lim);
	push_n(q, 0, 5, 0, NULL);
	int64_t dropped = 0;
	push_n(q, 5, 3, 0, &dropped);
	assert_int_equal(dropped, 3);
	char p[128][16];
	assert_int_equal(peek_all(q, 0, T0, p, NULL, 100), 5);
	assert_string_equal(p[0], "m3");
	assert_string_equal(p[4], "m7");
	queue_stats_t st;
	queue_get_stats(q, &st);
	assert_int_equal(st.dropped_oldest, 3);
	assert_int_equal(st.messages, 5);
	/* By bytes: each message is 16 bytes. */
	queue_limits_t lb = {.max_bytes = 48, .max_messages = 100, .when_full = QUEUE_DROP_OLDEST};
	queue_set_limits(q, &lb);
	push_n(q, 8, 1, 0, &dropped);
	assert_int_equal(dropped, 3);
	assert_int_equal(peek_all(q, 0, T0, p, NULL, 100), 3);
	assert_string_equal(p[0], "m6");
	/* A batch larger than the limit keeps itself whole. */
	push_n(q, 9, 5, 0, &dropped);
	assert_int_equal(dropped, 3);
	assert_int_equal(peek_all(q, 0, T0, p, NULL, 100), 5);
	assert_string_equal(p[0], "m9");
	queue_close(q);
}

static void test_ttl(void **state)
{
	fx_t *f = *state;
	queue_t *q = open_ok(f->path, &big);
	push_n(q, 0, 2, T0 + 1000, NULL);
	push_n(q, 2, 2, 0, NULL);
	char p[128][16];
	assert_int_equal(peek_all(q, 0, T0 + 999, p, NULL, 100), 4);
	/* Expired messages are not handed out, even before they are deleted. */
	assert_int_equal(peek_all(q, 0, T0 + 1000, p, NULL, 100), 2);
	assert_string_equal(p[0], "m2");
	int64_t n = 0;
	assert_int_equal(queue_expire(q, T0 + 999, &n), QUEUE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(queue_expire(q, T0 + 5000, &n), QUEUE_OK);
	assert_int_equal(n, 2);
	queue_stats_t st;
	queue_get_stats(q, &st);
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.expired, 2);
	queue_close(q);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

static size_t file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (size_t)st.st_size;
}

static void test_garbage_file_refused_untouched(void **state)
{
	fx_t *f = *state;
	char junk[8192];
	for(size_t i = 0; i < sizeof(junk); i++) {
		junk[i] = (char)(i * 7 + 3);
	}
	write_file(f->path, junk, sizeof(junk));
	queue_t *q = NULL;
	char err[2048];
	queue_rc_t rc = queue_open(f->path, &big, &q, err, sizeof(err));
	assert_int_equal(rc, QUEUE_ERR_CORRUPT);
	assert_null(q);
	assert_non_null(strstr(err, "Nothing was deleted"));
	assert_non_null(strstr(err, ".recover"));
	assert_int_equal(file_size(f->path), sizeof(junk));
}

static void test_foreign_database_refused(void **state)
{
	fx_t *f = *state;
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1);", NULL, NULL,
	                              NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	queue_t *q = NULL;
	char err[2048];
	assert_int_equal(queue_open(f->path, &big, &q, err, sizeof(err)), QUEUE_ERR_CORRUPT);
	assert_non_null(strstr(err, "not a plantgate queue"));
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK); /* still there */
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT x FROM t", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_damaged_pages_refused(void **state)
{
	fx_t *f = *state;
	queue_t *q = open_ok(f->path, &big);
	for(int i = 0; i < 20; i++) {
		push_n(q, i * 50, 50, 0, NULL);
	}
	queue_close(q); /* checkpoints the WAL into the main file */
	size_t size = file_size(f->path);
	assert_true(size > 8192);
	/* Scribble over the middle pages, keep the header. */
	FILE *fp = fopen(f->path, "r+b");
	assert_non_null(fp);
	char junk[4096];
	memset(junk, 0xA5, sizeof(junk));
	fseek(fp, 4096, SEEK_SET);
	fwrite(junk, 1, sizeof(junk), fp);
	fclose(fp);
	char err[2048];
	queue_rc_t rc = queue_open(f->path, &big, &q, err, sizeof(err));
	assert_int_equal(rc, QUEUE_ERR_CORRUPT);
	assert_non_null(strstr(err, "Nothing was deleted"));
	assert_int_equal(file_size(f->path), size);
}

static void test_empty_file_refused_untouched(void **state)
{
	fx_t *f = *state;
	write_file(f->path, "", 0);
	queue_t *q = NULL;
	char err[2048];
	assert_int_equal(queue_open(f->path, &big, &q, err, sizeof(err)), QUEUE_ERR_CORRUPT);
	assert_null(q);
	assert_non_null(strstr(err, "empty (0 bytes)"));
	assert_non_null(strstr(err, "Nothing was changed"));
	assert_non_null(strstr(err, ".empty"));
	assert_int_equal(file_size(f->path), 0);
}

/* A creation cut short leaves only "<path>.new", never an empty queue file;
 * the next start builds the queue anew and it works. */
static void test_interrupted_creation_recovers(void **state)
{
	fx_t *f = *state;
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.new", f->path);
	write_file(tmp, "half", 4);
	queue_t *q = open_ok(f->path, &big);
	push_n(q, 0, 3, 0, NULL);
	queue_close(q);
	assert_true(file_size(f->path) > 0);
	struct stat st;
	assert_int_not_equal(stat(tmp, &st), 0);
	q = open_ok(f->path, &big);
	assert_int_equal(peek_all(q, 0, T0, NULL, NULL, 10), 3);
	queue_close(q);
}

/* Issue 12, item 2: a redelivery (same plant packet id, same content) of a
 * stored message is recognised; other content, another id, or a message that
 * left the window of remembered ingests is not. */
static void test_ingest_seen(void **state)
{
	fx_t *f = *state;
	queue_t *q = open_ok(f->path, &big);
	char err[256];
	queue_msg_t m = {.rx_ms = T0, .qos = 1, .local_topic = "plant/a", .remote_topic = "c/a",
	                 .device = "press-01", .payload = "v1", .len = 2, .plant_mid = 7};
	assert_int_equal(queue_push(q, &m, 1, NULL, err, sizeof(err)), QUEUE_OK);
	int64_t seq = -1;
	assert_int_equal(queue_ingest_seen(q, &m, &seq), QUEUE_OK);
	assert_int_equal(seq, 1);
	queue_msg_t other = m;
	other.payload = "v2";
	assert_int_equal(queue_ingest_seen(q, &other, &seq), QUEUE_OK);
	assert_int_equal(seq, 0);
	other = m;
	other.plant_mid = 8;
	assert_int_equal(queue_ingest_seen(q, &other, &seq), QUEUE_OK);
	assert_int_equal(seq, 0);
	other = m;
	other.device = "press-02";
	assert_int_equal(queue_ingest_seen(q, &other, &seq), QUEUE_OK);
	assert_int_equal(seq, 0);
	other = m;
	other.plant_mid = 0; /* QoS 0: never taken for a redelivery */
	assert_int_equal(queue_ingest_seen(q, &other, &seq), QUEUE_OK);
	assert_int_equal(seq, 0);
	/* The same packet id and content again later (ids come round): the
	 * newest stored one is reported. */
	assert_int_equal(queue_push(q, &m, 1, NULL, err, sizeof(err)), QUEUE_OK);
	assert_int_equal(queue_ingest_seen(q, &m, &seq), QUEUE_OK);
	assert_int_equal(seq, 2);
	/* Remembered across a reopen (it is in the file, like the message). */
	queue_close(q);
	q = open_ok(f->path, &big);
	assert_int_equal(queue_ingest_seen(q, &m, &seq), QUEUE_OK);
	assert_int_equal(seq, 2);
	/* 1,100 other messages later it has left the window. */
	queue_msg_t batch[50];
	for(int i = 0; i < 22; i++) {
		for(int j = 0; j < 50; j++) {
			batch[j] = m;
			batch[j].plant_mid = 100 + j;
		}
		assert_int_equal(queue_push(q, batch, 50, NULL, err, sizeof(err)), QUEUE_OK);
	}
	assert_int_equal(queue_ingest_seen(q, &m, &seq), QUEUE_OK);
	assert_int_equal(seq, 0);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM ingest", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_true(sqlite3_column_int(st, 0) <= 1024);
	sqlite3_finalize(st);
	sqlite3_close(db);
	queue_close(q);
}

typedef struct dl_seen {
	int n;
	int64_t seq[8];
	char reason[8][64];
	int attempts[8];
	char payload[8][16];
} dl_seen_t;

static void dl_collect(void *arg, const queue_dead_t *d)
{
	dl_seen_t *s = arg;
	if(s->n < 8) {
		s->seq[s->n] = d->msg.seq;
		snprintf(s->reason[s->n], sizeof(s->reason[0]), "%s", d->reason);
		s->attempts[s->n] = d->attempts;
		snprintf(s->payload[s->n], sizeof(s->payload[0]), "%.*s", (int)d->msg.len,
		         (const char *)d->msg.payload);
	}
	s->n++;
}

/* Issue 12, item 1: a message moved to the dead letters leaves the queue,
 * is kept with its reason and attempts, and can be listed (also read-only
 * beside the running bridge), replayed under a new seq, or purged. */
static void test_dead_letters(void **state)
{
	fx_t *f = *state;
	queue_t *q = open_ok(f->path, &big);
	push_n(q, 0, 5, T0 + 1000, NULL); /* seqs 1..5, with a ttl */
	bool moved = false;
	assert_int_equal(queue_dead_letter(q, 3, "connection-closed", 5, T0, T0 + 9, &moved), QUEUE_OK);
	assert_true(moved);
	assert_int_equal(queue_dead_letter(q, 3, "again", 1, T0, T0, &moved), QUEUE_OK);
	assert_false(moved);
	queue_stats_t st;
	queue_get_stats(q, &st);
	assert_int_equal(st.messages, 4);
	assert_int_equal(st.dead_letters, 1);
	int64_t seqs[8];
	assert_int_equal(peek_all(q, 0, T0, NULL, seqs, 8), 4);
	assert_int_equal(seqs[2], 4);
	/* Listed read-only while the queue is open (the bridge running). */
	queue_t *ro = NULL;
	char err[512];
	assert_int_equal(queue_open_readonly(f->path, &ro, err, sizeof(err)), QUEUE_OK);
	dl_seen_t seen = {0};
	assert_int_equal(queue_dead_list(ro, 0, 0, dl_collect, &seen), QUEUE_OK);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.seq[0], 3);
	assert_string_equal(seen.reason[0], "connection-closed");
	assert_int_equal(seen.attempts[0], 5);
	assert_string_equal(seen.payload[0], "m2");
	int64_t n = 0;
	assert_int_not_equal(queue_dead_replay(ro, 0, &n), QUEUE_OK); /* read-only */
	queue_close(ro);
	/* Replayed: back at the end, under a new seq, without its ttl. */
	assert_int_equal(queue_dead_replay(q, 3, &n), QUEUE_OK);
	assert_int_equal(n, 1);
	queue_get_stats(q, &st);
	assert_int_equal(st.messages, 5);
	assert_int_equal(st.dead_letters, 0);
	char out[8][16];
	assert_int_equal(peek_all(q, 0, T0 + 5000, out, seqs, 8), 1); /* the others expired */
	assert_int_equal(seqs[0], 6);
	assert_string_equal(out[0], "m2");
	/* Purge one, then all. */
	assert_int_equal(queue_dead_letter(q, 1, "r", 5, T0, T0, &moved), QUEUE_OK);
	assert_int_equal(queue_dead_letter(q, 2, "r", 5, T0, T0, &moved), QUEUE_OK);
	assert_int_equal(queue_dead_purge(q, 1, &n), QUEUE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(queue_dead_purge(q, 0, &n), QUEUE_OK);
	assert_int_equal(n, 1);
	queue_get_stats(q, &st);
	assert_int_equal(st.dead_letters, 0);
	assert_int_equal(st.messages, 3);
	queue_close(q);
}

/* A version 2 queue (before ingest and dead_letter) is upgraded in place at
 * open; its messages stay. */
static void test_v2_upgraded(void **state)
{
	fx_t *f = *state;
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
	                 "CREATE TABLE msg(seq INTEGER PRIMARY KEY AUTOINCREMENT, rx_ms INTEGER NOT NULL,"
	                 " expires_ms INTEGER NOT NULL DEFAULT 0, qos INTEGER NOT NULL,"
	                 " retain INTEGER NOT NULL, local_topic TEXT NOT NULL, remote_topic TEXT NOT NULL,"
	                 " payload BLOB NOT NULL, size INTEGER NOT NULL, device TEXT NOT NULL DEFAULT '');"
	                 "INSERT INTO msg(rx_ms, qos, retain, local_topic, remote_topic, payload, size)"
	                 " VALUES(1, 1, 0, 'p/a', 'c/a', 'old', 9);"
	                 "PRAGMA application_id=1346847313; PRAGMA user_version=2;",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	queue_t *q = open_ok(f->path, &big);
	char out[4][16];
	assert_int_equal(peek_all(q, 0, T0, out, NULL, 4), 1);
	assert_string_equal(out[0], "old");
	bool moved = false;
	assert_int_equal(queue_dead_letter(q, 1, "r", 1, T0, T0, &moved), QUEUE_OK);
	assert_true(moved);
	queue_close(q);
}

static void test_unreadable_path(void **state)
{
	queue_t *q = NULL;
	char err[2048];
	assert_int_equal(queue_open("/nonexistent-dir/q.db", &big, &q, err, sizeof(err)),
	                 QUEUE_ERR_OPEN);
	assert_non_null(strstr(err, "/nonexistent-dir/q.db"));
	assert_string_not_equal(queue_strerror(QUEUE_ERR_FULL), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_push_peek_ack_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ack_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reader_beside_writer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_seq_never_reused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_keeps_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_second_opener_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backpressure_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drop_oldest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ttl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage_file_refused_untouched, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_database_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_pages_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_file_refused_untouched, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interrupted_creation_recovers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ingest_seen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dead_letters, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_v2_upgraded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unreadable_path, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
