/*
 * json.c — strict JSON cursor reader and buffer writer (see json.h).  Used for
 * plantgate's own small formats; everything read is checked as it is read.
 */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void json_in_init(json_in_t *in, const char *s, size_t len)
{
	in->p = s;
	in->end = s + len;
	in->why = NULL;
}

static void json_ws(json_in_t *in)
{
	while(in->p < in->end &&
	      (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r')) {
		in->p++;
	}
}

bool json_peek(json_in_t *in, char c)
{
	json_ws(in);
	return in->p < in->end && *in->p == c;
}

int json_expect(json_in_t *in, char c)
{
	if(!json_peek(in, c)) {
		return -1;
	}
	in->p++;
	return 0;
}

bool json_at_end(json_in_t *in)
{
	json_ws(in);
	return in->p == in->end;
}

static int json_hex4(json_in_t *in, unsigned *out)
{
	unsigned v = 0;
	if(in->end - in->p < 4) {
		return -1;
	}
	for(int i = 0; i < 4; i++) {
		char c = *in->p++;
		v <<= 4;
		if(c >= '0' && c <= '9') {
			v |= (unsigned)(c - '0');
		} else if(c >= 'a' && c <= 'f') {
			v |= (unsigned)(c - 'a' + 10);
		} else if(c >= 'A' && c <= 'F') {
			v |= (unsigned)(c - 'A' + 10);
		} else {
			return -1;
		}
	}
	*out = v;
	return 0;
}

/* Append code point cp as UTF-8 to d (room for 4 bytes is guaranteed). */
static size_t json_utf8(char *d, unsigned cp)
{
	if(cp < 0x80) {
		d[0] = (char)cp;
		return 1;
	}
	if(cp < 0x800) {
		d[0] = (char)(0xC0 | (cp >> 6));
		d[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if(cp < 0x10000) {
		d[0] = (char)(0xE0 | (cp >> 12));
		d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		d[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	d[0] = (char)(0xF0 | (cp >> 18));
	d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	d[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

static int json_fail(json_in_t *in, const char *why)
{
	in->why = why;
	return -1;
}

int json_string_into(json_in_t *in, char *d, size_t *len)
{
	if(json_expect(in, '"')) {
		return json_fail(in, "expected '\"'");
	}
	size_t n = 0;
	while(in->p < in->end && *in->p != '"') {
		unsigned char c = (unsigned char)*in->p;
		if(c < 0x20) {
			return json_fail(in, "control character in string");
		}
		in->p++;
		if(c != '\\') {
			d[n++] = (char)c;
			continue;
		}
		if(in->p >= in->end) {
			return json_fail(in, "unterminated escape");
		}
		char e = *in->p++;
		unsigned cp, lo;
		switch(e) {
		case '"':
		case '\\':
		case '/':
			d[n++] = e;
			break;
		case 'b':
			d[n++] = '\b';
			break;
		case 'f':
			d[n++] = '\f';
			break;
		case 'n':
			d[n++] = '\n';
			break;
		case 'r':
			d[n++] = '\r';
			break;
		case 't':
			d[n++] = '\t';
			break;
		case 'u':
			if(json_hex4(in, &cp)) {
				return json_fail(in, "bad \\u escape");
			}
			if(cp >= 0xDC00 && cp <= 0xDFFF) {
				return json_fail(in, "lone low surrogate");
			}
			if(cp >= 0xD800 && cp <= 0xDBFF) {
				if(in->end - in->p < 6 || in->p[0] != '\\' || in->p[1] != 'u') {
					return json_fail(in, "lone high surrogate");
				}
				in->p += 2;
				if(json_hex4(in, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
					return json_fail(in, "bad surrogate pair");
				}
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			}
			n += json_utf8(d + n, cp);
			break;
		default:
			return json_fail(in, "unknown escape");
		}
	}
	if(in->p >= in->end) {
		return json_fail(in, "unterminated string");
	}
	in->p++; /* closing quote */
	d[n] = '\0';
	if(!util_utf8_valid(d, n)) {
		return json_fail(in, "invalid UTF-8 or NUL in string");
	}
	if(len) {
		*len = n;
	}
	return 0;
}

int json_string(json_in_t *in, char **out, size_t *len)
{
	*out = NULL;
	json_ws(in);
	/* The decoded text is never longer than the source (an escape of n
	 * bytes yields at most n bytes of UTF-8): size the copy by the string. */
	const char *q = in->p < in->end ? in->p + 1 : in->p;
	while(q < in->end && *q != '"') {
		q += *q == '\\' && q + 1 < in->end ? 2 : 1;
	}
	char *d = malloc((size_t)(q - in->p) + 1);
	if(!d) {
		return json_fail(in, "out of memory");
	}
	if(json_string_into(in, d, len)) {
		free(d);
		return -1;
	}
	*out = d;
	return 0;
}

int json_int(json_in_t *in, int64_t min, int64_t max, int64_t *out)
{
	json_ws(in);
	const char *s = in->p;
	bool neg = false;
	if(s < in->end && *s == '-') {
		neg = true;
		s++;
	}
	if(s >= in->end || *s < '0' || *s > '9') {
		return json_fail(in, "expected an integer");
	}
	if(*s == '0' && s + 1 < in->end && s[1] >= '0' && s[1] <= '9') {
		return json_fail(in, "leading zero");
	}
	uint64_t v = 0;
	while(s < in->end && *s >= '0' && *s <= '9') {
		unsigned dgt = (unsigned)(*s - '0');
		if(v > (UINT64_MAX - dgt) / 10) {
			return json_fail(in, "integer out of range");
		}
		v = v * 10 + dgt;
		s++;
	}
	if(s < in->end && (*s == '.' || *s == 'e' || *s == 'E')) {
		return json_fail(in, "only integers are allowed");
	}
	int64_t r;
	if(neg) {
		if(v > (uint64_t)INT64_MAX + 1) {
			return json_fail(in, "integer out of range");
		}
		r = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if(v > (uint64_t)INT64_MAX) {
			return json_fail(in, "integer out of range");
		}
		r = (int64_t)v;
	}
	if(r < min || r > max) {
		return json_fail(in, "integer out of range");
	}
	in->p = s;
	*out = r;
	return 0;
}

static int json_skip_depth(json_in_t *in, int depth);

/* Step over a string checking its syntax only (escapes, no raw control
 * characters), so that a member can be skipped even when its text would be
 * refused by json_string (a \u0000, say). */
static int json_scan_string(json_in_t *in)
{
	if(json_expect(in, '"')) {
		return -1;
	}
	while(in->p < in->end && *in->p != '"') {
		unsigned char c = (unsigned char)*in->p++;
		unsigned cp;
		if(c < 0x20) {
			return -1;
		}
		if(c != '\\') {
			continue;
		}
		if(in->p >= in->end) {
			return -1;
		}
		char e = *in->p++;
		if(e == 'u') {
			if(json_hex4(in, &cp)) {
				return -1;
			}
		} else if(!strchr("\"\\/bfnrt", e) || e == '\0') {
			return -1;
		}
	}
	if(in->p >= in->end) {
		return -1;
	}
	in->p++;
	return 0;
}

static int json_skip_number(json_in_t *in)
{
	const char *s = in->p;
	if(s < in->end && *s == '-') {
		s++;
	}
	if(s >= in->end || *s < '0' || *s > '9') {
		return -1;
	}
	if(*s == '0') {
		s++;
	} else {
		while(s < in->end && *s >= '0' && *s <= '9') {
			s++;
		}
	}
	if(s < in->end && *s == '.') {
		s++;
		if(s >= in->end || *s < '0' || *s > '9') {
			return -1;
		}
		while(s < in->end && *s >= '0' && *s <= '9') {
			s++;
		}
	}
	if(s < in->end && (*s == 'e' || *s == 'E')) {
		s++;
		if(s < in->end && (*s == '+' || *s == '-')) {
			s++;
		}
		if(s >= in->end || *s < '0' || *s > '9') {
			return -1;
		}
		while(s < in->end && *s >= '0' && *s <= '9') {
			s++;
		}
	}
	in->p = s;
	return 0;
}

static int json_skip_word(json_in_t *in, const char *w)
{
	size_t n = strlen(w);
	if((size_t)(in->end - in->p) < n || memcmp(in->p, w, n) != 0) {
		return -1;
	}
	in->p += n;
	return 0;
}

static int json_skip_depth(json_in_t *in, int depth)
{
	if(depth > JSON_MAX_DEPTH) {
		return -1;
	}
	json_ws(in);
	if(in->p >= in->end) {
		return -1;
	}
	bool first = true;
	int r;
	char *s = NULL;
	switch(*in->p) {
	case '"':
		return json_scan_string(in);
	case '{':
		in->p++;
		while((r = json_member(in, &first, &s)) == 1) {
			free(s);
			if(json_skip_depth(in, depth + 1)) {
				return -1;
			}
		}
		return r;
	case '[':
		in->p++;
		while((r = json_element(in, &first)) == 1) {
			if(json_skip_depth(in, depth + 1)) {
				return -1;
			}
		}
		return r;
	case 't':
		return json_skip_word(in, "true");
	case 'f':
		return json_skip_word(in, "false");
	case 'n':
		return json_skip_word(in, "null");
	default:
		return json_skip_number(in);
	}
}

int json_skip(json_in_t *in)
{
	return json_skip_depth(in, 0);
}

int json_member(json_in_t *in, bool *first, char **key)
{
	*key = NULL;
	if(json_peek(in, '}')) {
		in->p++;
		return 0;
	}
	if(!*first && json_expect(in, ',')) {
		return -1;
	}
	*first = false;
	if(json_string(in, key, NULL)) {
		return -1;
	}
	if(json_expect(in, ':')) {
		free(*key);
		*key = NULL;
		return -1;
	}
	return 1;
}

int json_element(json_in_t *in, bool *first)
{
	if(json_peek(in, ']')) {
		in->p++;
		return 0;
	}
	if(!*first && json_expect(in, ',')) {
		return -1;
	}
	*first = false;
	json_ws(in);
	return in->p < in->end ? 1 : -1;
}

void json_out_raw(json_out_t *o, const char *s, size_t n)
{
	if(o->oom) {
		return;
	}
	if(o->len + n + 1 > o->cap) {
		size_t ncap = o->cap ? o->cap : 256;
		while(ncap < o->len + n + 1) {
			ncap *= 2;
		}
		char *ns = realloc(o->s, ncap);
		if(!ns) {
			o->oom = true;
			return;
		}
		o->s = ns;
		o->cap = ncap;
	}
	memcpy(o->s + o->len, s, n);
	o->len += n;
	o->s[o->len] = '\0';
}

void json_escape(const char *str, size_t n, unsigned flags, json_put_fn put, void *ctx)
{
	static const char hex[] = "0123456789abcdef";
	static const char shortform[] = {['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',
	                                 ['\t'] = 't'};
	const unsigned char *s = (const unsigned char *)str;
	bool strict = flags & JSON_ESC_STRICT;
	size_t run = 0, i = 0;
	while(i < n) {
		unsigned char c = s[i];
		char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
		const char *e = u;
		size_t elen = 6, skip = 1;
		if(c == '"' || c == '\\') {
			u[1] = (char)c;
			elen = 2;
		} else if(c < 0x20 || (strict && c == 0x7F)) {
			if(strict && c < sizeof(shortform) && shortform[c]) {
				u[1] = shortform[c];
				elen = 2;
			}
		} else if(c >= 0x80 && strict) {
			size_t k = util_utf8_seq(s + i, n - i);
			if(k == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
				e = s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
				skip = 3;
			} else if(k == 0) {
				e = "\\ufffd";
			} else {
				i += k;
				continue;
			}
		} else {
			i++;
			continue;
		}
		put(ctx, (const char *)s + run, i - run);
		put(ctx, e, elen);
		i += skip;
		run = i;
	}
	put(ctx, (const char *)s + run, n - run);
}

static void json_out_put(void *ctx, const char *s, size_t n)
{
	if(n) {
		json_out_raw(ctx, s, n);
	}
}

void json_out_str(json_out_t *o, const char *s, size_t n)
{
	json_out_raw(o, "\"", 1);
	json_escape(s, n, 0, json_out_put, o);
	json_out_raw(o, "\"", 1);
}

void json_out_int(json_out_t *o, int64_t v)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%lld", (long long)v);
	json_out_raw(o, b, (size_t)n);
}

char *json_out_take(json_out_t *o, size_t *len)
{
	if(o->oom) {
		json_out_free(o);
		return NULL;
	}
	if(!o->s) {
		json_out_raw(o, "", 0);
		if(o->oom) {
			json_out_free(o);
			return NULL;
		}
	}
	char *s = o->s;
	if(len) {
		*len = o->len;
	}
	memset(o, 0, sizeof(*o));
	return s;
}

void json_out_free(json_out_t *o)
{
	free(o->s);
	memset(o, 0, sizeof(*o));
}
