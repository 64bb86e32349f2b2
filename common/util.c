/*
 * util.c — checked conversions and string helpers (see util.h).
 */
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <time.h>

bool util_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while(i < len) {
		unsigned c = s[i];
		if(c == 0) {
			return false;
		}
		if(c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if(c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if(c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if(c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if(len - i <= n) {
			return false;
		}
		for(size_t k = 1; k <= n; k++) {
			if((s[i + k] & 0xC0) != 0x80) {
				return false;
			}
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		   (cp >= 0xD800 && cp <= 0xDFFF)) {
			return false;
		}
		i += n + 1;
	}
	return true;
}

size_t util_utf8_seq(const unsigned char *s, size_t avail)
{
	size_t n;
	if(s[0] < 0x80) {
		n = 1;
	} else if(s[0] >= 0xC2 && s[0] <= 0xDF) {
		n = 2;
	} else if(s[0] >= 0xE0 && s[0] <= 0xEF) {
		n = 3;
	} else if(s[0] >= 0xF0 && s[0] <= 0xF4) {
		n = 4;
	} else {
		return 0;
	}
	if(n > avail || !util_utf8_valid((const char *)s, n)) {
		return 0;
	}
	return n;
}

void *util_grow(void *a, size_t n, size_t *cap, size_t elem)
{
	if(n < *cap) {
		return a;
	}
	if(*cap > SIZE_MAX / 2 / elem) {
		return NULL;
	}
	size_t ncap = *cap ? *cap * 2 : 16;
	void *na = realloc(a, ncap * elem);
	if(na) {
		*cap = ncap;
	}
	return na;
}

int util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if(!s || !*s) {
		return -1;
	}
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if(errno || !end || *end != '\0' || v < min || v > max) {
		return -1;
	}
	*out = (int64_t)v;
	return 0;
}

/* Split "123unit" into the number and the unit suffix. */
static int split_number(const char *s, uint64_t *num, const char **unit)
{
	if(!s || *s < '0' || *s > '9') {
		return -1;
	}
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if(errno || end == s) {
		return -1;
	}
	*num = v;
	*unit = end;
	return 0;
}

int util_parse_size(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v, mul;
	const char *unit;
	if(split_number(s, &v, &unit)) {
		return -1;
	}
	if(!strcmp(unit, "") || !strcmp(unit, "B")) {
		mul = 1;
	} else if(!strcmp(unit, "k") || !strcmp(unit, "K") || !strcmp(unit, "KiB")) {
		mul = 1024;
	} else if(!strcmp(unit, "M") || !strcmp(unit, "MiB")) {
		mul = 1024ULL * 1024;
	} else if(!strcmp(unit, "G") || !strcmp(unit, "GiB")) {
		mul = 1024ULL * 1024 * 1024;
	} else {
		return -1;
	}
	if(v > UINT64_MAX / mul || v * mul > max) {
		return -1;
	}
	*out = v * mul;
	return 0;
}

int util_parse_duration_ms(const char *s, int64_t *out)
{
	uint64_t v, mul;
	const char *unit;
	if(split_number(s, &v, &unit)) {
		return -1;
	}
	if(!strcmp(unit, "ms")) {
		mul = 1;
	} else if(!strcmp(unit, "s") || !strcmp(unit, "")) {
		mul = 1000;
	} else if(!strcmp(unit, "m")) {
		mul = 60 * 1000;
	} else if(!strcmp(unit, "h")) {
		mul = 3600 * 1000;
	} else if(!strcmp(unit, "d")) {
		mul = 86400ULL * 1000;
	} else {
		return -1;
	}
	if(v > (uint64_t)INT64_MAX / mul) {
		return -1;
	}
	*out = (int64_t)(v * mul);
	return 0;
}

int util_strlcpy(char *dst, const char *src, size_t dstlen)
{
	if(dstlen == 0) {
		return -1;
	}
	size_t n = strlen(src);
	if(n >= dstlen) {
		memcpy(dst, src, dstlen - 1);
		dst[dstlen - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

int util_snprintf(char *dst, size_t dstlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(dst, dstlen, fmt, ap);
	va_end(ap);
	if(n < 0 || (size_t)n >= dstlen) {
		return -1;
	}
	return n;
}

void util_hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for(size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

const char *util_log_safe(const char *s, char *out, size_t outlen)
{
	if(!s) {
		util_strlcpy(out, "(none)", outlen);
		return out;
	}
	size_t o = 0;
	for(size_t i = 0; s[i] && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		out[o++] = (c < 0x20 || c == 0x7F || c == '"' || c == '\\') ? '?' : (char)c;
	}
	out[o] = '\0';
	if(!util_utf8_valid(out, o)) {
		for(size_t i = 0; i < o; i++) {
			if((unsigned char)out[i] >= 0x80) {
				out[i] = '?';
			}
		}
	}
	return out;
}

static bool util_log_plain(const char *s)
{
	if(!s[0]) {
		return false;
	}
	for(; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if(!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		     strchr("._:/+#$-", c))) {
			return false;
		}
	}
	return true;
}

const char *util_log_quote(const char *s, char *out, size_t outlen)
{
	if(!s) {
		s = "";
	}
	if(util_log_plain(s)) {
		util_strlcpy(out, s, outlen);
		return out;
	}
	if(outlen < 3) {
		if(outlen) {
			out[0] = '\0';
		}
		return out;
	}
	out[0] = '"';
	util_log_safe(s, out + 1, outlen - 2);
	size_t o = 1 + strlen(out + 1);
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

static int64_t util_clock_us(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t util_mono_ms(void)
{
	return util_clock_us(CLOCK_MONOTONIC) / 1000;
}

void util_thread_name(const char *name)
{
	prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

int64_t util_mono_us(void)
{
	return util_clock_us(CLOCK_MONOTONIC);
}

int64_t util_wall_ms(void)
{
	return util_clock_us(CLOCK_REALTIME) / 1000;
}

uint32_t util_random32(void)
{
	uint32_t r;
	if(getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		r = (uint32_t)util_mono_us() * 2654435761u; /* entropy pool not ready: jitter only */
	}
	return r;
}
