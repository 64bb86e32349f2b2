/*
 * queue.c — durable message queue in SQLite (see queue.h).
 *
 * Schema (version 3, application_id 'PGBQ'):
 *   msg(seq INTEGER PRIMARY KEY AUTOINCREMENT, rx_ms, expires_ms, qos, retain,
 *       local_topic, remote_topic, payload BLOB, size, device)
 *   ingest(seq INTEGER PRIMARY KEY, mid, hash BLOB)
 *       the plant packet id and content hash of the last QUEUE_INGEST_WINDOW
 *       stored plant messages, written in the same transaction as the
 *       message: what a redelivery after a crash is recognised by
 *   dead_letter(seq INTEGER PRIMARY KEY, <the msg columns>, reason,
 *       attempts, first_failure_ms, last_failure_ms)
 *       messages the cloud would never take, set aside (queue_dead_letter)
 * Versions 1 (no device column) and 2 (no ingest, dead_letter) are migrated
 * in place at open, in one transaction (ALTER TABLE ADD COLUMN with default
 * '' = "no device identity recorded", CREATE TABLE), so no queued message is
 * lost or rewritten.
 * AUTOINCREMENT matters: a plain rowid would restart from 1 once the queue is
 * empty, and consumers that drop duplicates by seq would then drop new data.
 */
#include "queue.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util.h"

#define QUEUE_APP_ID 0x50474251 /* 'PGBQ' */
#define QUEUE_SCHEMA 3
#define QUEUE_SCHEMA_V1 1 /* before the device column; migrated at open */
#define QUEUE_SCHEMA_V2 2 /* before ingest and dead_letter; migrated at open */
/* Stored plant messages remembered for recognising a redelivery: the plant
 * broker redelivers at most its in-flight window (the bridge's Receive
 * Maximum, 256), so this is ample, and far below the 65,535 packet ids after
 * which an id comes round again. */
#define QUEUE_INGEST_WINDOW 1024

#define QUEUE_TABLES_V3                                                                       \
	"CREATE TABLE ingest(seq INTEGER PRIMARY KEY, mid INTEGER NOT NULL, hash BLOB NOT NULL);" \
	"CREATE TABLE dead_letter(seq INTEGER PRIMARY KEY, rx_ms INTEGER NOT NULL,"              \
	" expires_ms INTEGER NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,"            \
	" local_topic TEXT NOT NULL, remote_topic TEXT NOT NULL, payload BLOB NOT NULL,"          \
	" size INTEGER NOT NULL, device TEXT NOT NULL, reason TEXT NOT NULL,"                     \
	" attempts INTEGER NOT NULL, first_failure_ms INTEGER NOT NULL,"                          \
	" last_failure_ms INTEGER NOT NULL);"

/* Two connections, so the cloud side never waits for the plant side's fsync:
 *  - db (mutex mu): every write — the plant side's group commits, the cloud
 *    side's deletes, expiry, checkpoints;
 *  - rdb (mutex rmu): reads only — the cloud side's pages, the oldest row.
 *    WAL mode lets a reader run while a writer commits; it sees the last
 *    committed state, which is all the cloud side may send anyway.
 * The counters have their own small mutex (smu) so /metrics and the status
 * page never wait on disk either.  Lock order: mu, then rmu or smu (never
 * both).  SQLite calls wal_hook after the commit has released its write
 * lock, so waiting there for the reader to finish cannot deadlock. */
struct queue {
	pthread_mutex_t mu, rmu, smu;
	sqlite3 *db, *rdb;
	int lock_fd;
	char *path;
	queue_limits_t lim; /* under mu */
	int64_t count;      /* under smu; changed only with mu held too */
	uint64_t bytes;
	uint64_t dropped_oldest;
	uint64_t expired;
	int64_t dead; /* rows in dead_letter; under smu */
	bool readonly; /* queue_open_readonly: rdb only, no lock */
	bool acking;   /* queue_ack's transactions are running (mu held) */
	sqlite3_stmt *st_insert, *st_delete, *st_oldest, *st_expire, *st_begin, *st_commit;
	sqlite3_stmt *st_ingest, *st_ingest_trim;
	sqlite3_stmt *st_peek, *st_first, *st_seen; /* on rdb */
};

const char *queue_strerror(queue_rc_t rc)
{
	switch(rc) {
	case QUEUE_OK:
		return "ok";
	case QUEUE_ERR_OPEN:
		return "cannot open the queue file";
	case QUEUE_ERR_CORRUPT:
		return "the queue file is corrupt or not a plantgate queue";
	case QUEUE_ERR_FULL:
		return "disk full";
	case QUEUE_ERR_IO:
		return "I/O or database error";
	case QUEUE_ERR_NOMEM:
		return "out of memory";
	}
	return "?";
}

static queue_rc_t map_rc(int rc)
{
	switch(rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return QUEUE_OK;
	case SQLITE_FULL:
		return QUEUE_ERR_FULL;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return QUEUE_ERR_CORRUPT;
	case SQLITE_NOMEM:
		return QUEUE_ERR_NOMEM;
	default:
		return QUEUE_ERR_IO;
	}
}

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Run a prepared statement that returns no rows (BEGIN, COMMIT). */
static int step_once(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Run a one-row, one-integer query. */
static int query_i64(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if(rc) {
		return rc;
	}
	rc = sqlite3_step(st);
	if(rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

static void recovery_hint(char *err, size_t errlen, const char *path, const char *what)
{
	snprintf(err, errlen,
	         "queue '%s': %s. Nothing was deleted. To recover: stop the bridge; keep the file "
	         "(mv '%s' '%s.broken', with its -wal and -shm files if present); salvage what can be "
	         "read with `sqlite3 '%s.broken' .recover | sqlite3 '%s.salvaged'` and inspect it; "
	         "then start the bridge, which creates a new empty queue at '%s' (messages still "
	         "held by the plant broker's persistent session will be delivered)",
	         path, what, path, path, path, path, path);
}

/* Create the tables of an empty database in one transaction. */
static int schema_create(sqlite3 *db)
{
	char sql[2048];
	snprintf(sql, sizeof(sql),
	         "BEGIN IMMEDIATE;"
	         "CREATE TABLE msg(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	         " rx_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0,"
	         " qos INTEGER NOT NULL, retain INTEGER NOT NULL,"
	         " local_topic TEXT NOT NULL, remote_topic TEXT NOT NULL,"
	         " payload BLOB NOT NULL, size INTEGER NOT NULL,"
	         " device TEXT NOT NULL DEFAULT '');"
	         "CREATE INDEX msg_expiry ON msg(expires_ms) WHERE expires_ms > 0;" QUEUE_TABLES_V3
	         "PRAGMA application_id=%d; PRAGMA user_version=%d; COMMIT;",
	         QUEUE_APP_ID, QUEUE_SCHEMA);
	int rc = exec(db, sql);
	if(rc) {
		exec(db, "ROLLBACK");
	}
	return rc;
}

/* Make a new queue at path: built under "<path>.new" and linked into place
 * only once its schema is committed and synced.  So a queue file is never
 * empty, and an empty one at open can only be damage (truncated, or a copy
 * that never finished), not a creation cut short by a crash.  A concurrent
 * creator wins the link; then this one simply opens its queue. */
static queue_rc_t queue_create(const char *path, char *err, size_t errlen)
{
	char tmp[4096], side[4200];
	queue_rc_t qrc = QUEUE_ERR_OPEN;
	sqlite3 *db = NULL;
	if(util_snprintf(tmp, sizeof(tmp), "%s.new", path) < 0) {
		snprintf(err, errlen, "queue path '%s' is too long", path);
		return QUEUE_ERR_OPEN;
	}
	int fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if(fd < 0) {
		snprintf(err, errlen, "queue '%s': cannot create '%s': %s", path, tmp, strerror(errno));
		return QUEUE_ERR_OPEN;
	}
	if(flock(fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen, "queue '%s' is being created by another process (another "
		                      "plantgate-bridge?): stop it first", path);
		goto out;
	}
	/* Left over from a creation cut short: it never held a message. */
	if(ftruncate(fd, 0) != 0) {
		snprintf(err, errlen, "queue '%s': cannot reset '%s': %s", path, tmp, strerror(errno));
		goto out;
	}
	snprintf(side, sizeof(side), "%s-journal", tmp);
	unlink(side);
	snprintf(side, sizeof(side), "%s-wal", tmp);
	unlink(side);
	int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE, NULL);
	if(!rc) {
		rc = exec(db, "PRAGMA synchronous=FULL");
	}
	if(!rc) {
		rc = schema_create(db);
	}
	if(rc) {
		snprintf(err, errlen, "queue '%s': cannot create the schema in '%s': %s", path, tmp,
		         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		qrc = map_rc(rc) == QUEUE_ERR_FULL ? QUEUE_ERR_FULL : QUEUE_ERR_OPEN;
		goto out;
	}
	sqlite3_close(db);
	db = NULL;
	if(fsync(fd) != 0 || (link(tmp, path) != 0 && errno != EEXIST)) {
		snprintf(err, errlen, "queue '%s': cannot put the new queue in place: %s", path,
		         strerror(errno));
		goto out;
	}
	unlink(tmp);
	/* The directory entry must survive a power cut too. */
	char dir[4096];
	util_strlcpy(dir, path, sizeof(dir));
	char *slash = strrchr(dir, '/');
	if(slash) {
		*(slash == dir ? slash + 1 : slash) = '\0';
	}
	int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if(dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	qrc = QUEUE_OK;
out:
	if(db) {
		sqlite3_close(db);
	}
	close(fd);
	return qrc;
}

void queue_close(queue_t *q)
{
	if(!q) {
		return;
	}
	sqlite3_finalize(q->st_insert);
	sqlite3_finalize(q->st_delete);
	sqlite3_finalize(q->st_oldest);
	sqlite3_finalize(q->st_expire);
	sqlite3_finalize(q->st_begin);
	sqlite3_finalize(q->st_commit);
	sqlite3_finalize(q->st_ingest);
	sqlite3_finalize(q->st_ingest_trim);
	sqlite3_finalize(q->st_peek);
	sqlite3_finalize(q->st_first);
	sqlite3_finalize(q->st_seen);
	if(q->rdb) {
		sqlite3_close(q->rdb);
	}
	if(q->db) {
		sqlite3_close(q->db);
	}
	if(q->lock_fd >= 0) {
		close(q->lock_fd);
	}
	pthread_mutex_destroy(&q->mu);
	pthread_mutex_destroy(&q->rmu);
	pthread_mutex_destroy(&q->smu);
	free(q->path);
	free(q);
}

/* Called by SQLite after each commit on the writer (mu held) with the WAL's
 * size in pages.  Past QUEUE_WAL_PAGES, checkpoint with the read connection
 * held idle (rmu): a read in progress would pin the WAL, the checkpoint would
 * stop short, and the WAL would keep growing — on a nearly full disk it, not
 * the queue, would take the last free space. */
#define QUEUE_WAL_PAGES 64
#define QUEUE_ACK_WAL_PAGES (4 * QUEUE_WAL_PAGES) /* 1 MiB: journal_size_limit */

static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	queue_t *q = arg;
	/* Deletes leave the checkpoint to the next push, so it does not land on
	 * the cloud thread (issue 14: 5 % of its time); while nothing is pushed
	 * (a backlog draining) they take it themselves, at a larger WAL. */
	if(pages >= (q->acking ? QUEUE_ACK_WAL_PAGES : QUEUE_WAL_PAGES)) {
		pthread_mutex_lock(&q->rmu);
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_unlock(&q->rmu);
	}
	return SQLITE_OK;
}

/* Keep every prepared statement's plan whatever is bound to it.  Debian's
 * SQLite is built with STAT4, under which a statement whose parameter is
 * compared with an indexed column (the peek's `expires_ms > ?2`, with the
 * expiry index) is compiled again on the first step after every new
 * binding: measured, 9 % of the bridge's CPU in the relay benchmark, all of
 * it parsing the same SQL again (docs/benchmarks.md, issue 14). */
static void queue_stable_plans(sqlite3 *db)
{
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_QPSG, 1, (int *)NULL);
}

/* A fresh queue_t: nothing open yet, mutexes ready.  NULL when out of memory. */
static queue_t *queue_alloc(void)
{
	queue_t *q = calloc(1, sizeof(*q));
	if(q) {
		pthread_mutex_init(&q->mu, NULL);
		pthread_mutex_init(&q->rmu, NULL);
		pthread_mutex_init(&q->smu, NULL);
		q->lock_fd = -1;
	}
	return q;
}

/* queue_open, step 1: the file at path is a regular, non-empty file this
 * user may read and write, created with the schema when missing. */
static queue_rc_t queue_open_file(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if(stat(path, &st) != 0) {
		queue_rc_t qrc = queue_create(path, err, errlen);
		if(qrc != QUEUE_OK) {
			return qrc;
		}
	} else if(!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "queue '%s' is not a regular file", path);
		return QUEUE_ERR_OPEN;
	} else if(st.st_size == 0) {
		/* Never a fresh queue: queue_create links a file in only once it
		 * holds the schema. */
		snprintf(err, errlen,
		         "queue '%s' is empty (0 bytes): a queue file is never empty, so it was "
		         "truncated or replaced (a restore or copy that did not finish, a full disk). "
		         "Nothing was changed. To recover: stop the bridge; if '%s-wal' exists it may "
		         "still hold queued messages: copy the file with its -wal aside and salvage with "
		         "`sqlite3 '%s' .recover | sqlite3 '%s.salvaged'`; restore the queue from a "
		         "backup if you have one; or, to start with a new empty queue, move the empty "
		         "file aside (mv '%s' '%s.empty') and start the bridge (messages still held by "
		         "the plant broker's persistent session will be delivered)",
		         path, path, path, path, path, path);
		return QUEUE_ERR_CORRUPT;
	}
	if(access(path, R_OK | W_OK) != 0) {
		snprintf(err, errlen,
		         "queue '%s' is not readable and writable by this user (%s): fix its owner or "
		         "mode; nothing was changed",
		         path, strerror(errno));
		return QUEUE_ERR_OPEN;
	}
	return QUEUE_OK;
}

/* Step 2: one bridge per queue, since two would both send, and both delete. */
static queue_rc_t queue_open_lock(queue_t *q, char *err, size_t errlen)
{
	q->lock_fd = open(q->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if(q->lock_fd < 0) {
		snprintf(err, errlen, "queue '%s': cannot open or create: %s", q->path, strerror(errno));
		return QUEUE_ERR_OPEN;
	}
	if(flock(q->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen,
		         "queue '%s' is in use by another process (another plantgate-bridge?): "
		         "stop it first",
		         q->path);
		return QUEUE_ERR_OPEN;
	}
	return QUEUE_OK;
}

/* Step 3: the writer connection on a file that is a plantgate queue of a
 * schema this bridge knows (or an SQLite file without tables), in WAL mode.
 * *version and *tables say what step 4 finds. */
static queue_rc_t queue_open_writer(queue_t *q, int64_t *version, int64_t *tables, char *err,
                                    size_t errlen)
{
	const char *path = q->path;
	int rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                                           SQLITE_OPEN_FULLMUTEX,
	                         NULL);
	if(rc) {
		snprintf(err, errlen, "queue '%s': cannot open: %s", path,
		         q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
		return QUEUE_ERR_OPEN;
	}
	sqlite3_busy_timeout(q->db, 5000);
	sqlite3_extended_result_codes(q->db, 1);
	queue_stable_plans(q->db);

	int64_t app_id = 0;
	rc = query_i64(q->db, "PRAGMA application_id", &app_id);
	if(!rc) {
		rc = query_i64(q->db, "PRAGMA user_version", version);
	}
	if(!rc) {
		rc = query_i64(q->db, "SELECT count(*) FROM sqlite_master", tables);
	}
	if(rc) {
		char what[512];
		snprintf(what, sizeof(what), "cannot be read as an SQLite database (%s)",
		         sqlite3_errmsg(q->db));
		recovery_hint(err, errlen, path, what);
		return map_rc(rc) == QUEUE_ERR_CORRUPT ? QUEUE_ERR_CORRUPT : QUEUE_ERR_OPEN;
	}
	if(*tables > 0 && app_id != QUEUE_APP_ID) {
		recovery_hint(err, errlen, path,
		              "is an SQLite database but not a plantgate queue (wrong application_id)");
		return QUEUE_ERR_CORRUPT;
	}
	if(app_id == QUEUE_APP_ID && *version != QUEUE_SCHEMA && *version != QUEUE_SCHEMA_V1 &&
	   *version != QUEUE_SCHEMA_V2) {
		snprintf(err, errlen,
		         "queue '%s' has schema version %lld, this bridge knows %d: use the matching "
		         "bridge version; nothing was changed",
		         path, (long long)*version, QUEUE_SCHEMA);
		return QUEUE_ERR_CORRUPT;
	}
	rc = exec(q->db, "PRAGMA journal_mode=WAL");
	if(!rc) {
		rc = exec(q->db, "PRAGMA synchronous=FULL");
	}
	if(!rc) {
		rc = exec(q->db, "PRAGMA journal_size_limit=1048576");
	}
	if(rc) {
		char what[512];
		snprintf(what, sizeof(what), "cannot be opened in WAL mode (%s)", sqlite3_errmsg(q->db));
		recovery_hint(err, errlen, path, what);
		return map_rc(rc) == QUEUE_ERR_CORRUPT ? QUEUE_ERR_CORRUPT : QUEUE_ERR_OPEN;
	}
	/* Checkpoint often: a small WAL keeps working on a nearly full disk.
	 * Our own hook instead of wal_autocheckpoint: it keeps the read
	 * connection idle meanwhile (see wal_hook). */
	sqlite3_wal_hook(q->db, wal_hook, q);
	return QUEUE_OK;
}

/* Step 4, for a file with tables: it passes SQLite's quick_check, and a
 * schema of an earlier bridge version is upgraded in place. */
static queue_rc_t queue_open_check(queue_t *q, int64_t version, char *err, size_t errlen)
{
	const char *path = q->path;
	sqlite3_stmt *chk;
	int rc = sqlite3_prepare_v2(q->db, "PRAGMA quick_check", -1, &chk, NULL);
	const char *res = NULL;
	if(!rc && sqlite3_step(chk) == SQLITE_ROW) {
		res = (const char *)sqlite3_column_text(chk, 0);
	}
	if(!res || strcmp(res, "ok") != 0) {
		char what[512];
		snprintf(what, sizeof(what), "failed its integrity check (%s)",
		         res ? res : sqlite3_errmsg(q->db));
		sqlite3_finalize(chk);
		recovery_hint(err, errlen, path, what);
		return QUEUE_ERR_CORRUPT;
	}
	sqlite3_finalize(chk);
	if(version != QUEUE_SCHEMA_V1 && version != QUEUE_SCHEMA_V2) {
		return QUEUE_OK;
	}
	/* Written by an earlier bridge version: add the device column (v1) and
	 * the tables of v3 in one transaction; every queued row stays as it was. */
	char sql[2048];
	snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE; %s" QUEUE_TABLES_V3 " PRAGMA user_version=%d; COMMIT;",
	         version == QUEUE_SCHEMA_V1 ? "ALTER TABLE msg ADD COLUMN device TEXT NOT NULL DEFAULT '';"
	                                    : "",
	         QUEUE_SCHEMA);
	rc = exec(q->db, sql);
	if(rc) {
		snprintf(err, errlen,
		         "queue '%s': cannot upgrade the schema from version %lld to %d: %s; "
		         "nothing was changed (free disk space, or run the previous bridge version "
		         "to drain it)",
		         path, (long long)version, QUEUE_SCHEMA, sqlite3_errmsg(q->db));
		exec(q->db, "ROLLBACK");
		return map_rc(rc) == QUEUE_ERR_FULL ? QUEUE_ERR_FULL : QUEUE_ERR_OPEN;
	}
	return QUEUE_OK;
}

/* Step 4, for a valid SQLite file without tables (e.g. made with the
 * sqlite3 shell): give it the schema. */
static queue_rc_t queue_open_schema(queue_t *q, char *err, size_t errlen)
{
	int rc = schema_create(q->db);
	if(rc) {
		snprintf(err, errlen, "queue '%s': cannot create the schema: %s", q->path,
		         sqlite3_errmsg(q->db));
		return map_rc(rc) == QUEUE_ERR_FULL ? QUEUE_ERR_FULL : QUEUE_ERR_OPEN;
	}
	return QUEUE_OK;
}

/* Step 5: the schema exists now, so the read connection opens beside the
 * writer, and every statement of the queue is prepared once. */
static queue_rc_t queue_open_statements(queue_t *q, char *err, size_t errlen)
{
	const char *path = q->path;
	int rc = sqlite3_open_v2(path, &q->rdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
	if(!rc) {
		sqlite3_busy_timeout(q->rdb, 5000);
		sqlite3_extended_result_codes(q->rdb, 1);
		queue_stable_plans(q->rdb);
		rc = exec(q->rdb, "PRAGMA query_only=1");
	}
	if(rc) {
		snprintf(err, errlen, "queue '%s': cannot open a second (read) connection: %s", path,
		         q->rdb ? sqlite3_errmsg(q->rdb) : sqlite3_errstr(rc));
		return QUEUE_ERR_OPEN;
	}
	struct {
		sqlite3 *db;
		sqlite3_stmt **st;
		const char *sql;
	} stmts[] = {
	    {q->db, &q->st_insert, "INSERT INTO msg(rx_ms, expires_ms, qos, retain, local_topic,"
	                           " remote_topic, payload, size, device) VALUES(?,?,?,?,?,?,?,?,?)"},
	    {q->db, &q->st_delete, "DELETE FROM msg WHERE seq BETWEEN ?1 AND ?2 RETURNING size"},
	    {q->db, &q->st_oldest, "SELECT seq, size, rx_ms FROM msg ORDER BY seq LIMIT ?"},
	    {q->db, &q->st_expire, "DELETE FROM msg WHERE expires_ms > 0 AND expires_ms <= ? RETURNING size"},
	    {q->db, &q->st_begin, "BEGIN IMMEDIATE"},
	    {q->db, &q->st_commit, "COMMIT"},
	    {q->rdb, &q->st_peek, "SELECT seq, rx_ms, expires_ms, qos, retain, local_topic, remote_topic,"
	                          " payload, device FROM msg WHERE seq > ?1 AND (expires_ms = 0 OR expires_ms > ?2)"
	                          " ORDER BY seq LIMIT ?3"},
	    {q->rdb, &q->st_first, "SELECT rx_ms FROM msg ORDER BY seq LIMIT 1"},
	    {q->db, &q->st_ingest, "INSERT INTO ingest(seq, mid, hash) VALUES(?,?,?)"},
	    {q->db, &q->st_ingest_trim, "DELETE FROM ingest WHERE seq <= ?"},
	    {q->rdb, &q->st_seen, "SELECT seq FROM ingest WHERE mid = ? AND hash = ?"
	                          " ORDER BY seq DESC LIMIT 1"},
	};
	for(size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		rc = sqlite3_prepare_v3(stmts[i].db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
		                        stmts[i].st, NULL);
		if(rc) {
			char what[512];
			snprintf(what, sizeof(what), "has an unexpected layout (%s)",
			         sqlite3_errmsg(stmts[i].db));
			recovery_hint(err, errlen, path, what);
			return QUEUE_ERR_CORRUPT;
		}
	}
	return QUEUE_OK;
}

/* Step 6: the counters start from what the file holds. */
static queue_rc_t queue_open_counts(queue_t *q, char *err, size_t errlen)
{
	int64_t total = 0, count = 0;
	int rc = query_i64(q->db, "SELECT count(*) FROM msg", &count);
	if(!rc) {
		rc = query_i64(q->db, "SELECT coalesce(sum(size), 0) FROM msg", &total);
	}
	if(!rc) {
		rc = query_i64(q->db, "SELECT count(*) FROM dead_letter", &q->dead);
	}
	if(rc) {
		char what[512];
		snprintf(what, sizeof(what), "cannot be read (%s)", sqlite3_errmsg(q->db));
		recovery_hint(err, errlen, q->path, what);
		return map_rc(rc) == QUEUE_ERR_CORRUPT ? QUEUE_ERR_CORRUPT : QUEUE_ERR_IO;
	}
	q->count = count; /* nobody else has q yet */
	q->bytes = (uint64_t)total;
	return QUEUE_OK;
}

queue_rc_t queue_open(const char *path, const queue_limits_t *lim, queue_t **out, char *err,
                      size_t errlen)
{
	queue_rc_t qrc = QUEUE_ERR_NOMEM;
	int64_t version = 0, tables = 0;
	*out = NULL;
	err[0] = '\0';
	queue_t *q = queue_alloc();
	if(!q) {
		snprintf(err, errlen, "out of memory");
		return QUEUE_ERR_NOMEM;
	}
	q->lim = *lim;
	q->path = strdup(path);
	if(!q->path) {
		goto out;
	}
	qrc = queue_open_file(path, err, errlen);
	if(qrc == QUEUE_OK) {
		qrc = queue_open_lock(q, err, errlen);
	}
	if(qrc == QUEUE_OK) {
		qrc = queue_open_writer(q, &version, &tables, err, errlen);
	}
	if(qrc == QUEUE_OK) {
		qrc = tables > 0 ? queue_open_check(q, version, err, errlen)
		                 : queue_open_schema(q, err, errlen);
	}
	if(qrc == QUEUE_OK) {
		qrc = queue_open_statements(q, err, errlen);
	}
	if(qrc == QUEUE_OK) {
		qrc = queue_open_counts(q, err, errlen);
	}
	if(qrc == QUEUE_OK) {
		*out = q;
		return QUEUE_OK;
	}
out:
	queue_close(q);
	return qrc;
}

void queue_set_limits(queue_t *q, const queue_limits_t *lim)
{
	pthread_mutex_lock(&q->mu);
	pthread_mutex_lock(&q->smu);
	q->lim = *lim;
	pthread_mutex_unlock(&q->smu);
	pthread_mutex_unlock(&q->mu);
}

/* Publish the counters after a committed write (mu held). */
static void set_counts(queue_t *q, int64_t count, uint64_t bytes, uint64_t dropped,
                       uint64_t expired)
{
	pthread_mutex_lock(&q->smu);
	q->count = count;
	q->bytes = bytes;
	q->dropped_oldest += dropped;
	q->expired += expired;
	pthread_mutex_unlock(&q->smu);
}

static uint64_t msg_size(const queue_msg_t *m)
{
	return (uint64_t)m->len + strlen(m->local_topic) + strlen(m->remote_topic);
}

static bool over(const queue_t *q, int64_t count, uint64_t bytes)
{
	return count > q->lim.max_messages || bytes > q->lim.max_bytes;
}

/* What a redelivered copy has in common with the stored message: plant
 * topic, verified device and payload (not the cloud topic or QoS, which
 * follow the rules).  Each field is length-prefixed, so no two different
 * messages hash the same input. */
static EVP_MD *ingest_md;
static pthread_once_t ingest_md_once = PTHREAD_ONCE_INIT;

/* SHA-256 fetched once: OpenSSL 3 looks the algorithm up again on every
 * EVP_DigestInit_ex(EVP_sha256()), which cost more than the hashing. */
static void ingest_md_fetch(void)
{
	ingest_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int ingest_hash(const queue_msg_t *m, unsigned char out[32])
{
	const void *part[3] = {m->local_topic, m->device ? m->device : "", m->payload};
	uint64_t len[3] = {strlen(m->local_topic), m->device ? strlen(m->device) : 0, m->len};
	pthread_once(&ingest_md_once, ingest_md_fetch);
	EVP_MD_CTX *ctx = ingest_md ? EVP_MD_CTX_new() : NULL;
	unsigned int n = 0;
	int ok = ctx && EVP_DigestInit_ex(ctx, ingest_md, NULL) == 1;
	for(int i = 0; ok && i < 3; i++) {
		ok = EVP_DigestUpdate(ctx, &len[i], sizeof(len[i])) == 1 &&
		     (len[i] == 0 || EVP_DigestUpdate(ctx, part[i], len[i]) == 1);
	}
	ok = ok && EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == 32;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* Remember message m, stored as seq (mu held, inside the push transaction). */
static int ingest_record(queue_t *q, int64_t seq, const queue_msg_t *m)
{
	unsigned char h[32];
	if(ingest_hash(m, h)) {
		return SQLITE_NOMEM;
	}
	sqlite3_stmt *st = q->st_ingest;
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_int(st, 2, m->plant_mid);
	sqlite3_bind_blob(st, 3, h, sizeof(h), SQLITE_TRANSIENT);
	return step_once(st);
}

queue_rc_t queue_ingest_seen(queue_t *q, const queue_msg_t *m, int64_t *seq)
{
	*seq = 0;
	unsigned char h[32];
	if(m->plant_mid <= 0) {
		return QUEUE_OK;
	}
	if(ingest_hash(m, h)) {
		return QUEUE_ERR_NOMEM;
	}
	pthread_mutex_lock(&q->rmu);
	sqlite3_stmt *st = q->st_seen;
	sqlite3_bind_int(st, 1, m->plant_mid);
	sqlite3_bind_blob(st, 2, h, sizeof(h), SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if(rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&q->rmu);
	return map_rc(rc);
}

queue_rc_t queue_push(queue_t *q, const queue_msg_t *msgs, size_t n, int64_t *dropped, char *err,
                      size_t errlen)
{
	if(dropped) {
		*dropped = 0;
	}
	if(n == 0) {
		return QUEUE_OK;
	}
	pthread_mutex_lock(&q->mu);
	int64_t count = q->count, ndrop = 0, first_new = 0, last_new = 0; /* writers: mu */
	bool ingested = false;
	uint64_t bytes = q->bytes;
	int rc = step_once(q->st_begin);
	for(size_t i = 0; !rc && i < n; i++) {
		const queue_msg_t *m = &msgs[i];
		sqlite3_stmt *st = q->st_insert;
		uint64_t sz = msg_size(m);
		sqlite3_bind_int64(st, 1, m->rx_ms);
		sqlite3_bind_int64(st, 2, m->expires_ms);
		sqlite3_bind_int(st, 3, m->qos);
		sqlite3_bind_int(st, 4, m->retain ? 1 : 0);
		sqlite3_bind_text(st, 5, m->local_topic, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, m->remote_topic, -1, SQLITE_STATIC);
		sqlite3_bind_blob64(st, 7, m->len ? m->payload : "", m->len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)sz);
		sqlite3_bind_text(st, 9, m->device ? m->device : "", -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		if(rc == SQLITE_DONE) {
			rc = SQLITE_OK;
			last_new = sqlite3_last_insert_rowid(q->db);
			if(!first_new) {
				first_new = last_new;
			}
			count++;
			bytes += sz;
		}
		if(!rc && m->plant_mid > 0) {
			rc = ingest_record(q, last_new, m);
			ingested = true;
		}
	}
	if(!rc && ingested && last_new > QUEUE_INGEST_WINDOW) {
		sqlite3_bind_int64(q->st_ingest_trim, 1, last_new - QUEUE_INGEST_WINDOW);
		rc = step_once(q->st_ingest_trim);
	}
	/* drop-oldest: evict from the front, never this batch itself. */
	if(!rc && q->lim.when_full == QUEUE_DROP_OLDEST && over(q, count, bytes)) {
		int64_t cutoff = 0;
		sqlite3_stmt *st = q->st_oldest;
		sqlite3_bind_int64(st, 1, count);
		while(over(q, count, bytes) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t seq = sqlite3_column_int64(st, 0);
			if(seq >= first_new) {
				break;
			}
			cutoff = seq;
			count--;
			bytes -= (uint64_t)sqlite3_column_int64(st, 1);
			ndrop++;
		}
		sqlite3_reset(st);
		rc = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
		if(!rc && cutoff) {
			char sql[96];
			snprintf(sql, sizeof(sql), "DELETE FROM msg WHERE seq <= %lld", (long long)cutoff);
			rc = exec(q->db, sql);
		}
	}
	if(!rc) {
		rc = step_once(q->st_commit);
	}
	queue_rc_t qrc = map_rc(rc);
	if(rc) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(q->db));
		exec(q->db, "ROLLBACK");
	} else {
		set_counts(q, count, bytes, (uint64_t)ndrop, 0);
		if(dropped) {
			*dropped = ndrop;
		}
	}
	pthread_mutex_unlock(&q->mu);
	return qrc;
}

bool queue_is_full(queue_t *q)
{
	pthread_mutex_lock(&q->smu);
	bool full = q->count >= q->lim.max_messages || q->bytes >= q->lim.max_bytes;
	pthread_mutex_unlock(&q->smu);
	return full;
}

bool queue_has_room(queue_t *q, unsigned pct)
{
	pthread_mutex_lock(&q->smu);
	bool room = (uint64_t)q->count <= (uint64_t)q->lim.max_messages / 100 * pct +
	                                       (uint64_t)q->lim.max_messages % 100 * pct / 100 &&
	            q->bytes <= q->lim.max_bytes / 100 * pct + q->lim.max_bytes % 100 * pct / 100;
	pthread_mutex_unlock(&q->smu);
	return room;
}

static char *col_strdup(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	return strdup(s ? (const char *)s : "");
}

queue_rc_t queue_peek(queue_t *q, int64_t after_seq, int64_t now_ms, queue_msg_t *out,
                      size_t max, size_t *n)
{
	*n = 0;
	pthread_mutex_lock(&q->rmu);
	sqlite3_stmt *st = q->st_peek;
	sqlite3_bind_int64(st, 1, after_seq);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
	int rc;
	queue_rc_t qrc = QUEUE_OK;
	while(*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		queue_msg_t *m = &out[*n];
		memset(m, 0, sizeof(*m));
		m->seq = sqlite3_column_int64(st, 0);
		m->rx_ms = sqlite3_column_int64(st, 1);
		m->expires_ms = sqlite3_column_int64(st, 2);
		m->qos = sqlite3_column_int(st, 3);
		m->retain = sqlite3_column_int(st, 4) != 0;
		m->local_topic = col_strdup(st, 5);
		m->remote_topic = col_strdup(st, 6);
		m->device = col_strdup(st, 8);
		int len = sqlite3_column_bytes(st, 7);
		const void *p = sqlite3_column_blob(st, 7);
		m->len = (size_t)len;
		m->payload = malloc(len ? (size_t)len : 1);
		if(!m->local_topic || !m->remote_topic || !m->device || !m->payload) {
			queue_msg_clear(m);
			qrc = QUEUE_ERR_NOMEM;
			break;
		}
		if(len) {
			memcpy(m->payload, p, (size_t)len);
		}
		(*n)++;
	}
	if(qrc == QUEUE_OK && *n < max && rc != SQLITE_DONE) {
		qrc = map_rc(rc);
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&q->rmu);
	return qrc;
}

/* Run a "DELETE ... RETURNING size" statement to completion, accounting. */
static int delete_step(queue_t *q, sqlite3_stmt *st, int64_t *count, uint64_t *bytes,
                       int64_t *deleted)
{
	int rc;
	while((rc = sqlite3_step(st)) == SQLITE_ROW) {
		(*count)--;
		*bytes -= (uint64_t)sqlite3_column_int64(st, 0);
		(*deleted)++;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Empty the WAL into the database and truncate it (mu held), with the read
 * connection idle (see wal_hook). */
static int checkpoint_truncate(queue_t *q)
{
	pthread_mutex_lock(&q->rmu);
	int rc = exec(q->db, "PRAGMA wal_checkpoint(TRUNCATE)");
	pthread_mutex_unlock(&q->rmu);
	return rc;
}

queue_rc_t queue_checkpoint(queue_t *q)
{
	pthread_mutex_lock(&q->mu);
	int rc = checkpoint_truncate(q);
	pthread_mutex_unlock(&q->mu);
	return map_rc(rc);
}

/* Delete seqs[0..n) in one transaction (mu held); counters published on
 * success.  Seqs already gone are fine (RETURNING yields nothing). */
static int ack_txn(queue_t *q, const int64_t *seqs, size_t n)
{
	int64_t count = q->count, deleted = 0;
	uint64_t bytes = q->bytes;
	int rc = step_once(q->st_begin);
	/* Acknowledgements come in sequence order, so a batch is mostly one run
	 * of consecutive numbers: one range delete per run, not one per row. */
	for(size_t i = 0, j; !rc && i < n; i = j) {
		for(j = i + 1; j < n && seqs[j] == seqs[j - 1] + 1; j++) {
		}
		sqlite3_bind_int64(q->st_delete, 1, seqs[i]);
		sqlite3_bind_int64(q->st_delete, 2, seqs[j - 1]);
		rc = delete_step(q, q->st_delete, &count, &bytes, &deleted);
	}
	if(!rc) {
		rc = step_once(q->st_commit);
	}
	if(rc) {
		exec(q->db, "ROLLBACK");
	} else {
		set_counts(q, count, bytes, 0, 0);
	}
	return rc;
}

/* Deletes on a full disk: a small chunk at a time, emptying the WAL into the
 * database (checkpoint, truncate) before each retry.  Every chunk deleted
 * frees pages, which is what makes room for the next. */
#define QUEUE_ACK_CHUNK 8
#define QUEUE_ACK_TXN 256

queue_rc_t queue_ack(queue_t *q, const int64_t *seqs, size_t n)
{
	if(n == 0) {
		return QUEUE_OK;
	}
	pthread_mutex_lock(&q->mu);
	/* A delete lost to a power cut only means a resend (at-least-once), so
	 * deletes skip the fsync; the next push's FULL commit syncs them too. */
	q->acking = true;
	exec(q->db, "PRAGMA synchronous=NORMAL");
	/* At most QUEUE_ACK_TXN rows per transaction: every page a delete touches
	 * is written whole to the WAL, so one huge delete could need more disk
	 * than a nearly full disk has (a 2 KiB message is about a page). */
	int rc = SQLITE_OK;
	for(size_t i = 0; !rc && i < n; i += QUEUE_ACK_TXN) {
		rc = ack_txn(q, seqs + i, n - i < QUEUE_ACK_TXN ? n - i : QUEUE_ACK_TXN);
	}
	/* A full disk can refuse even a delete, which needs room in the WAL;
	 * without the fallback the queue could never shrink again. */
	if((rc & 0xff) == SQLITE_FULL) {
		for(size_t i = 0; i < n; i += QUEUE_ACK_CHUNK) {
			size_t k = n - i < QUEUE_ACK_CHUNK ? n - i : QUEUE_ACK_CHUNK;
			checkpoint_truncate(q);
			rc = ack_txn(q, seqs + i, k);
			if(rc) {
				break; /* full even for a few rows: the caller retries them all later */
			}
		}
	}
	q->acking = false;
	exec(q->db, "PRAGMA synchronous=FULL");
	pthread_mutex_unlock(&q->mu);
	return map_rc(rc);
}

queue_rc_t queue_expire(queue_t *q, int64_t now_ms, int64_t *expired)
{
	if(expired) {
		*expired = 0;
	}
	pthread_mutex_lock(&q->mu);
	int64_t count = q->count, deleted = 0;
	uint64_t bytes = q->bytes;
	int rc = step_once(q->st_begin);
	if(!rc) {
		sqlite3_bind_int64(q->st_expire, 1, now_ms);
		rc = delete_step(q, q->st_expire, &count, &bytes, &deleted);
	}
	if(!rc) {
		rc = step_once(q->st_commit);
	}
	if(rc) {
		exec(q->db, "ROLLBACK");
	} else {
		set_counts(q, count, bytes, 0, (uint64_t)deleted);
		if(expired) {
			*expired = deleted;
		}
	}
	pthread_mutex_unlock(&q->mu);
	return map_rc(rc);
}

void queue_get_stats(queue_t *q, queue_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&q->smu);
	st->messages = q->count;
	st->bytes = q->bytes;
	st->dropped_oldest = q->dropped_oldest;
	st->expired = q->expired;
	st->dead_letters = q->dead;
	pthread_mutex_unlock(&q->smu);
	pthread_mutex_lock(&q->rmu);
	if(sqlite3_step(q->st_first) == SQLITE_ROW) {
		st->oldest_rx_ms = sqlite3_column_int64(q->st_first, 0);
	}
	sqlite3_reset(q->st_first);
	pthread_mutex_unlock(&q->rmu);
}

queue_rc_t queue_space_free(queue_t *q, uint64_t *bytes)
{
	*bytes = 0;
	struct statvfs vfs;
	if(fstatvfs(q->lock_fd, &vfs) != 0) {
		return QUEUE_ERR_IO;
	}
	uint64_t fs_free = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
	int64_t pages = 0, page_size = 0;
	pthread_mutex_lock(&q->mu);
	int rc = query_i64(q->db, "PRAGMA freelist_count", &pages);
	if(!rc) {
		rc = query_i64(q->db, "PRAGMA page_size", &page_size);
	}
	pthread_mutex_unlock(&q->mu);
	if(rc) {
		return map_rc(rc);
	}
	/* A checkpoint writes the WAL's pages into the database file, which
	 * grows by as much for pages past its end, before the WAL's own space
	 * comes back: that much must stay free, or the checkpoint fails for
	 * want of the space the WAL holds and neither can shrink again (issue
	 * 14: a 2 MiB disk stuck with a 1.1 MB WAL and an empty queue). */
	uint64_t wal = 0;
	char wal_path[PATH_MAX];
	struct stat st;
	if(snprintf(wal_path, sizeof(wal_path), "%s-wal", q->path) < (int)sizeof(wal_path) &&
	   stat(wal_path, &st) == 0 && st.st_size > 0) {
		wal = (uint64_t)st.st_size;
	}
	uint64_t total = fs_free + (uint64_t)pages * (uint64_t)page_size;
	*bytes = total > wal ? total - wal : 0;
	return QUEUE_OK;
}

void queue_msg_clear(queue_msg_t *m)
{
	if(!m) {
		return;
	}
	free(m->local_topic);
	free(m->remote_topic);
	free(m->device);
	free(m->payload);
	memset(m, 0, sizeof(*m));
}

/* --- dead letters -------------------------------------------------------- */

#define QUEUE_MSG_COLS                                                                     \
	"rx_ms, expires_ms, qos, retain, local_topic, remote_topic, payload, size, device"

void queue_dead_clear(queue_dead_t *d)
{
	if(!d) {
		return;
	}
	queue_msg_clear(&d->msg);
	free(d->reason);
	memset(d, 0, sizeof(*d));
}

queue_rc_t queue_dead_letter(queue_t *q, int64_t seq, const char *reason, int attempts,
                             int64_t first_failure_ms, int64_t last_failure_ms, bool *moved)
{
	*moved = false;
	pthread_mutex_lock(&q->mu);
	int64_t count = q->count, deleted = 0;
	uint64_t bytes = q->bytes;
	sqlite3_stmt *st = NULL;
	int rc = step_once(q->st_begin);
	if(!rc) {
		rc = sqlite3_prepare_v2(q->db,
		                        "INSERT INTO dead_letter(seq, " QUEUE_MSG_COLS ", reason, attempts,"
		                        " first_failure_ms, last_failure_ms) SELECT seq, " QUEUE_MSG_COLS
		                        ", ?2, ?3, ?4, ?5 FROM msg WHERE seq = ?1",
		                        -1, &st, NULL);
	}
	if(!rc) {
		sqlite3_bind_int64(st, 1, seq);
		sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, attempts);
		sqlite3_bind_int64(st, 4, first_failure_ms);
		sqlite3_bind_int64(st, 5, last_failure_ms);
		rc = step_once(st);
	}
	if(!rc) {
		sqlite3_bind_int64(q->st_delete, 1, seq);
		sqlite3_bind_int64(q->st_delete, 2, seq);
		rc = delete_step(q, q->st_delete, &count, &bytes, &deleted);
	}
	if(!rc) {
		rc = step_once(q->st_commit);
	}
	sqlite3_finalize(st);
	if(rc) {
		exec(q->db, "ROLLBACK");
	} else {
		set_counts(q, count, bytes, 0, 0);
		pthread_mutex_lock(&q->smu);
		q->dead += deleted;
		pthread_mutex_unlock(&q->smu);
		*moved = deleted > 0;
	}
	pthread_mutex_unlock(&q->mu);
	return map_rc(rc);
}

queue_rc_t queue_dead_list(queue_t *q, int64_t seq, int64_t max,
                           void (*cb)(void *arg, const queue_dead_t *d), void *arg)
{
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->rmu);
	int rc = sqlite3_prepare_v2(q->rdb,
	                            "SELECT seq, " QUEUE_MSG_COLS ", reason, attempts, first_failure_ms,"
	                            " last_failure_ms FROM dead_letter WHERE ?1 = 0 OR seq = ?1"
	                            " ORDER BY seq LIMIT ?2",
	                            -1, &st, NULL);
	if(!rc) {
		sqlite3_bind_int64(st, 1, seq);
		sqlite3_bind_int64(st, 2, max > 0 ? max : -1);
		while((rc = sqlite3_step(st)) == SQLITE_ROW) {
			queue_dead_t d = {.msg = {.seq = sqlite3_column_int64(st, 0),
			                          .rx_ms = sqlite3_column_int64(st, 1),
			                          .expires_ms = sqlite3_column_int64(st, 2),
			                          .qos = sqlite3_column_int(st, 3),
			                          .retain = sqlite3_column_int(st, 4) != 0,
			                          .local_topic = (char *)sqlite3_column_text(st, 5),
			                          .remote_topic = (char *)sqlite3_column_text(st, 6),
			                          .payload = (void *)sqlite3_column_blob(st, 7),
			                          .len = (size_t)sqlite3_column_bytes(st, 7),
			                          .device = (char *)sqlite3_column_text(st, 9)},
			                  .reason = (char *)sqlite3_column_text(st, 10),
			                  .attempts = sqlite3_column_int(st, 11),
			                  .first_failure_ms = sqlite3_column_int64(st, 12),
			                  .last_failure_ms = sqlite3_column_int64(st, 13)};
			cb(arg, &d);
		}
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->rmu);
	return map_rc(rc);
}

/* Run `sql` (with ?1 = seq, 0 = all) in the write transaction of a dead-letter
 * command; *n = rows changed by the last statement. */
static queue_rc_t dead_change(queue_t *q, const char *const *sql, size_t nsql, int64_t seq,
                              int64_t *n)
{
	*n = 0;
	if(q->readonly) {
		return QUEUE_ERR_OPEN;
	}
	pthread_mutex_lock(&q->mu);
	int rc = step_once(q->st_begin);
	for(size_t i = 0; !rc && i < nsql; i++) {
		sqlite3_stmt *st;
		rc = sqlite3_prepare_v2(q->db, sql[i], -1, &st, NULL);
		if(!rc) {
			sqlite3_bind_int64(st, 1, seq);
			rc = step_once(st);
			sqlite3_finalize(st);
			*n = sqlite3_changes(q->db);
		}
	}
	int64_t count = 0, total = 0, dead = 0;
	if(!rc) {
		rc = step_once(q->st_commit);
	}
	if(rc) {
		exec(q->db, "ROLLBACK");
		*n = 0;
	} else if(!query_i64(q->db, "SELECT count(*) FROM msg", &count) &&
	          !query_i64(q->db, "SELECT coalesce(sum(size), 0) FROM msg", &total) &&
	          !query_i64(q->db, "SELECT count(*) FROM dead_letter", &dead)) {
		set_counts(q, count, (uint64_t)total, 0, 0);
		pthread_mutex_lock(&q->smu);
		q->dead = dead;
		pthread_mutex_unlock(&q->smu);
	}
	pthread_mutex_unlock(&q->mu);
	return map_rc(rc);
}

queue_rc_t queue_dead_replay(queue_t *q, int64_t seq, int64_t *n)
{
	static const char *const sql[] = {
	    "INSERT INTO msg(" QUEUE_MSG_COLS ") SELECT rx_ms, 0, qos, retain, local_topic,"
	    " remote_topic, payload, size, device FROM dead_letter WHERE ?1 = 0 OR seq = ?1"
	    " ORDER BY seq",
	    "DELETE FROM dead_letter WHERE ?1 = 0 OR seq = ?1",
	};
	return dead_change(q, sql, 2, seq, n);
}

queue_rc_t queue_dead_purge(queue_t *q, int64_t seq, int64_t *n)
{
	static const char *const sql[] = {"DELETE FROM dead_letter WHERE ?1 = 0 OR seq = ?1"};
	return dead_change(q, sql, 1, seq, n);
}

queue_rc_t queue_open_readonly(const char *path, queue_t **out, char *err, size_t errlen)
{
	*out = NULL;
	queue_t *q = queue_alloc();
	if(!q) {
		snprintf(err, errlen, "out of memory");
		return QUEUE_ERR_NOMEM;
	}
	q->readonly = true;
	queue_rc_t qrc = QUEUE_ERR_OPEN;
	int64_t app_id = 0, version = 0;
	int rc = sqlite3_open_v2(path, &q->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL);
	if(!rc) {
		sqlite3_busy_timeout(q->rdb, 5000);
		rc = query_i64(q->rdb, "PRAGMA application_id", &app_id);
	}
	if(!rc) {
		rc = query_i64(q->rdb, "PRAGMA user_version", &version);
	}
	if(rc) {
		snprintf(err, errlen, "queue '%s': cannot open for reading: %s", path,
		         q->rdb ? sqlite3_errmsg(q->rdb) : sqlite3_errstr(rc));
	} else if(app_id != QUEUE_APP_ID) {
		qrc = QUEUE_ERR_CORRUPT;
		snprintf(err, errlen, "'%s' is not a plantgate queue", path);
	} else if(version != QUEUE_SCHEMA) {
		qrc = QUEUE_ERR_CORRUPT;
		snprintf(err, errlen,
		         "queue '%s' has schema version %lld (this tool reads %d): start the bridge "
		         "once, which upgrades it",
		         path, (long long)version, QUEUE_SCHEMA);
	} else {
		*out = q;
		return QUEUE_OK;
	}
	queue_close(q);
	return qrc;
}
