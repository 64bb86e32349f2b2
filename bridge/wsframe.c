/*
 * wsframe.c — RFC 6455 client framing for MQTT over WebSockets (see
 * wsframe.h).
 */
#include "wsframe.h"

#include <openssl/evp.h>
#include <string.h>

#include "envelope.h"

#define WSFRAME_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void wsframe_key(const unsigned char rnd[16], char *key)
{
	envelope_b64_encode(rnd, 16, key);
}

bool wsframe_accept_ok(const char *key, const char *accept)
{
	char in[WSFRAME_KEY_LEN + sizeof(WSFRAME_GUID)];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char want[WSFRAME_ACCEPT_LEN + 1];
	size_t kl = strlen(key);
	if(kl != WSFRAME_KEY_LEN) {
		return false;
	}
	memcpy(in, key, kl);
	memcpy(in + kl, WSFRAME_GUID, sizeof(WSFRAME_GUID) - 1);
	if(EVP_Digest(in, kl + sizeof(WSFRAME_GUID) - 1, md, &mdlen, EVP_sha1(), NULL) != 1 ||
	   mdlen != 20) {
		return false;
	}
	envelope_b64_encode(md, 20, want);
	return strcmp(want, accept) == 0;
}

size_t wsframe_header(unsigned char *out, enum wsframe_op op, uint64_t len, uint32_t mask)
{
	size_t n = 0;
	out[n++] = (unsigned char)(0x80 | op);
	if(len < 126) {
		out[n++] = (unsigned char)(0x80 | len);
	} else if(len <= 0xFFFF) {
		out[n++] = 0x80 | 126;
		out[n++] = (unsigned char)(len >> 8);
		out[n++] = (unsigned char)len;
	} else {
		out[n++] = 0x80 | 127;
		for(int i = 7; i >= 0; i--) {
			out[n++] = (unsigned char)(len >> (8 * i));
		}
	}
	out[n++] = (unsigned char)(mask >> 24);
	out[n++] = (unsigned char)(mask >> 16);
	out[n++] = (unsigned char)(mask >> 8);
	out[n++] = (unsigned char)mask;
	return n;
}

void wsframe_mask(unsigned char *p, size_t n, uint32_t mask, uint64_t off)
{
	unsigned char m[4] = {(unsigned char)(mask >> 24), (unsigned char)(mask >> 16),
	                      (unsigned char)(mask >> 8), (unsigned char)mask};
	size_t i = 0;
	/* Byte by byte until the mask is aligned, then 8 bytes at a time. */
	while(i < n && (off + i) % 4) {
		p[i] ^= m[(off + i) % 4];
		i++;
	}
	uint64_t w;
	unsigned char m8[8] = {m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]};
	memcpy(&w, m8, 8);
	for(; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		v ^= w;
		memcpy(p + i, &v, 8);
	}
	for(; i < n; i++) {
		p[i] ^= m[(off + i) % 4];
	}
}

void wsframe_dec_init(wsframe_dec_t *d)
{
	memset(d, 0, sizeof(*d));
}

static void wsframe_fail(wsframe_event_t *ev, const char *why)
{
	ev->ev = WSFRAME_EV_ERROR;
	ev->why = why;
}

/* The header is complete in d->hdr[0..d->hlen)?  Checks it when it is. */
static bool wsframe_header_done(wsframe_dec_t *d, wsframe_event_t *ev)
{
	if(d->hlen < 2) {
		return false;
	}
	unsigned char b0 = d->hdr[0], b1 = d->hdr[1];
	size_t need = 2;
	unsigned l7 = b1 & 0x7F;
	if(l7 == 126) {
		need = 4;
	} else if(l7 == 127) {
		need = 10;
	}
	if(b1 & 0x80) {
		wsframe_fail(ev, "the server sent a masked frame");
		return false;
	}
	if(b0 & 0x70) {
		wsframe_fail(ev, "reserved bits set (no extension was agreed)");
		return false;
	}
	if(d->hlen < need) {
		return false;
	}
	uint64_t len = l7;
	if(l7 == 126) {
		len = ((uint64_t)d->hdr[2] << 8) | d->hdr[3];
	} else if(l7 == 127) {
		len = 0;
		for(int i = 2; i < 10; i++) {
			len = (len << 8) | d->hdr[i];
		}
		if(len >> 63) {
			wsframe_fail(ev, "frame length above 2^63");
			return false;
		}
	}
	unsigned op = b0 & 0x0F;
	bool fin = (b0 & 0x80) != 0;
	switch(op) {
	case WSFRAME_CONT:
		if(!d->in_message) {
			wsframe_fail(ev, "continuation frame without a message");
			return false;
		}
		break;
	case WSFRAME_BINARY:
		if(d->in_message) {
			wsframe_fail(ev, "new message inside a fragmented one");
			return false;
		}
		break;
	case WSFRAME_TEXT:
		wsframe_fail(ev, "text frame (MQTT over WebSockets is binary)");
		return false;
	case WSFRAME_CLOSE:
	case WSFRAME_PING:
	case WSFRAME_PONG:
		if(!fin || len > WSFRAME_CONTROL_MAX) {
			wsframe_fail(ev, "fragmented or oversized control frame");
			return false;
		}
		break;
	default:
		wsframe_fail(ev, "unknown opcode");
		return false;
	}
	d->op = (unsigned char)op;
	d->fin = fin;
	d->left = len;
	d->clen = 0;
	d->in_frame = true;
	if(op == WSFRAME_BINARY || op == WSFRAME_CONT) {
		d->in_message = !fin;
	}
	return true;
}

/* A whole control frame is in d->ctl: report it. */
static void wsframe_control(wsframe_dec_t *d, wsframe_event_t *ev)
{
	d->in_frame = false;
	d->hlen = 0;
	ev->data = d->ctl;
	ev->len = d->clen;
	if(d->op == WSFRAME_PING) {
		ev->ev = WSFRAME_EV_PING;
	} else if(d->op == WSFRAME_PONG) {
		ev->ev = WSFRAME_EV_PONG;
	} else {
		d->closed = true;
		ev->ev = WSFRAME_EV_CLOSE;
		ev->code = 0;
		if(d->clen == 1) {
			wsframe_fail(ev, "close frame with a 1-byte body");
			return;
		}
		if(d->clen >= 2) {
			ev->code = (unsigned)(d->ctl[0] << 8 | d->ctl[1]);
			ev->data = d->ctl + 2;
			ev->len = d->clen - 2;
		}
	}
}

void wsframe_decode(wsframe_dec_t *d, const unsigned char *in, size_t n, size_t *used,
                    wsframe_event_t *ev)
{
	size_t i = 0;
	memset(ev, 0, sizeof(*ev));
	while(i < n || (d->in_frame && d->left == 0)) {
		if(d->closed) {
			wsframe_fail(ev, "data after the close frame");
			break;
		}
		if(!d->in_frame) {
			d->hdr[d->hlen++] = in[i++];
			if(!wsframe_header_done(d, ev)) {
				if(ev->ev == WSFRAME_EV_ERROR) {
					break;
				}
				continue;
			}
		}
		bool control = d->op >= WSFRAME_CLOSE;
		size_t take = n - i;
		if(take > d->left) {
			take = (size_t)d->left;
		}
		if(control) {
			if(take) {
				memcpy(d->ctl + d->clen, in + i, take);
			}
			d->clen += take;
			d->left -= take;
			i += take;
			if(d->left == 0) {
				wsframe_control(d, ev);
				break;
			}
			continue;
		}
		if(d->left == 0) {
			d->in_frame = false; /* empty data frame */
			d->hlen = 0;
			continue;
		}
		if(take == 0) {
			break;
		}
		ev->ev = WSFRAME_EV_DATA;
		ev->data = in + i;
		ev->len = take;
		d->left -= take;
		i += take;
		if(d->left == 0) {
			d->in_frame = false;
			d->hlen = 0;
		}
		break;
	}
	*used = i;
}
