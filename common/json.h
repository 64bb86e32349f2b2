/*
 * json.h — the one small, strict JSON reader and writer of plantgate: the
 * integrity envelope's JSON wrapper, capture lines of plantgate-verify and
 * the test vector (see docs/integrity.md); its string escaper (json_escape)
 * also writes the bridge's /healthz and plantgate-doctor's --json report.
 * Not a DOM:
 * the reader is a cursor that the caller walks through the one layout it
 * expects, so hostile input never builds a tree.
 *
 * Reader rules: RFC 8259 syntax; strings are decoded (all escapes, surrogate
 * pairs) and must be UTF-8 without NUL; integers are read exactly (no
 * fraction or exponent, within int64); any other value can be skipped, with
 * nesting limited to JSON_MAX_DEPTH.  Every function returns 0 on success and
 * -1 on malformed input, leaving the cursor where it stopped.
 *
 * Writer: appends to a growable buffer; an allocation failure is sticky and
 * reported by json_out_take().
 */
#ifndef PG_JSON_H
#define PG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 32

typedef struct json_in {
	const char *p;   /* next byte */
	const char *end; /* one past the last byte */
	const char *why; /* after json_string(_into) or json_int failed: what was
	                    wrong ("lone high surrogate"), static text; else NULL */
} json_in_t;

/* Borrow s[0..len) for reading; s must outlive the cursor. */
void json_in_init(json_in_t *in, const char *s, size_t len);

/* Skip white space; then true when the next byte is c (not consumed). */
bool json_peek(json_in_t *in, char c);

/* Skip white space and consume c. */
int json_expect(json_in_t *in, char c);

/* True when only white space is left. */
bool json_at_end(json_in_t *in);

/* Read a string value.  *out is a fresh NUL-terminated copy the caller frees;
 * *len (may be NULL) its length. */
int json_string(json_in_t *in, char **out, size_t *len);

/* json_string without an allocation: decode into d, which has room for the
 * rest of the input plus a NUL (the decoded text is never longer than the
 * encoded one, quotes included).  *len (may be NULL) gets its length. */
int json_string_into(json_in_t *in, char *d, size_t *len);

/* Read an integer value in [min, max]. */
int json_int(json_in_t *in, int64_t min, int64_t max, int64_t *out);

/* Skip any one value. */
int json_skip(json_in_t *in);

/* Walk an object's members.  Call with *first = true after json_expect('{').
 * Returns 1 with *key (caller frees) when a member follows (its ':' consumed,
 * the value is next), 0 at the closing '}' (consumed), -1 on malformed input. */
int json_member(json_in_t *in, bool *first, char **key);

/* Walk an array's elements the same way: 1 when an element follows, 0 at the
 * closing ']' (consumed), -1 on malformed input. */
int json_element(json_in_t *in, bool *first);

/* ---- The one JSON string escaper --------------------------------------
 *
 * Writes the body of s[0..n) as a JSON string, without the quotes, through
 * put(ctx, bytes, len) in runs (len may be 0).  Always escaped: '"', '\\'
 * and control characters below 0x20 (as \u00XX).  Bytes >= 0x80 are copied
 * as they are: the caller passes UTF-8.
 *
 * JSON_ESC_STRICT, for lines that people and other tools read (the audit
 * trail, plantgate-doctor's report): \b \f \n \r \t in their short forms,
 * DEL as \u007f, U+2028 and U+2029 (line breaks to JavaScript) as \u2028 and
 * \u2029, and each byte of invalid UTF-8 as \ufffd, so the output is always
 * one line of valid UTF-8 whatever the input.
 *
 * Every JSON writer of plantgate escapes through this function. */
typedef void (*json_put_fn)(void *ctx, const char *s, size_t n);
#define JSON_ESC_STRICT 1u
void json_escape(const char *s, size_t n, unsigned flags, json_put_fn put, void *ctx);

typedef struct json_out {
	char *s; /* owned; NUL-terminated when not oom */
	size_t len, cap;
	bool oom;
} json_out_t;

void json_out_raw(json_out_t *o, const char *s, size_t n);
/* s[0..n) as a JSON string: quoted; '"', '\\' and control characters escaped.
 * Bytes >= 0x80 are copied as they are (the caller passes UTF-8). */
void json_out_str(json_out_t *o, const char *s, size_t n);
void json_out_int(json_out_t *o, int64_t v);
/* Hand the text to the caller (who frees it) and reset o; NULL after an
 * allocation failure (o is freed then). */
char *json_out_take(json_out_t *o, size_t *len);
/* Free the buffer and reset o.  A zeroed o is fine. */
void json_out_free(json_out_t *o);

#endif
