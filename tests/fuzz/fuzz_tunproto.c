/*
 * fuzz_tunproto.c — libFuzzer target for the cloud tunnel's parsers
 * (bridge/tunproto.c): HTTP response heads (a proxy's CONNECT answer, a
 * server's WebSocket upgrade answer), proxy URLs, no_proxy lists and Basic
 * credentials.  Any input must be
 * accepted or refused, never crash or read out of bounds; an accepted head
 * must lie inside the input, and the no_proxy checker and matcher agree.
 *
 * Input: the first byte picks the parser; the rest is the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if(size < 1) {
		return 0;
	}
	unsigned which = data[0] % 4;
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	/* A NUL-terminated copy for the string parsers, and an exact-size copy
	 * (no slack) so ASan sees any read past the end. */
	char *s = malloc(n + 1);
	uint8_t *exact = malloc(n ? n : 1);
	if(!s || !exact) {
		free(s);
		free(exact);
		return 0;
	}
	memcpy(s, in, n);
	s[n] = '\0';
	memcpy(exact, in, n);
	const char *why = NULL;
	switch(which) {
	case 0: {
		tunproto_head_t h;
		enum tunproto_head_rc rc = tunproto_head_parse((const char *)exact, n, &h, &why);
		if(rc == TUNPROTO_HEAD_OK && (h.len > n || h.status < 100 || h.status > 999)) {
			abort();
		}
		if(rc == TUNPROTO_HEAD_BAD && !why) {
			abort();
		}
		break;
	}
	case 1: {
		tunproto_url_t u;
		if(tunproto_url_parse(s, &u, &why) == 0 && (!u.host[0] || u.port == 0)) {
			abort();
		}
		break;
	}
	case 2: {
		char bad[64];
		int rc = tunproto_no_proxy_check(s, bad, sizeof(bad));
		bool m = tunproto_no_proxy_match(s, "iot.example.com");
		bool m2 = tunproto_no_proxy_match(s, "10.1.2.3");
		(void)m;
		(void)m2;
		(void)rc;
		break;
	}
	case 3: {
		char b64[2048];
		if(tunproto_basic_auth((const char *)exact, n, b64, sizeof(b64), &why) == 0 &&
		   strlen(b64) % 4 != 0) {
			abort();
		}
		break;
	}
	}
	free(s);
	free(exact);
	return 0;
}
