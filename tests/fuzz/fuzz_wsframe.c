/*
 * fuzz_wsframe.c — libFuzzer target for the WebSocket frame decoder
 * (bridge/wsframe.c), the parser of everything a wss cloud (or whatever
 * answers in its place) sends.  The input is decoded twice, whole and in
 * chunks of a size taken from the first byte: both must report the same
 * data bytes and the same end (error or not), every DATA must point inside
 * the input, and nothing may crash or read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode in chunks of `step`; data bytes go to out (at most n).  Returns
 * 1 on a protocol error, 0 otherwise. */
static int decode(const uint8_t *in, size_t n, size_t step, uint8_t *out, size_t *olen)
{
	wsframe_dec_t d;
	wsframe_dec_init(&d);
	*olen = 0;
	for(size_t off = 0; off < n;) {
		size_t chunk = n - off < step ? n - off : step;
		uint8_t *buf = malloc(chunk); /* exact size: ASan catches overreads */
		if(!buf) {
			return 0;
		}
		memcpy(buf, in + off, chunk);
		size_t pos = 0;
		for(;;) {
			wsframe_event_t ev;
			size_t used = 0;
			wsframe_decode(&d, buf + pos, chunk - pos, &used, &ev);
			if(used > chunk - pos) {
				abort();
			}
			pos += used;
			if(ev.ev == WSFRAME_EV_MORE) {
				break;
			}
			if(ev.ev == WSFRAME_EV_ERROR) {
				free(buf);
				return 1;
			}
			if(ev.ev == WSFRAME_EV_DATA) {
				if(ev.data < buf || ev.data + ev.len > buf + chunk || *olen + ev.len > n) {
					abort();
				}
				memcpy(out + *olen, ev.data, ev.len);
				*olen += ev.len;
			} else if(ev.len > WSFRAME_CONTROL_MAX) {
				abort();
			}
		}
		free(buf);
		off += chunk;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if(size < 1) {
		return 0;
	}
	size_t step = (size_t)data[0] % 16 + 1;
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
	if(!a || !b) {
		free(a);
		free(b);
		return 0;
	}
	size_t alen, blen;
	int ea = decode(in, n, n ? n : 1, a, &alen);
	int eb = decode(in, n, step, b, &blen);
	/* Chunking may only stop earlier at an error reported in the middle;
	 * whatever both delivered must agree. */
	if(ea != eb || alen != blen || memcmp(a, b, alen) != 0) {
		abort();
	}
	free(a);
	free(b);
	return 0;
}
