/*
 * audit.c — the hash-chained audit log (see audit.h and docs/audit.md).
 *
 * The writer formats one event as a JSON line with a fixed key order, hands
 * it to the kernel with a single write(2) on an O_APPEND descriptor, and only
 * then advances the chain (seq and the SHA-256 of the line just written).  A
 * failed or short write is undone with ftruncate when the file allows it;
 * otherwise the stray bytes become a line of their own that the next write
 * acknowledges with an explicit "chain-restart" line, so the file always
 * verifies.  On open the last line of an existing file is read back to carry
 * the chain across broker restarts.
 *
 * The reader is a small strict parser for these flat JSON objects (string and
 * integer values only, no nesting), shared by audit_verify_*, audit_open and
 * the plantgate-audit tool; it is the target of tests/fuzz/fuzz_audit.c.
 *
 * Repeated identical refusals go through a bounded table (AUDIT_LIMIT_KEYS
 * entries, a ring in arrival order plus a hash map) so a flooding device costs
 * one line per window, not one per attempt.
 */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hmap.h"
#include "json.h"
#include "util.h"

#define AUDIT_HASH_LEN 32
#define AUDIT_ZERO_HEX "0000000000000000000000000000000000000000000000000000000000000000"
/* Largest line the writer can produce: every field escaped at 6 bytes per
 * input byte plus the keys; a write buffer of this size never overflows. */
#define AUDIT_WBUF_MAX (16 * (6 * AUDIT_FIELD_MAX + 64) + 256)

/* ------------------------------------------------------------------------
 * Events
 * ---------------------------------------------------------------------- */

static const char *const audit_event_names[] = {
	AUDIT_EV_CONNECT,      AUDIT_EV_CONNECT_REFUSED, AUDIT_EV_PUBLISH_DENIED,
	AUDIT_EV_SUBSCRIBE_DENIED, AUDIT_EV_READ_DENIED, AUDIT_EV_KICK,
	AUDIT_EV_REVOKE,       AUDIT_EV_RELOAD,          AUDIT_EV_RELOAD_FAILED,
	AUDIT_EV_RATE_LIMITED, AUDIT_EV_SUPPRESSED,      AUDIT_EV_CHAIN_RESTART,
	AUDIT_EV_START,        AUDIT_EV_STOP,            AUDIT_EV_ENROLL,
	AUDIT_EV_ENROLL_REFUSED,
};

bool audit_event_known(const char *name)
{
	if(!name) {
		return false;
	}
	for(size_t i = 0; i < sizeof(audit_event_names) / sizeof(audit_event_names[0]); i++) {
		if(!strcmp(name, audit_event_names[i])) {
			return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------- */

static void audit_sha256(const void *data, size_t len, unsigned char out[AUDIT_HASH_LEN])
{
	unsigned int n = 0;
	if(!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL)) {
		/* Only on a broken OpenSSL; a zero hash makes verify fail loudly. */
		memset(out, 0, AUDIT_HASH_LEN);
	}
}

static void audit_sha256_hex(const void *data, size_t len, char out[AUDIT_HASH_HEX])
{
	unsigned char h[AUDIT_HASH_LEN];
	audit_sha256(data, len, h);
	util_hex(h, sizeof(h), out);
}

void audit_format_ts(int64_t now_ms, char out[25])
{
	/* Clamp to years 1970..9999 so the field keeps its fixed width. */
	if(now_ms < 0) {
		now_ms = 0;
	}
	if(now_ms > INT64_C(253402300799999)) {
		now_ms = INT64_C(253402300799999);
	}
	time_t s = (time_t)(now_ms / 1000);
	int ms = (int)(now_ms % 1000);
	struct tm tm;
	if(!gmtime_r(&s, &tm)) {
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = 70;
		tm.tm_mday = 1;
	}
	if(util_snprintf(out, 25, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms) < 0) {
		util_strlcpy(out, "1970-01-01T00:00:00.000Z", 25);
	}
}

/* ------------------------------------------------------------------------
 * Writer: JSON formatting
 * ---------------------------------------------------------------------- */

typedef struct audit_sbuf {
	char *p;
	size_t len;
	size_t cap;
	bool overflow;
} audit_sbuf_t;

static void audit_sb_put(audit_sbuf_t *b, const char *s, size_t n)
{
	if(b->overflow || b->cap - b->len < n + 1) {
		b->overflow = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void audit_sb_str(audit_sbuf_t *b, const char *s)
{
	audit_sb_put(b, s, strlen(s));
}

static void audit_sb_int(audit_sbuf_t *b, int64_t v)
{
	char tmp[32];
	int n = util_snprintf(tmp, sizeof(tmp), "%" PRId64, v);
	if(n < 0) {
		b->overflow = true;
		return;
	}
	audit_sb_put(b, tmp, (size_t)n);
}

static void audit_sb_json_put(void *b, const char *s, size_t n)
{
	if(n) {
		audit_sb_put(b, s, n);
	}
}

/* Append s as a JSON string body, escaped by common/json.c in its strict
 * mode ('"' and '\\', control characters and DEL, U+2028/U+2029, each byte
 * of invalid UTF-8 as \ufffd).  At most AUDIT_FIELD_MAX input bytes. */
static void audit_sb_escaped(audit_sbuf_t *b, const char *str, bool *truncated)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);
	bool cut = false;
	if(n > AUDIT_FIELD_MAX) {
		n = AUDIT_FIELD_MAX;
		/* Back up to the start of a UTF-8 sequence (at most 3 bytes). */
		for(int k = 0; k < 3 && n > 0 && (s[n] & 0xC0) == 0x80; k++) {
			n--;
		}
		cut = true;
	}
	json_escape(str, n, JSON_ESC_STRICT, audit_sb_json_put, b);
	if(cut) {
		audit_sb_str(b, AUDIT_TRUNC_MARK);
		if(truncated) {
			*truncated = true;
		}
	}
}

static void audit_sb_field(audit_sbuf_t *b, const char *key, const char *val, bool *truncated)
{
	if(!val || !*val) {
		return;
	}
	audit_sb_str(b, ",\"");
	audit_sb_str(b, key);
	audit_sb_str(b, "\":\"");
	audit_sb_escaped(b, val, truncated);
	audit_sb_str(b, "\"");
}

int audit_format_line(char *buf, size_t buflen, const audit_event_t *ev, const char *suppressed,
                      int64_t now_ms, int64_t seq, const char *prev, bool *truncated)
{
	audit_sbuf_t b = {.p = buf, .len = 0, .cap = buflen, .overflow = buflen == 0};
	char ts[25];
	if(!ev || !ev->event || !prev) {
		return -1;
	}
	if(buflen > 0) {
		buf[0] = '\0';
	}
	audit_format_ts(now_ms, ts);
	audit_sb_str(&b, "{\"ts\":\"");
	audit_sb_str(&b, ts);
	audit_sb_str(&b, "\",\"seq\":");
	audit_sb_int(&b, seq);
	audit_sb_str(&b, ",\"event\":\"");
	audit_sb_escaped(&b, ev->event, truncated);
	audit_sb_str(&b, "\"");
	audit_sb_field(&b, "identity", ev->identity, truncated);
	audit_sb_field(&b, "clientid", ev->clientid, truncated);
	audit_sb_field(&b, "address", ev->address, truncated);
	audit_sb_field(&b, "topic", ev->topic, truncated);
	audit_sb_field(&b, "access", ev->access, truncated);
	audit_sb_field(&b, "decision", ev->decision, truncated);
	audit_sb_field(&b, "reason", ev->reason, truncated);
	audit_sb_field(&b, "rule", ev->rule, truncated);
	audit_sb_field(&b, "suppressed", suppressed, truncated);
	if(ev->count > 0) {
		audit_sb_str(&b, ",\"count\":");
		audit_sb_int(&b, ev->count);
	}
	audit_sb_str(&b, ",\"prev\":\"");
	audit_sb_escaped(&b, prev, truncated);
	audit_sb_str(&b, "\"}");
	if(b.overflow || b.len > INT_MAX) {
		return -1;
	}
	return (int)b.len;
}

/* ------------------------------------------------------------------------
 * Reader: strict flat JSON object parser
 * ---------------------------------------------------------------------- */

enum { AUDIT_T_STR, AUDIT_T_INT };

static const struct audit_key {
	const char *name;
	size_t off;
	int type;
} audit_keys[] = {
	{"ts", offsetof(audit_record_t, ts), AUDIT_T_STR},
	{"seq", offsetof(audit_record_t, seq), AUDIT_T_INT},
	{"event", offsetof(audit_record_t, event), AUDIT_T_STR},
	{"identity", offsetof(audit_record_t, identity), AUDIT_T_STR},
	{"clientid", offsetof(audit_record_t, clientid), AUDIT_T_STR},
	{"address", offsetof(audit_record_t, address), AUDIT_T_STR},
	{"topic", offsetof(audit_record_t, topic), AUDIT_T_STR},
	{"access", offsetof(audit_record_t, access), AUDIT_T_STR},
	{"decision", offsetof(audit_record_t, decision), AUDIT_T_STR},
	{"reason", offsetof(audit_record_t, reason), AUDIT_T_STR},
	{"rule", offsetof(audit_record_t, rule), AUDIT_T_STR},
	{"suppressed", offsetof(audit_record_t, suppressed), AUDIT_T_STR},
	{"count", offsetof(audit_record_t, count), AUDIT_T_INT},
	{"prev", offsetof(audit_record_t, prev), AUDIT_T_STR},
};
#define AUDIT_NKEYS (sizeof(audit_keys) / sizeof(audit_keys[0]))
/* Positions in audit_keys of the integer fields, whose presence is tracked by
 * the `seen` bit mask (a 0 value cannot tell absent from present). */
#define AUDIT_KEY_SEQ 1
#define AUDIT_KEY_COUNT 12

/* "what at column N" into err; -1. */
static int audit_perr(const json_in_t *in, const char *line, const char *what, char *err, size_t errlen)
{
	if(errlen) {
		util_snprintf(err, errlen, "%s at column %zu", what, (size_t)(in->p - line) + 1);
	}
	return -1;
}

/* Read the members of the object (its '{' consumed) into rec, decoding the
 * strings into rec->buf_ (as large as the line + 1: the decoded strings are
 * never longer than their encoded form).  *seen gets a bit per key read. */
static int audit_parse_members(json_in_t *in, const char *line, audit_record_t *rec, uint32_t *seen,
                               char *err, size_t errlen)
{
	size_t w = 0;
	if(json_peek(in, '}')) {
		in->p++;
		return 0;
	}
	for(;;) {
		/* The key's text is only needed until it is looked up: decode it
		 * where the next value will go. */
		const char *key = rec->buf_ + w;
		if(json_string_into(in, rec->buf_ + w, NULL)) {
			return audit_perr(in, line, in->why, err, errlen);
		}
		size_t k = 0;
		while(k < AUDIT_NKEYS && strcmp(audit_keys[k].name, key)) {
			k++;
		}
		if(k == AUDIT_NKEYS) {
			return audit_perr(in, line, "unknown key", err, errlen);
		}
		if(*seen & (1u << k)) {
			return audit_perr(in, line, "duplicate key", err, errlen);
		}
		*seen |= 1u << k;
		if(json_expect(in, ':')) {
			return audit_perr(in, line, "expected ':'", err, errlen);
		}
		bool is_str = json_peek(in, '"');
		if(is_str != (audit_keys[k].type == AUDIT_T_STR)) {
			return audit_perr(in, line, is_str ? "expected an integer" : "expected a string", err, errlen);
		}
		if(is_str) {
			const char *v = rec->buf_ + w;
			size_t n;
			if(json_string_into(in, rec->buf_ + w, &n)) {
				return audit_perr(in, line, in->why, err, errlen);
			}
			w += n + 1;
			memcpy((char *)rec + audit_keys[k].off, &v, sizeof(v));
		} else {
			int64_t v;
			if(json_int(in, INT64_MIN, INT64_MAX, &v)) {
				return audit_perr(in, line, in->why, err, errlen);
			}
			memcpy((char *)rec + audit_keys[k].off, &v, sizeof(v));
		}
		if(json_peek(in, '}')) {
			in->p++;
			return 0;
		}
		if(json_expect(in, ',')) {
			return audit_perr(in, line, "expected ',' or '}'", err, errlen);
		}
	}
}

static bool audit_ts_valid(const char *ts)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	if(strlen(ts) != sizeof(pat) - 1) {
		return false;
	}
	for(size_t i = 0; pat[i]; i++) {
		if(pat[i] == 'd' ? (ts[i] < '0' || ts[i] > '9') : ts[i] != pat[i]) {
			return false;
		}
	}
	return true;
}

static bool audit_hash_hex_valid(const char *h)
{
	size_t i = 0;
	for(; h[i]; i++) {
		if(!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) {
			return false;
		}
	}
	return i == 2 * AUDIT_HASH_LEN;
}

static bool audit_event_name_valid(const char *e)
{
	size_t i = 0;
	for(; e[i]; i++) {
		if(!((e[i] >= 'a' && e[i] <= 'z') || e[i] == '-')) {
			return false;
		}
	}
	return i > 0 && i <= 32;
}

void audit_record_free(audit_record_t *r)
{
	if(!r) {
		return;
	}
	free(r->buf_);
	memset(r, 0, sizeof(*r));
}

int audit_parse_line(const char *line, size_t len, audit_record_t *out, char *err, size_t errlen)
{
	_Static_assert(AUDIT_NKEYS <= 32, "seen is a 32-bit mask");
	audit_record_t rec;
	json_in_t in;
	uint32_t seen = 0;
	int rc = -1;
	memset(&rec, 0, sizeof(rec));
	memset(out, 0, sizeof(*out));
	if(errlen) {
		err[0] = '\0';
	}
	if(len > AUDIT_LINE_MAX) {
		if(errlen) {
			util_snprintf(err, errlen, "line longer than %d bytes", AUDIT_LINE_MAX);
		}
		return -1;
	}
	rec.buf_ = malloc(len + 1);
	if(!rec.buf_) {
		if(errlen) {
			util_strlcpy(err, "out of memory", errlen);
		}
		return -1;
	}
	json_in_init(&in, line, len);
	const char *nl = memchr(line, '\n', len);
	if(nl) { /* one line, one record: JSON's white space stops at the line */
		in.p = nl;
		audit_perr(&in, line, "line break inside the line", err, errlen);
		goto out;
	}
	if(json_expect(&in, '{')) {
		audit_perr(&in, line, len ? "expected '{'" : "empty line", err, errlen);
		goto out;
	}
	if(audit_parse_members(&in, line, &rec, &seen, err, errlen)) {
		goto out;
	}
	if(!json_at_end(&in)) {
		audit_perr(&in, line, "text after the object", err, errlen);
		goto out;
	}

	/* Shape. */
	const char *why = NULL;
	if(!rec.ts) {
		why = "missing \"ts\"";
	} else if(!(seen & (1u << AUDIT_KEY_SEQ))) {
		why = "missing \"seq\"";
	} else if(!rec.event) {
		why = "missing \"event\"";
	} else if(!rec.prev) {
		why = "missing \"prev\"";
	} else if(!audit_ts_valid(rec.ts)) {
		why = "\"ts\" is not YYYY-MM-DDTHH:MM:SS.mmmZ";
	} else if(rec.seq < 1) {
		why = "\"seq\" is not a positive integer";
	} else if(!audit_event_name_valid(rec.event)) {
		why = "\"event\" is not a lower-case name";
	} else if(!audit_hash_hex_valid(rec.prev)) {
		why = "\"prev\" is not 64 lower-case hex digits";
	} else if((seen & (1u << AUDIT_KEY_COUNT)) && (rec.count < 1 || rec.count > INT_MAX)) {
		why = "\"count\" is out of range";
	}
	if(why) {
		if(errlen) {
			util_strlcpy(err, why, errlen);
		}
		goto out;
	}
	*out = rec;
	rec.buf_ = NULL;
	rc = 0;
out:
	free(rec.buf_);
	return rc;
}

/* ------------------------------------------------------------------------
 * Verifier
 * ---------------------------------------------------------------------- */

typedef struct audit_verifier {
	audit_verify_result_t *out;
	char prev_hex[AUDIT_HASH_HEX]; /* hash of the previous line */
	int64_t prev_seq;
	bool pending_bad; /* previous line unparseable; only a restart may follow */
	uint64_t pending_line;
	char pending_why[200];
	bool done;
	/* line assembly */
	char *line;
	size_t len;
	bool overflow;
	EVP_MD_CTX *md;
	bool md_started;
} audit_verifier_t;

static int audit_broken(audit_verifier_t *v, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int audit_broken(audit_verifier_t *v, uint64_t line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(v->out->why, sizeof(v->out->why), fmt, ap);
	va_end(ap);
	(void)n;
	v->out->bad_line = line;
	v->done = true;
	return 1;
}

/* One complete line (without newline).  Returns 1 once the chain is broken. */
static int audit_verify_line(audit_verifier_t *v, const char *line, size_t len, bool overflow,
                             const char *hash_hex, bool unterminated)
{
	audit_record_t rec;
	char perr[160];
	uint64_t n = ++v->out->lines;
	int prc = -1;
	if(overflow) {
		util_snprintf(perr, sizeof(perr), "line longer than %d bytes", AUDIT_LINE_MAX);
		memset(&rec, 0, sizeof(rec));
	} else {
		prc = audit_parse_line(line, len, &rec, perr, sizeof(perr));
	}
	bool restart = prc == 0 && !strcmp(rec.event, AUDIT_EV_CHAIN_RESTART);
	bool prev_ok = prc == 0 && !strcmp(rec.prev, v->prev_hex);

	if(v->pending_bad && prc == 0) {
		if(!(restart && prev_ok)) {
			audit_record_free(&rec);
			return audit_broken(v, v->pending_line, "%s", v->pending_why);
		}
		v->pending_bad = false;
	} else if(v->pending_bad) {
		/* Another unparseable line: handled below. */
	} else if(prc == 0 && n == 1) {
		if(restart) {
			audit_record_free(&rec);
			return audit_broken(v, n, "the file starts with a chain-restart: the lines before it are missing");
		}
		if(!prev_ok) {
			audit_record_free(&rec);
			return audit_broken(v, n, "the first line's prev is not all zeros: lines before it were deleted");
		}
		if(rec.seq != 1) {
			int64_t s = rec.seq;
			audit_record_free(&rec);
			return audit_broken(v, n, "the first line has seq %" PRId64 ", not 1: lines before it were deleted", s);
		}
	} else if(prc == 0 && restart) {
		if(!prev_ok) {
			audit_record_free(&rec);
			return audit_broken(v, n - 1, "line %" PRIu64 " was altered, or lines after it deleted: its SHA-256 does not match the prev of the chain-restart on line %" PRIu64, n - 1, n);
		}
	} else if(prc == 0) {
		int64_t last = v->prev_seq, got = rec.seq;
		bool seq_ok = last < INT64_MAX && got == last + 1;
		if(!prev_ok || !seq_ok) {
			audit_record_free(&rec);
		}
		if(prev_ok && !seq_ok) {
			return audit_broken(v, n, "seq %" PRId64 " follows %" PRId64 ": this line was altered", got, last);
		}
		if(!prev_ok && seq_ok) {
			return audit_broken(v, n - 1, "line %" PRIu64 " was altered: its SHA-256 does not match the prev of line %" PRIu64, n - 1, n);
		}
		if(!prev_ok && got > last) {
			return audit_broken(v, n, "seq jumps from %" PRId64 " to %" PRId64 ": %" PRIu64 " line(s) before this one were deleted", last, got, (uint64_t)got - (uint64_t)last - 1);
		}
		if(!prev_ok) {
			return audit_broken(v, n, "seq %" PRId64 " follows %" PRId64 " and prev does not match line %" PRIu64 ": lines were inserted, reordered or replaced", got, last, n - 1);
		}
	}

	if(prc != 0) {
		/* Acceptable only if a chain-restart naming the last of a run of
		 * such lines follows (a write cut short, then a cut restart line). */
		if(!v->pending_bad) {
			v->pending_bad = true;
			v->pending_line = n;
			util_snprintf(v->pending_why, sizeof(v->pending_why), "%s%s",
			              unterminated ? "last line is incomplete (no newline; truncated?): "
			                           : "line does not parse: ",
			              perr);
		}
		v->prev_seq = 0;
	} else {
		if(restart) {
			if(rec.seq != 1) {
				int64_t s = rec.seq;
				audit_record_free(&rec);
				return audit_broken(v, n, "chain-restart with seq %" PRId64 ", expected 1", s);
			}
			if(v->out->restarts++ == 0) {
				v->out->first_restart_line = n;
			}
		}
		v->prev_seq = rec.seq;
		audit_record_free(&rec);
		if(unterminated) {
			return audit_broken(v, n, "last line has no newline: the file was cut or a write was interrupted");
		}
	}
	util_strlcpy(v->prev_hex, hash_hex, sizeof(v->prev_hex));
	util_strlcpy(v->out->head, hash_hex, sizeof(v->out->head));
	return 0;
}

static int audit_verifier_init(audit_verifier_t *v, audit_verify_result_t *out)
{
	memset(v, 0, sizeof(*v));
	memset(out, 0, sizeof(*out));
	v->out = out;
	util_strlcpy(v->prev_hex, AUDIT_ZERO_HEX, sizeof(v->prev_hex));
	util_strlcpy(out->head, AUDIT_ZERO_HEX, sizeof(out->head));
	v->line = malloc(AUDIT_LINE_MAX);
	v->md = EVP_MD_CTX_new();
	if(!v->line || !v->md) {
		util_strlcpy(out->why, "out of memory", sizeof(out->why));
		return -1;
	}
	return 0;
}

static void audit_verifier_free(audit_verifier_t *v)
{
	free(v->line);
	EVP_MD_CTX_free(v->md);
	v->line = NULL;
	v->md = NULL;
}

static void audit_verifier_end_line(audit_verifier_t *v, bool unterminated)
{
	unsigned char h[AUDIT_HASH_LEN];
	char hex[AUDIT_HASH_HEX];
	unsigned int hn = 0;
	if(!v->md_started) {
		EVP_DigestInit_ex(v->md, EVP_sha256(), NULL);
	}
	if(!EVP_DigestFinal_ex(v->md, h, &hn)) {
		memset(h, 0, sizeof(h));
	}
	util_hex(h, sizeof(h), hex);
	audit_verify_line(v, v->line, v->len, v->overflow, hex, unterminated);
	v->len = 0;
	v->overflow = false;
	v->md_started = false;
}

static void audit_verifier_feed(audit_verifier_t *v, const char *data, size_t n)
{
	while(n > 0 && !v->done) {
		const char *nl = memchr(data, '\n', n);
		size_t seg = nl ? (size_t)(nl - data) : n;
		if(!v->md_started) {
			EVP_DigestInit_ex(v->md, EVP_sha256(), NULL);
			v->md_started = true;
		}
		EVP_DigestUpdate(v->md, data, seg);
		if(!v->overflow && seg <= AUDIT_LINE_MAX - v->len) {
			memcpy(v->line + v->len, data, seg);
			v->len += seg;
		} else {
			v->overflow = true;
		}
		if(nl) {
			audit_verifier_end_line(v, false);
			seg++;
		}
		data += seg;
		n -= seg;
	}
}

static int audit_verifier_finish(audit_verifier_t *v)
{
	if(!v->done && (v->len > 0 || v->overflow || v->md_started)) {
		audit_verifier_end_line(v, true);
	}
	if(!v->done && v->pending_bad) {
		audit_broken(v, v->pending_line, "%s", v->pending_why);
	}
	return v->done ? 1 : 0;
}

int audit_verify_mem(const char *data, size_t len, audit_verify_result_t *out)
{
	audit_verifier_t v;
	int rc = -1;
	if(audit_verifier_init(&v, out) == 0) {
		audit_verifier_feed(&v, data, len);
		rc = audit_verifier_finish(&v);
	}
	audit_verifier_free(&v);
	return rc;
}

int audit_verify_file(const char *path, audit_verify_result_t *out)
{
	audit_verifier_t v;
	char *chunk = NULL;
	int fd = -1, rc = -1;
	if(audit_verifier_init(&v, out)) {
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if(fd < 0) {
		util_snprintf(out->why, sizeof(out->why), "cannot open: %s", strerror(errno));
		goto out;
	}
	chunk = malloc(AUDIT_LINE_MAX);
	if(!chunk) {
		util_strlcpy(out->why, "out of memory", sizeof(out->why));
		goto out;
	}
	while(!v.done) {
		ssize_t r = read(fd, chunk, AUDIT_LINE_MAX);
		if(r < 0 && errno == EINTR) {
			continue;
		}
		if(r < 0) {
			util_snprintf(out->why, sizeof(out->why), "read error: %s", strerror(errno));
			goto out;
		}
		if(r == 0) {
			break;
		}
		audit_verifier_feed(&v, chunk, (size_t)r);
	}
	rc = audit_verifier_finish(&v);
out:
	if(fd >= 0) {
		close(fd);
	}
	free(chunk);
	audit_verifier_free(&v);
	return rc;
}

/* ------------------------------------------------------------------------
 * The log handle
 * ---------------------------------------------------------------------- */

/* One tracked refusal of audit_write_limited(). */
typedef struct audit_rl {
	char *key;
	int64_t start_ms;
	uint64_t count; /* repeats counted, not written */
	bool clientid_varied;
	bool address_varied;
	char *f[9]; /* event identity clientid address topic access decision reason rule */
} audit_rl_t;

struct audit {
	int fd;
	bool regular;
	off_t size; /* bytes known to be in the file */
	int64_t seq; /* seq of the last line written */
	char prev[AUDIT_HASH_HEX];
	bool restart_pending;
	bool need_newline; /* the file ends in a partial line */
	char restart_why[256];
	char restart_done[256]; /* reason of the last restart written */
	uint64_t errors;
	uint64_t lines;
	char last_error[256];
	int64_t last_now;
	audit_write_fn write_fn;
	audit_truncate_fn truncate_fn;
	char *wbuf;
	/* rate limiting */
	int64_t window_ms;
	hmap_t *rl_map;
	audit_rl_t **rl_ring;
	size_t rl_head;
	size_t rl_n;
};

static void audit_fail(audit_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void audit_fail(audit_t *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(a->last_error, sizeof(a->last_error), fmt, ap);
	va_end(ap);
	(void)n;
	a->errors++;
}

void audit_set_io_hooks(audit_t *a, audit_write_fn wfn, audit_truncate_fn tfn)
{
	if(a) {
		a->write_fn = wfn ? wfn : write;
		a->truncate_fn = tfn ? tfn : ftruncate;
	}
}

uint64_t audit_errors(const audit_t *a)
{
	return a ? a->errors : 0;
}

uint64_t audit_lines(const audit_t *a)
{
	return a ? a->lines : 0;
}

const char *audit_last_error(const audit_t *a)
{
	return a ? a->last_error : "";
}

void audit_head(const audit_t *a, char out[AUDIT_HASH_HEX])
{
	util_strlcpy(out, a ? a->prev : AUDIT_ZERO_HEX, AUDIT_HASH_HEX);
}

void audit_set_window(audit_t *a, int64_t window_ms)
{
	if(a && window_ms > 0) {
		a->window_ms = window_ms;
	}
}

/* Write one line with seq; advance the chain only if all of it landed. */
static int audit_put_line(audit_t *a, const audit_event_t *ev, const char *suppressed,
                          int64_t now_ms, int64_t seq)
{
	size_t off = a->need_newline ? 1 : 0;
	if(off) {
		a->wbuf[0] = '\n';
	}
	int n = audit_format_line(a->wbuf + off, AUDIT_WBUF_MAX - off - 1, ev, suppressed, now_ms,
	                          seq, a->prev, NULL);
	if(n < 0) {
		audit_fail(a, "audit line for event \"%s\" could not be formatted",
		           ev && ev->event && audit_event_known(ev->event) ? ev->event : "?");
		return -1;
	}
	size_t len = off + (size_t)n + 1;
	a->wbuf[len - 1] = '\n';
	ssize_t w;
	do {
		w = a->write_fn(a->fd, a->wbuf, len);
	} while(w < 0 && errno == EINTR);
	if(w == (ssize_t)len) {
		audit_sha256_hex(a->wbuf + off, (size_t)n, a->prev);
		a->seq = seq;
		a->size += (off_t)len;
		a->need_newline = false;
		a->lines++;
		return 0;
	}
	if(w < 0) {
		audit_fail(a, "audit write failed: %s", strerror(errno));
		return -1;
	}
	/* Short write: undo it if the file is ours alone and can be truncated. */
	struct stat st;
	if(a->regular && w > 0 && fstat(a->fd, &st) == 0 && st.st_size == a->size + w &&
	   a->truncate_fn(a->fd, a->size) == 0) {
		audit_fail(a, "audit write cut short (%zd of %zu bytes), undone", w, len);
		return -1;
	}
	audit_fail(a, "audit write cut short (%zd of %zu bytes)", w, len);
	if(w == 0) {
		return -1;
	}
	/* The stray bytes stay: they end the previous partial line (if any) and
	 * form a new partial line the next write acknowledges with a restart. */
	a->size += w;
	size_t lstart = off;
	if(off) {
		a->need_newline = false;
	}
	if((size_t)w > lstart) {
		audit_sha256_hex(a->wbuf + lstart, (size_t)w - lstart, a->prev);
		a->need_newline = true;
		a->restart_pending = true;
		util_snprintf(a->restart_why, sizeof(a->restart_why),
		              "a write was cut short after %zd of %zu bytes", w, len);
	}
	return -1;
}

/* Write the pending chain-restart line. */
static int audit_put_restart(audit_t *a, int64_t now_ms)
{
	char why[256];
	util_strlcpy(why, a->restart_why, sizeof(why));
	audit_event_t r = {.event = AUDIT_EV_CHAIN_RESTART, .reason = why};
	a->restart_pending = false;
	if(audit_put_line(a, &r, NULL, now_ms, 1) == 0) {
		util_strlcpy(a->restart_done, why, sizeof(a->restart_done));
		return 0;
	}
	if(!a->restart_pending) {
		/* Nothing landed: keep the same reason for the next try. */
		a->restart_pending = true;
		util_strlcpy(a->restart_why, why, sizeof(a->restart_why));
	}
	return -1;
}

/* Emit a pending chain-restart, then the line itself. */
static int audit_put(audit_t *a, const audit_event_t *ev, const char *suppressed, int64_t now_ms)
{
	if(a->restart_pending && audit_put_restart(a, now_ms)) {
		return -1;
	}
	return audit_put_line(a, ev, suppressed, now_ms, a->seq + 1);
}

const char *audit_restart_reason(const audit_t *a)
{
	if(!a) {
		return NULL;
	}
	if(a->restart_pending) {
		return a->restart_why;
	}
	return a->restart_done[0] ? a->restart_done : NULL;
}

int audit_write(audit_t *a, const audit_event_t *ev, int64_t now_ms)
{
	if(!a) {
		return -1;
	}
	a->last_now = now_ms;
	if(!ev || !audit_event_known(ev->event)) {
		audit_fail(a, "audit event without a known name");
		return -1;
	}
	return audit_put(a, ev, NULL, now_ms);
}

int audit_flush(audit_t *a)
{
	if(!a) {
		return -1;
	}
	if(fsync(a->fd) == 0 || errno == EINVAL || errno == EROFS) {
		return 0;
	}
	audit_fail(a, "audit fsync failed: %s", strerror(errno));
	return -1;
}

/* Read the last line of the file and set the chain state from it. */
static int audit_load_tail(audit_t *a, char *err, size_t errlen)
{
	off_t size = a->size;
	char tail[4096];
	if(size == 0) {
		return 0;
	}
	ssize_t r = pread(a->fd, tail, 1, size - 1);
	if(r != 1) {
		util_snprintf(err, errlen, "cannot read the log's last byte: %s",
		              r < 0 ? strerror(errno) : "short read");
		return -1;
	}
	bool unterminated = tail[0] != '\n';
	off_t end = unterminated ? size : size - 1;
	/* Find the start of the last line. */
	off_t start = end;
	while(start > 0) {
		size_t chunk = start > (off_t)sizeof(tail) ? sizeof(tail) : (size_t)start;
		r = pread(a->fd, tail, chunk, start - (off_t)chunk);
		if(r != (ssize_t)chunk) {
			util_snprintf(err, errlen, "cannot read the log: %s", r < 0 ? strerror(errno) : "short read");
			return -1;
		}
		size_t i = chunk;
		while(i > 0 && tail[i - 1] != '\n') {
			i--;
		}
		if(i > 0) {
			start = start - (off_t)chunk + (off_t)i;
			break;
		}
		start -= (off_t)chunk;
	}
	/* Hash it (streaming: it may be longer than any line we accept). */
	size_t len = (size_t)(end - start);
	char *line = len <= AUDIT_LINE_MAX ? malloc(len + 1) : NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char h[AUDIT_HASH_LEN];
	unsigned int hn = 0;
	int rc = -1;
	if(!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		util_strlcpy(err, "cannot start SHA-256", errlen);
		goto out;
	}
	for(off_t pos = start; pos < end;) {
		size_t chunk = end - pos > (off_t)sizeof(tail) ? sizeof(tail) : (size_t)(end - pos);
		r = pread(a->fd, tail, chunk, pos);
		if(r != (ssize_t)chunk) {
			util_snprintf(err, errlen, "cannot read the log: %s", r < 0 ? strerror(errno) : "short read");
			goto out;
		}
		EVP_DigestUpdate(md, tail, chunk);
		if(line) {
			memcpy(line + (pos - start), tail, chunk);
		}
		pos += (off_t)chunk;
	}
	if(!EVP_DigestFinal_ex(md, h, &hn)) {
		util_strlcpy(err, "cannot finish SHA-256", errlen);
		goto out;
	}
	util_hex(h, sizeof(h), a->prev);

	audit_record_t rec;
	char perr[160];
	if(unterminated) {
		a->need_newline = true;
		util_snprintf(a->restart_why, sizeof(a->restart_why),
		              "the last line (at byte %jd) has no newline: a write was cut short",
		              (intmax_t)start);
	} else if(!line) {
		util_snprintf(a->restart_why, sizeof(a->restart_why),
		              "the last line (at byte %jd) is longer than %d bytes", (intmax_t)start,
		              AUDIT_LINE_MAX);
	} else if(audit_parse_line(line, len, &rec, perr, sizeof(perr))) {
		util_snprintf(a->restart_why, sizeof(a->restart_why),
		              "the last line (at byte %jd) does not parse: %s", (intmax_t)start, perr);
	} else {
		a->seq = rec.seq;
		audit_record_free(&rec);
		rc = 0;
		goto out;
	}
	a->restart_pending = true;
	a->seq = 0;
	rc = 0;
out:
	free(line);
	EVP_MD_CTX_free(md);
	return rc;
}

audit_t *audit_open(const char *path, char *err, size_t errlen)
{
	char dummy[1];
	struct stat st;
	if(!err || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if(!path || !*path) {
		util_strlcpy(err, "no audit log path", errlen);
		return NULL;
	}
	audit_t *a = calloc(1, sizeof(*a));
	if(!a) {
		util_strlcpy(err, "out of memory", errlen);
		return NULL;
	}
	a->fd = -1;
	a->write_fn = write;
	a->truncate_fn = ftruncate;
	a->window_ms = AUDIT_WINDOW_MS_DEFAULT;
	util_strlcpy(a->prev, AUDIT_ZERO_HEX, sizeof(a->prev));
	a->wbuf = malloc(AUDIT_WBUF_MAX);
	a->rl_map = hmap_new(NULL);
	a->rl_ring = calloc(AUDIT_LIMIT_KEYS, sizeof(*a->rl_ring));
	if(!a->wbuf || !a->rl_map || !a->rl_ring) {
		util_strlcpy(err, "out of memory", errlen);
		goto fail;
	}
	a->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if(a->fd < 0) {
		util_snprintf(err, errlen, "cannot open audit log %s: %s", path, strerror(errno));
		goto fail;
	}
	if(fstat(a->fd, &st)) {
		util_snprintf(err, errlen, "cannot stat audit log %s: %s", path, strerror(errno));
		goto fail;
	}
	if(S_ISREG(st.st_mode)) {
		a->regular = true;
		a->size = st.st_size;
		if(audit_load_tail(a, err, errlen)) {
			goto fail;
		}
	} else if(!S_ISCHR(st.st_mode)) {
		util_snprintf(err, errlen, "audit log %s is not a regular file", path);
		goto fail;
	}
	/* A pending chain-restart is written before the next line, which brings
	 * the timestamp this module may not read itself. */
	return a;
fail:
	audit_close(a);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Rate limiting
 * ---------------------------------------------------------------------- */

static void audit_rl_free(audit_rl_t *e)
{
	if(!e) {
		return;
	}
	free(e->key);
	for(size_t i = 0; i < sizeof(e->f) / sizeof(e->f[0]); i++) {
		free(e->f[i]);
	}
	free(e);
}

/* A copy cut to AUDIT_FIELD_MAX bytes (the writer cuts there anyway); NULL
 * for NULL or "". */
static char *audit_dup_field(const char *s, bool *fail)
{
	if(!s || !*s) {
		return NULL;
	}
	size_t n = strnlen(s, AUDIT_FIELD_MAX + 1);
	char *d = malloc(n + 1);
	if(!d) {
		*fail = true;
		return NULL;
	}
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static bool audit_same(const char *x, const char *y)
{
	if(!x || !*x) {
		return !y || !*y;
	}
	return y && !strncmp(x, y, AUDIT_FIELD_MAX);
}

/* Key of (event, identity, topic, reason): length-prefixed so no choice of
 * field contents can make two different tuples collide. */
static char *audit_rl_key(const audit_event_t *ev)
{
	const char *parts[4] = {ev->event, ev->identity, ev->topic, ev->reason};
	size_t lens[4], total = 1;
	for(int i = 0; i < 4; i++) {
		lens[i] = parts[i] ? strnlen(parts[i], AUDIT_FIELD_MAX) : 0;
		total += lens[i] + 24;
	}
	char *k = malloc(total);
	if(!k) {
		return NULL;
	}
	size_t o = 0;
	for(int i = 0; i < 4; i++) {
		int n = util_snprintf(k + o, total - o, "%zu:", lens[i]);
		if(n < 0) {
			free(k);
			return NULL;
		}
		o += (size_t)n;
		if(lens[i]) {
			memcpy(k + o, parts[i], lens[i]);
		}
		o += lens[i];
	}
	k[o] = '\0';
	return k;
}

/* Write the summary of a finished window (if anything was counted) and drop
 * the entry.  Returns -1 when the summary could not be written. */
static int audit_rl_finish(audit_t *a, audit_rl_t *e, int64_t now_ms)
{
	int rc = 0;
	if(e->count > 0) {
		audit_event_t s = {
		    .event = AUDIT_EV_SUPPRESSED,
		    .identity = e->f[1],
		    .clientid = e->clientid_varied ? NULL : e->f[2],
		    .address = e->address_varied ? NULL : e->f[3],
		    .topic = e->f[4],
		    .access = e->f[5],
		    .decision = e->f[6],
		    .reason = e->f[7],
		    .rule = e->f[8],
		    .count = e->count > INT_MAX ? INT_MAX : (int)e->count,
		};
		rc = audit_put(a, &s, e->f[0], now_ms);
	}
	hmap_del(a->rl_map, e->key);
	audit_rl_free(e);
	return rc;
}

static audit_rl_t *audit_rl_pop(audit_t *a)
{
	audit_rl_t *e = a->rl_ring[a->rl_head];
	a->rl_ring[a->rl_head] = NULL;
	a->rl_head = (a->rl_head + 1) % AUDIT_LIMIT_KEYS;
	a->rl_n--;
	return e;
}

int audit_tick(audit_t *a, int64_t now_ms)
{
	int failures = 0;
	if(!a) {
		return 0;
	}
	a->last_now = now_ms;
	/* Entries sit in arrival order, so the expired ones are at the front. */
	while(a->rl_n > 0 && now_ms - a->rl_ring[a->rl_head]->start_ms >= a->window_ms) {
		if(audit_rl_finish(a, audit_rl_pop(a), now_ms)) {
			failures++;
		}
	}
	return failures;
}

int audit_write_limited(audit_t *a, const audit_event_t *ev, int64_t now_ms)
{
	if(!a) {
		return -1;
	}
	if(!ev || !audit_event_known(ev->event)) {
		a->last_now = now_ms;
		audit_fail(a, "audit event without a known name");
		return -1;
	}
	audit_tick(a, now_ms);
	char *key = audit_rl_key(ev);
	audit_rl_t *e = key ? hmap_get(a->rl_map, key) : NULL;
	if(e) {
		free(key);
		e->count++;
		e->clientid_varied |= !audit_same(e->f[2], ev->clientid);
		e->address_varied |= !audit_same(e->f[3], ev->address);
		return 1;
	}
	int rc = audit_put(a, ev, NULL, now_ms);
	if(rc || !key) {
		/* Not written (so the next one must be) or no memory to track it. */
		free(key);
		return rc;
	}
	if(a->rl_n == AUDIT_LIMIT_KEYS) {
		audit_rl_finish(a, audit_rl_pop(a), now_ms);
	}
	bool fail = false;
	e = calloc(1, sizeof(*e));
	if(e) {
		const char *src[9] = {ev->event,  ev->identity, ev->clientid, ev->address, ev->topic,
		                      ev->access, ev->decision, ev->reason,   ev->rule};
		e->key = key;
		key = NULL;
		e->start_ms = now_ms;
		for(int i = 0; i < 9; i++) {
			e->f[i] = audit_dup_field(src[i], &fail);
		}
	}
	if(!e || fail || hmap_put(a->rl_map, e->key, e)) {
		free(key);
		audit_rl_free(e);
		return rc;
	}
	a->rl_ring[(a->rl_head + a->rl_n) % AUDIT_LIMIT_KEYS] = e;
	a->rl_n++;
	return rc;
}

void audit_close(audit_t *a)
{
	if(!a) {
		return;
	}
	if(a->fd >= 0) {
		while(a->rl_n > 0) {
			audit_rl_finish(a, audit_rl_pop(a), a->last_now);
		}
		close(a->fd);
	}
	if(a->rl_ring) {
		while(a->rl_n > 0) {
			audit_rl_free(audit_rl_pop(a));
		}
	}
	hmap_free(a->rl_map);
	free(a->rl_ring);
	free(a->wbuf);
	free(a);
}
