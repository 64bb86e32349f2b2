/*
 * wsframe.h — the client side of RFC 6455 (WebSocket) that MQTT over
 * WebSockets needs: the opening handshake's key and its expected answer, the
 * framing of what the bridge sends (binary frames, masked as a client must),
 * and a streaming decoder of what the server sends.
 *
 * MQTT rides the WebSocket as a byte stream ("mqtt" subprotocol, binary
 * frames, MQTT packets may span frames), so the decoder hands out payload
 * bytes as they come and never buffers a data frame: its memory is fixed.
 * Pure: no network, no clock; the mask comes from the caller.  The decoder is
 * fuzzed by tests/fuzz/fuzz_wsframe.c.
 */
#ifndef PG_WSFRAME_H
#define PG_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSFRAME_KEY_LEN 24    /* base64 of 16 bytes */
#define WSFRAME_ACCEPT_LEN 28 /* base64 of a SHA-1 */
#define WSFRAME_HEADER_MAX 14 /* 2 + 8 (length) + 4 (mask) */
#define WSFRAME_CONTROL_MAX 125

enum wsframe_op {
	WSFRAME_CONT = 0x0,
	WSFRAME_TEXT = 0x1,
	WSFRAME_BINARY = 0x2,
	WSFRAME_CLOSE = 0x8,
	WSFRAME_PING = 0x9,
	WSFRAME_PONG = 0xA
};

/* key (WSFRAME_KEY_LEN + 1 bytes): base64 of the 16 random bytes. */
void wsframe_key(const unsigned char rnd[16], char *key);

/* True when `accept` is the Sec-WebSocket-Accept that answers `key`. */
bool wsframe_accept_ok(const char *key, const char *accept);

/* Write the header of a final frame with this opcode and payload length,
 * masked with `mask` (4 bytes, big-endian order as sent), into out
 * (WSFRAME_HEADER_MAX bytes).  Returns the header's length. */
size_t wsframe_header(unsigned char *out, enum wsframe_op op, uint64_t len, uint32_t mask);

/* XOR p[0..n) with the mask, as the bytes at payload offset `off`. */
void wsframe_mask(unsigned char *p, size_t n, uint32_t mask, uint64_t off);

/* What the decoder found. */
enum wsframe_ev {
	WSFRAME_EV_MORE = 0, /* all input used; nothing else to report */
	WSFRAME_EV_DATA,     /* ev->data[0..ev->len): MQTT bytes */
	WSFRAME_EV_PING,     /* ev->data[0..ev->len): answer with a PONG of it */
	WSFRAME_EV_PONG,
	WSFRAME_EV_CLOSE,    /* ev->code (0 = none), ev->data: reason text */
	WSFRAME_EV_ERROR     /* ev->why; the connection must be closed (1002) */
};

typedef struct wsframe_event {
	enum wsframe_ev ev;
	const unsigned char *data; /* points into the input, or into the decoder */
	size_t len;
	unsigned code;   /* CLOSE */
	const char *why; /* ERROR: static text */
} wsframe_event_t;

typedef struct wsframe_dec {
	unsigned char hdr[WSFRAME_HEADER_MAX];
	size_t hlen;       /* header bytes collected */
	bool in_frame;     /* header complete, payload follows */
	bool in_message;   /* a data message started, continuation frames allowed */
	unsigned char op;  /* current frame's opcode */
	bool fin;
	uint64_t left;     /* payload bytes of the current frame still to come */
	unsigned char ctl[WSFRAME_CONTROL_MAX];
	size_t clen;       /* control payload collected */
	bool closed;       /* a CLOSE was decoded: nothing may follow */
} wsframe_dec_t;

void wsframe_dec_init(wsframe_dec_t *d);

/* Decode from in[0..n): reports one event per call and sets *used to the
 * input consumed.  Call again with the rest until WSFRAME_EV_MORE.  DATA
 * points into `in` (valid until the caller reuses it); PING/CLOSE data
 * points into the decoder.  Frames from a server must not be masked, must
 * not use reserved bits, and text frames are refused (MQTT is binary). */
void wsframe_decode(wsframe_dec_t *d, const unsigned char *in, size_t n, size_t *used,
                    wsframe_event_t *ev);

#endif
