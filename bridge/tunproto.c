/*
 * tunproto.c — the pure protocol pieces of the cloud tunnel (see tunproto.h):
 * proxy URL, no_proxy, HTTP response heads, the CONNECT request and Basic
 * credentials.
 */
#include "tunproto.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "envelope.h"
#include "util.h"

/* A host name as DNS allows it (letters, digits, '-', '.', '_'). */
static bool tunproto_hostname_ok(const char *h, size_t n)
{
	if(n == 0 || n > 253) {
		return false;
	}
	for(size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)h[i];
		if(!isalnum(ch) && ch != '-' && ch != '.' && ch != '_') {
			return false;
		}
	}
	return h[0] != '.' && h[0] != '-';
}

int tunproto_url_parse(const char *url, tunproto_url_t *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	const char *p;
	if(strncasecmp(url, "http://", 7) == 0) {
		p = url + 7;
		out->port = 80;
	} else if(strncasecmp(url, "https://", 8) == 0) {
		p = url + 8;
		out->tls = true;
		out->port = 443;
	} else {
		*why = "expected http://HOST:PORT or https://HOST:PORT";
		return -1;
	}
	size_t n = strcspn(p, "/?#");
	const char *rest = p + n;
	if(*rest && strcmp(rest, "/") != 0) {
		*why = "a proxy URL has no path, query or fragment: give only the scheme, host and port";
		return -1;
	}
	if(memchr(p, '@', n)) {
		*why = "credentials do not belong in the URL (they would show in logs and `-n -p`): put "
		       "user:password in the file named by cloud_proxy_auth_file";
		return -1;
	}
	const char *host = p, *colon;
	size_t hlen;
	if(p[0] == '[') {
		const char *end = memchr(p, ']', n);
		if(!end) {
			*why = "an IPv6 address needs its closing ']'";
			return -1;
		}
		host = p + 1;
		hlen = (size_t)(end - host);
		colon = end + 1 < p + n ? end + 1 : NULL;
		if(colon && *colon != ':') {
			*why = "expected ':' and a port after ']'";
			return -1;
		}
	} else {
		colon = memchr(p, ':', n);
		hlen = colon ? (size_t)(colon - p) : n;
	}
	if(hlen == 0 || hlen >= sizeof(out->host)) {
		*why = "the host is empty or too long";
		return -1;
	}
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	unsigned char buf[16];
	if(p[0] == '[' ? inet_pton(AF_INET6, out->host, buf) != 1
	               : !tunproto_hostname_ok(out->host, hlen)) {
		*why = p[0] == '[' ? "not an IPv6 address between '[' and ']'"
		                   : "the host has characters a host name cannot have";
		return -1;
	}
	if(colon) {
		char port[8];
		size_t plen = (size_t)(p + n - colon - 1);
		int64_t v = 0;
		if(plen == 0 || plen >= sizeof(port)) {
			*why = "the port is missing or too long";
			return -1;
		}
		memcpy(port, colon + 1, plen);
		port[plen] = '\0';
		if(util_parse_i64(port, 1, 65535, &v)) {
			*why = "the port must be a number from 1 to 65535";
			return -1;
		}
		out->port = (uint16_t)v;
	}
	return 0;
}

/* The next entry of a no_proxy list: [*s, *s + *n), or false at the end. */
static bool tunproto_next_entry(const char **cur, const char **s, size_t *n)
{
	const char *p = *cur;
	p += strspn(p, ", \t");
	if(!*p) {
		return false;
	}
	*s = p;
	*n = strcspn(p, ", \t");
	*cur = p + *n;
	return true;
}

/* An address and prefix length from "IP" or "IP/BITS"; false when it is not. */
static bool tunproto_cidr(const char *s, size_t n, int *family, unsigned char addr[16], int *bits)
{
	char tmp[64];
	if(n >= sizeof(tmp)) {
		return false;
	}
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	char *slash = strchr(tmp, '/');
	if(slash) {
		*slash = '\0';
	}
	if(inet_pton(AF_INET, tmp, addr) == 1) {
		*family = AF_INET;
	} else if(inet_pton(AF_INET6, tmp, addr) == 1) {
		*family = AF_INET6;
	} else {
		return false;
	}
	int max = *family == AF_INET ? 32 : 128;
	*bits = max;
	if(slash) {
		int64_t v;
		if(util_parse_i64(slash + 1, 0, max, &v)) {
			return false;
		}
		*bits = (int)v;
	}
	return true;
}

static bool tunproto_entry_ok(const char *s, size_t n)
{
	int fam, bits;
	unsigned char a[16];
	if(n == 1 && s[0] == '*') {
		return true;
	}
	if(tunproto_cidr(s, n, &fam, a, &bits)) {
		return true;
	}
	if(s[0] == '.') {
		s++;
		n--;
	}
	return memchr(s, '/', n) == NULL && tunproto_hostname_ok(s, n);
}

int tunproto_no_proxy_check(const char *list, char *bad, size_t badlen)
{
	const char *cur = list, *s;
	size_t n;
	while(tunproto_next_entry(&cur, &s, &n)) {
		if(!tunproto_entry_ok(s, n)) {
			size_t k = n < badlen - 1 ? n : badlen - 1;
			memcpy(bad, s, k);
			bad[k] = '\0';
			return -1;
		}
	}
	return 0;
}

static bool tunproto_prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;
	if(memcmp(a, b, (size_t)bytes) != 0) {
		return false;
	}
	if(!rest) {
		return true;
	}
	unsigned char mask = (unsigned char)(0xFF << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

bool tunproto_no_proxy_match(const char *list, const char *host)
{
	unsigned char haddr[16];
	int hfam = 0;
	if(inet_pton(AF_INET, host, haddr) == 1) {
		hfam = AF_INET;
	} else if(inet_pton(AF_INET6, host, haddr) == 1) {
		hfam = AF_INET6;
	}
	size_t hlen = strlen(host);
	while(hlen && host[hlen - 1] == '.') {
		hlen--; /* a fully qualified "example.com." is "example.com" */
	}
	const char *cur = list, *s;
	size_t n;
	while(tunproto_next_entry(&cur, &s, &n)) {
		if(!tunproto_entry_ok(s, n)) {
			continue;
		}
		if(n == 1 && s[0] == '*') {
			return true;
		}
		int fam, bits;
		unsigned char a[16];
		if(tunproto_cidr(s, n, &fam, a, &bits)) {
			if(fam == hfam && tunproto_prefix_eq(a, haddr, bits)) {
				return true;
			}
			continue;
		}
		if(hfam) {
			continue; /* names never match an address */
		}
		if(s[0] == '.') {
			s++;
			n--;
		}
		if(hlen == n && strncasecmp(host, s, n) == 0) {
			return true;
		}
		if(hlen > n && host[hlen - n - 1] == '.' && strncasecmp(host + hlen - n, s, n) == 0) {
			return true;
		}
	}
	return false;
}

void tunproto_log_text(const char *in, size_t n, char *out, size_t outlen)
{
	char raw[512];
	if(n >= sizeof(raw)) {
		n = sizeof(raw) - 1;
	}
	memcpy(raw, in, n);
	raw[n] = '\0';
	util_log_safe(raw, out, outlen);
}

/* Copy a header value (leading/trailing blanks dropped, cut to outlen). */
static void tunproto_value(const char *v, size_t n, char *out, size_t outlen)
{
	while(n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while(n && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
		n--;
	}
	size_t k = n < outlen - 1 ? n : outlen - 1;
	memcpy(out, v, k);
	out[k] = '\0';
}

/* True when the comma-separated list v[0..n) has the token tok (no case). */
static bool tunproto_has_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok), i = 0;
	while(i < n) {
		while(i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) {
			i++;
		}
		size_t j = i;
		while(j < n && v[j] != ',' && v[j] != ' ' && v[j] != '\t') {
			j++;
		}
		if(j - i == tl && strncasecmp(v + i, tok, tl) == 0) {
			return true;
		}
		i = j;
	}
	return false;
}

enum tunproto_head_rc tunproto_head_parse(const char *buf, size_t len, tunproto_head_t *h,
                                          const char **why)
{
	memset(h, 0, sizeof(*h));
	size_t end = 0;
	size_t lim = len < TUNPROTO_HEAD_MAX ? len : TUNPROTO_HEAD_MAX;
	for(size_t i = 0; i + 3 < lim; i++) {
		if(buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
			end = i + 4;
			break;
		}
	}
	if(!end) {
		/* Tell "not HTTP at all" early, so a server that speaks something
		 * else is named at once instead of after a timeout. */
		size_t k = len < 5 ? len : 5;
		if(memcmp(buf, "HTTP/", k) != 0) {
			*why = "the answer is not HTTP";
			return TUNPROTO_HEAD_BAD;
		}
		if(len >= TUNPROTO_HEAD_MAX) {
			*why = "the HTTP answer's head is longer than 8 KiB";
			return TUNPROTO_HEAD_BAD;
		}
		return TUNPROTO_HEAD_MORE;
	}
	h->len = end;
	/* Status line: HTTP/1.x SP 3DIGIT [SP reason] */
	const char *line = buf, *eol = memchr(buf, '\r', end);
	size_t ll = (size_t)(eol - line);
	if(ll < 12 || memcmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) ||
	   line[8] != ' ' || !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
	   !isdigit((unsigned char)line[11]) || (ll > 12 && line[12] != ' ')) {
		*why = "malformed HTTP status line";
		return TUNPROTO_HEAD_BAD;
	}
	h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	if(h->status < 100) {
		*why = "malformed HTTP status code";
		return TUNPROTO_HEAD_BAD;
	}
	if(ll > 13) {
		char raw[sizeof(h->reason)];
		tunproto_value(line + 13, ll - 13, raw, sizeof(raw));
		tunproto_log_text(raw, strlen(raw), h->reason, sizeof(h->reason));
	}
	/* Header lines up to the blank line. */
	const char *p = eol + 2, *stop = buf + end - 2;
	while(p < stop) {
		const char *e = memchr(p, '\r', (size_t)(stop - p + 1));
		if(!e || e[1] != '\n') {
			*why = "a bare CR in the HTTP head";
			return TUNPROTO_HEAD_BAD;
		}
		size_t n = (size_t)(e - p);
		const char *colon = memchr(p, ':', n);
		if(!colon || colon == p || memchr(p, '\n', n)) {
			*why = "malformed HTTP header line";
			return TUNPROTO_HEAD_BAD;
		}
		size_t nl = (size_t)(colon - p);
		const char *v = colon + 1;
		size_t vl = n - nl - 1;
		char tmp[160];
		if(nl == 7 && strncasecmp(p, "upgrade", 7) == 0) {
			tunproto_value(v, vl, h->upgrade, sizeof(h->upgrade));
		} else if(nl == 10 && strncasecmp(p, "connection", 10) == 0) {
			h->conn_upgrade = h->conn_upgrade || tunproto_has_token(v, vl, "upgrade");
		} else if(nl == 20 && strncasecmp(p, "sec-websocket-accept", 20) == 0) {
			tunproto_value(v, vl, h->ws_accept, sizeof(h->ws_accept));
		} else if(nl == 22 && strncasecmp(p, "sec-websocket-protocol", 22) == 0) {
			tunproto_value(v, vl, h->ws_protocol, sizeof(h->ws_protocol));
		} else if(nl == 18 && strncasecmp(p, "proxy-authenticate", 18) == 0 &&
		          !h->proxy_auth[0]) {
			tunproto_value(v, vl, tmp, sizeof(tmp));
			tunproto_log_text(tmp, strlen(tmp), h->proxy_auth, sizeof(h->proxy_auth));
		}
		p = e + 2;
	}
	return TUNPROTO_HEAD_OK;
}

int tunproto_connect_request(char *out, size_t outlen, const char *host, uint16_t port,
                             const char *auth_b64)
{
	bool v6 = strchr(host, ':') != NULL;
	return util_snprintf(out, outlen,
	                     "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n%s%s%s"
	                     "User-Agent: plantgate-bridge\r\n\r\n",
	                     v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)port, v6 ? "[" : "", host,
	                     v6 ? "]" : "", (unsigned)port,
	                     auth_b64 ? "Proxy-Authorization: Basic " : "", auth_b64 ? auth_b64 : "",
	                     auth_b64 ? "\r\n" : "");
}

int tunproto_basic_auth(const char *text, size_t len, char *out, size_t outlen, const char **why)
{
	size_t n = 0;
	while(n < len && text[n] != '\n' && text[n] != '\r') {
		n++;
	}
	const char *colon = memchr(text, ':', n);
	if(!colon) {
		*why = "expected one line user:password";
		return -1;
	}
	if(colon == text) {
		*why = "the user name before ':' is empty";
		return -1;
	}
	if(memchr(text, '\0', n)) {
		*why = "a NUL byte in the credentials";
		return -1;
	}
	if(outlen < 4 * ((n + 2) / 3) + 1) {
		*why = "the credentials are too long";
		return -1;
	}
	envelope_b64_encode((const unsigned char *)text, n, out);
	return 0;
}
