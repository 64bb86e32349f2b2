/*
 * tunproto.h — the pure protocol pieces of the cloud tunnel (tunnel.c): the
 * cloud_proxy URL, the no_proxy list, the head of an HTTP response (a
 * proxy's answer to CONNECT, a server's answer to a WebSocket upgrade),
 * and Basic proxy credentials.
 *
 * Nothing here touches the network or the clock, so the unit tests and the
 * fuzz target (tests/fuzz/fuzz_tunproto.c) drive it with plain bytes.  Every
 * parser takes a length, never reads past it, and fails closed.
 */
#ifndef PG_TUNPROTO_H
#define PG_TUNPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A proxy URL: http://HOST[:PORT][/] or https://HOST[:PORT][/]; HOST is a
 * name, an IPv4 address or [IPv6].  The port defaults to 80 / 443. */
typedef struct tunproto_url {
	bool tls;       /* https:// : TLS to the proxy itself */
	char host[256]; /* without brackets */
	uint16_t port;
} tunproto_url_t;

/* Parse `url` into *out.  Returns 0, or -1 with *why saying what is wrong in
 * words an operator can act on (static text). */
int tunproto_url_parse(const char *url, tunproto_url_t *out, const char **why);

/* Check a no_proxy list: entries separated by commas and/or blanks, each
 * `*`, a host name (matches it and its subdomains; a leading '.' is allowed),
 * an IP address, or an IPv4/IPv6 network in CIDR form.  Returns 0, or -1 with
 * the first bad entry copied into bad (NUL-terminated, cut to badlen). */
int tunproto_no_proxy_check(const char *list, char *bad, size_t badlen);

/* True when `host` (a name or an IP literal, no brackets) is in the list,
 * i.e. the cloud is reached directly, not through the proxy.  Names compare
 * without case.  A bad entry never matches. */
bool tunproto_no_proxy_match(const char *list, const char *host);

/* Text from the network made fit for a quoted log value (util_log_safe:
 * control bytes, quotes, backslashes and invalid UTF-8 become '?'), cut to
 * outlen-1.  in[0..n) need not be NUL-terminated. */
void tunproto_log_text(const char *in, size_t n, char *out, size_t outlen);

/* The head of an HTTP/1.x response. */
typedef struct tunproto_head {
	int status;            /* 100..599 */
	char reason[128];      /* the reason phrase, as sent (cut) */
	size_t len;            /* bytes of the head, including the blank line */
	char upgrade[32];      /* Upgrade: */
	bool conn_upgrade;     /* Connection: has the token "upgrade" */
	char ws_accept[64];    /* Sec-WebSocket-Accept: */
	char ws_protocol[32];  /* Sec-WebSocket-Protocol: */
	char proxy_auth[128];  /* Proxy-Authenticate: (first one; scheme and realm) */
} tunproto_head_t;

#define TUNPROTO_HEAD_MAX 8192

enum tunproto_head_rc { TUNPROTO_HEAD_OK = 0, TUNPROTO_HEAD_MORE, TUNPROTO_HEAD_BAD };

/* Parse the response head at the start of buf[0..len).  MORE: the blank
 * line has not arrived yet (and len < TUNPROTO_HEAD_MAX).  BAD: not HTTP/1.x,
 * a malformed line, or a head longer than TUNPROTO_HEAD_MAX; *why says which.
 * OK: *h is filled; the bytes from h->len on are not part of the head. */
enum tunproto_head_rc tunproto_head_parse(const char *buf, size_t len, tunproto_head_t *h,
                                          const char **why);

/* The CONNECT request for host:port (IPv6 literals get brackets), with a
 * Proxy-Authorization header when auth_b64 (base64 of "user:password") is
 * non-NULL.  Returns its length, or -1 when out is too small. */
int tunproto_connect_request(char *out, size_t outlen, const char *host, uint16_t port,
                             const char *auth_b64);

/* Base64 of the first line of a credentials file's text ("user:password",
 * trailing CR/LF dropped), for Basic proxy authentication.  Returns 0, or -1
 * with *why when there is no ':' , the user is empty, or out is too small. */
int tunproto_basic_auth(const char *text, size_t len, char *out, size_t outlen, const char **why);

#endif
