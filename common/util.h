/*
 * util.h — small checked helpers shared by plugin, bridge and tools: UTF-8
 * validation, checked number parsing, bounded string copies.  Never call
 * atoi/strcpy/sprintf; use these.
 */
#ifndef PG_UTIL_H
#define PG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s[0..len) is well-formed UTF-8 with no overlongs, no surrogates,
 * nothing above U+10FFFF, and no NUL byte. */
bool util_utf8_valid(const char *s, size_t len);

/* Length (1-4) of the one valid UTF-8 sequence at s[0..avail), or 0 when the
 * bytes there are not one (a stray continuation byte, an overlong form, a
 * surrogate, a cut sequence).  avail must be at least 1. */
size_t util_utf8_seq(const unsigned char *s, size_t avail);

/* The one growable array: make room for element n of array a, which has *cap
 * elements of elem bytes allocated, doubling (from 16) so that appending N
 * elements costs O(N).  Returns the array (maybe moved; *cap updated), or
 * NULL on ENOMEM with a and *cap left as they were:
 *
 *     void *g = util_grow(v, n, &cap, sizeof(*v));
 *     if(!g) { ...v is still valid, free it later... }
 *     v = g; v[n++] = x;
 *
 * For copies of strings use strdup(): no private strdup helpers. */
void *util_grow(void *a, size_t n, size_t *cap, size_t elem);

/* Parse a whole decimal integer in [min, max].  Returns 0 on success, -1 when
 * `s` is empty, has trailing junk, or is out of range. */
int util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Parse a size such as "512", "64k", "10M", "2G" (powers of 1024) in bytes. */
int util_parse_size(const char *s, uint64_t max, uint64_t *out);

/* Parse a duration such as "500ms", "30s", "5m", "2h", "7d" into milliseconds. */
int util_parse_duration_ms(const char *s, int64_t *out);

/* Copy at most dstlen-1 bytes and NUL-terminate.  Returns -1 if truncated. */
int util_strlcpy(char *dst, const char *src, size_t dstlen);

/* snprintf that reports truncation as -1 (and still NUL-terminates). */
int util_snprintf(char *dst, size_t dstlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void util_hex(const unsigned char *in, size_t len, char *out);

/* Milliseconds (and microseconds) from CLOCK_MONOTONIC (intervals, rate
 * limits) and milliseconds from CLOCK_REALTIME (UTC timestamps); a random
 * 32-bit value for jitter (getrandom, never blocks; not for keys).  The one
 * set of clocks of plugin, bridge and tools, for the I/O side only: the pure
 * core takes the time and randomness as arguments. */
int64_t util_mono_ms(void);
int64_t util_mono_us(void);

/* Name the calling thread (at most 15 bytes shown), as `top -H` and
 * /proc/PID/task/TID/comm show it; best effort. */
void util_thread_name(const char *name);
int64_t util_wall_ms(void);
uint32_t util_random32(void);

/* Copy `s` for a log line: printable ASCII and valid UTF-8 stay; '"', '\\',
 * control characters and invalid bytes become '?', the result is cut at outlen-1 and
 * NULL becomes "(none)".  Stops a client id or topic from forging log lines. */
const char *util_log_safe(const char *s, char *out, size_t outlen);

/* The same text as a whole key=value value, the bridge's dialect: left bare
 * when it is a plain token of [A-Za-z0-9._:/+#$-], otherwise double-quoted
 * with util_log_safe's replacements inside (so no '"' or '\\' can appear
 * within the quotes); NULL is "".  Cut to fit outlen with the closing quote
 * kept.  Returns out, for use as a printf argument. */
const char *util_log_quote(const char *s, char *out, size_t outlen);

#endif
