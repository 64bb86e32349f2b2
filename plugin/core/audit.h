/*
 * audit.h — the tamper-evident audit trail (IEC 62443 CR 2.8, 3.9).
 *
 * Every refusal and every state change of the hub (connect, kick, revoke,
 * reload, ...) is appended to a file as one JSON line.  Each line carries the
 * SHA-256 of the previous line's bytes in its "prev" field, so editing,
 * deleting or inserting a line breaks the chain, and audit_verify_file()
 * names the first broken line.  The module is pure: it never reads the clock
 * (callers pass now_ms), never calls mosquitto and never blocks the broker
 * beyond one write(2) per line.  An I/O failure is counted and reported, never
 * fatal, and never leaves the chain in a state that later lines cannot extend.
 *
 * Line format (keys always in this order, empty fields omitted):
 *   {"ts":"2024-05-01T12:00:00.123Z","seq":7,"event":"publish-denied",
 *    "identity":"plc-7","clientid":"plc-7","address":"10.0.0.7",
 *    "topic":"plant/a/cmd","access":"write","decision":"deny",
 *    "reason":"no rule grants write","rule":"policy.conf:12",
 *    "suppressed":"...","count":3,"prev":"<64 hex>"}
 * The full description, with the verification rules, is docs/audit.md.
 *
 * Threading: an audit_t is used from one thread (mosquitto's main thread).
 */
#ifndef PG_AUDIT_H
#define PG_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Longest value written for one field, in input bytes; longer values are cut
 * at a UTF-8 boundary and end in AUDIT_TRUNC_MARK. */
#define AUDIT_FIELD_MAX 512
#define AUDIT_TRUNC_MARK "...[truncated]"
/* Longest line the reader accepts (the writer stays far below it). */
#define AUDIT_LINE_MAX 65536
/* Default window of audit_write_limited() and the number of distinct
 * refusals it tracks at once (the oldest is flushed when full). */
#define AUDIT_WINDOW_MS_DEFAULT 10000
#define AUDIT_LIMIT_KEYS 1024
/* Length of a hex SHA-256 plus NUL. */
#define AUDIT_HASH_HEX 65

/* Event names (the "event" field). */
#define AUDIT_EV_CONNECT "connect"
#define AUDIT_EV_CONNECT_REFUSED "connect-refused"
#define AUDIT_EV_PUBLISH_DENIED "publish-denied"
#define AUDIT_EV_SUBSCRIBE_DENIED "subscribe-denied"
#define AUDIT_EV_READ_DENIED "read-denied"
#define AUDIT_EV_KICK "kick"
#define AUDIT_EV_REVOKE "revoke"
#define AUDIT_EV_RELOAD "reload"
#define AUDIT_EV_RELOAD_FAILED "reload-failed"
#define AUDIT_EV_RATE_LIMITED "rate-limited"
#define AUDIT_EV_SUPPRESSED "audit-suppressed"
#define AUDIT_EV_CHAIN_RESTART "chain-restart"
#define AUDIT_EV_START "start"
#define AUDIT_EV_STOP "stop"
#define AUDIT_EV_ENROLL "enroll"                 /* plantgate-est issued a certificate */
#define AUDIT_EV_ENROLL_REFUSED "enroll-refused" /* plantgate-est refused a request */

typedef struct audit audit_t;

/* One event.  Every pointer is borrowed for the duration of the call only;
 * NULL or "" means "omit the field".  `event` is required and must be one of
 * the AUDIT_EV_* names.  `count` is written when > 0. */
typedef struct audit_event {
	const char *event;
	const char *identity;
	const char *clientid;
	const char *address;
	const char *topic;
	const char *access;   /* "read", "write", "subscribe", ... */
	const char *decision; /* "allow", "deny", ... */
	const char *reason;
	const char *rule; /* "file:line" */
	int count;
} audit_event_t;

/* One parsed line.  Strings point into `buf_` (owned by the record), are
 * NUL-terminated, valid UTF-8, and NULL when the field is absent. */
typedef struct audit_record {
	const char *ts;
	const char *event;
	const char *identity;
	const char *clientid;
	const char *address;
	const char *topic;
	const char *access;
	const char *decision;
	const char *reason;
	const char *rule;
	const char *suppressed;
	const char *prev;
	int64_t seq;   /* 0 when absent */
	int64_t count; /* 0 when absent */
	char *buf_;
} audit_record_t;

typedef struct audit_verify_result {
	uint64_t lines;       /* lines read (up to and including a broken one) */
	uint64_t restarts;    /* accepted chain-restart lines */
	uint64_t first_restart_line;
	uint64_t bad_line;    /* first broken line, 1-based; 0 when intact */
	char why[256];        /* why bad_line is broken, or the I/O error */
	char head[AUDIT_HASH_HEX]; /* SHA-256 of the last line (zeros if empty) */
} audit_verify_result_t;

/* Open (creating with mode 0640) the log at `path` for appending and continue
 * the hash chain of its last line.  If that line is corrupt or incomplete, a
 * "chain-restart" line saying why is written just before the next line (it
 * needs that line's now_ms); audit_restart_reason() tells the caller so it can
 * log it.  Regular files and character devices only.
 * Returns a new handle the caller frees with audit_close(), or NULL with a
 * message in err (errlen may be 0).  Writes nothing else: the caller logs
 * "start"/"stop". */
audit_t *audit_open(const char *path, char *err, size_t errlen);

/* Flush pending suppressed-repeat counts (stamped with the last now_ms seen),
 * close the file and free `a`.  NULL is fine. */
void audit_close(audit_t *a);

/* Append one line for `ev` (borrowed) stamped with now_ms (ms since the Unix
 * epoch, UTC).  Returns 0 when the whole line reached the file, -1 otherwise:
 * then audit_errors() grows, audit_last_error() says why, and the chain still
 * continues from the last fully written line. */
int audit_write(audit_t *a, const audit_event_t *ev, int64_t now_ms);

/* Like audit_write(), but an event identical in (event, identity, topic,
 * reason) to one written less than the window ago is only counted; once the
 * window has passed, one "audit-suppressed" line carries the count.  Returns
 * 0 written, 1 counted (not written), -1 write failure.  Also runs
 * audit_tick(). */
int audit_write_limited(audit_t *a, const audit_event_t *ev, int64_t now_ms);

/* Write the "audit-suppressed" lines of windows that ended by now_ms and
 * forget them.  Call it from the broker's tick.  Returns the number of write
 * failures (0 normally). */
int audit_tick(audit_t *a, int64_t now_ms);

/* Window of audit_write_limited(), in ms (> 0); default 10 s. */
void audit_set_window(audit_t *a, int64_t window_ms);

/* fsync(2) the log.  Lines are not synced one by one (the page cache holds
 * them until the kernel writes back); call this e.g. on reload and at stop.
 * 0 on success (or when the file cannot be synced, e.g. a tty), -1 counted
 * as an error. */
int audit_flush(audit_t *a);

/* Failed writes/syncs since open. */
uint64_t audit_errors(const audit_t *a);
/* Lines written since open. */
uint64_t audit_lines(const audit_t *a);
/* Text of the last failure ("" if none); borrowed, valid until the next
 * call on `a`. */
const char *audit_last_error(const audit_t *a);
/* Hex SHA-256 of the last line written (the chain head), into out[65].  Log
 * it elsewhere now and then: it anchors the tail against truncation. */
void audit_head(const audit_t *a, char out[AUDIT_HASH_HEX]);

/* Why this handle starts (or started) a new chain segment: the reason of a
 * pending or written chain-restart line, or NULL.  Borrowed. */
const char *audit_restart_reason(const audit_t *a);

/* Test hooks: replace write(2) and ftruncate(2) (NULL restores each) to
 * simulate full disks and short writes. */
typedef ssize_t (*audit_write_fn)(int fd, const void *buf, size_t len);
typedef int (*audit_truncate_fn)(int fd, off_t len);
void audit_set_io_hooks(audit_t *a, audit_write_fn wfn, audit_truncate_fn tfn);

/* True when `name` is one of the AUDIT_EV_* names. */
bool audit_event_known(const char *name);

/* Format one line (without newline) into buf.  Fields longer than
 * AUDIT_FIELD_MAX are cut (sets *truncated when not NULL).  prev is the hex
 * hash of the previous line; suppressed may be NULL.  Returns the length, or
 * -1 when buf is too small.  Borrows everything. */
int audit_format_line(char *buf, size_t buflen, const audit_event_t *ev,
                      const char *suppressed, int64_t now_ms, int64_t seq,
                      const char *prev, bool *truncated);

/* Format now_ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out[25]. */
void audit_format_ts(int64_t now_ms, char out[25]);

/* Parse one line (without its newline; len bytes, NUL not required) as a flat
 * JSON object of string and integer values with the audit keys.  Checks the
 * shape: required ts/seq/event/prev, formats of ts and prev, no duplicate or
 * unknown keys.  On success fills *out (free with audit_record_free) and
 * returns 0; on failure returns -1 with a reason in err, *out left empty. */
int audit_parse_line(const char *line, size_t len, audit_record_t *out,
                     char *err, size_t errlen);
/* Free a record's storage and clear it.  NULL and empty records are fine. */
void audit_record_free(audit_record_t *r);

/* Check the hash chain of the file at `path` (see docs/audit.md).  Returns 0
 * when intact, 1 when broken (out->bad_line, out->why), -1 when the file
 * cannot be read (out->why).  Borrows path and out. */
int audit_verify_file(const char *path, audit_verify_result_t *out);
/* The same over a buffer (len bytes): the fuzz target's entry. */
int audit_verify_mem(const char *data, size_t len, audit_verify_result_t *out);

#endif
