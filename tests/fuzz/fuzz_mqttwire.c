/*
 * fuzz_mqttwire.c — libFuzzer target for the cloud link's MQTT codec
 * (bridge/mqttwire.c), whose decoder reads whatever the cloud broker (or
 * whatever answers in its place) sends.
 *
 * Decoding: the first byte picks the protocol (bit 0: 4 or 5), a frame size
 * limit (bits 1-3) and the size of the DISCONNECT reason buffer (bits 4-7);
 * the rest is a stream of frames, cut with mqw_frame as the cloud link would.
 * Every frame must lie inside the input with total = 1 + length bytes + body,
 * stand on its own and want more one byte short; its body, copied to an
 * exact-size heap buffer so ASan catches an overread, goes to every parser:
 * the one for its type must keep its promises, the others must refuse it.
 *
 * Encoding: a PUBLISH (protocol, QoS, retain, packet id, topic, user
 * properties, payload) and an acknowledgement taken from the same input must
 * encode to mqw_publish_size bytes exactly and decode back to themselves.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqttwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                             \
	do {                                                                                 \
		if(!(c)) {                                                                   \
			abort();                                                             \
		}                                                                            \
	} while(0)

static const size_t max_totals[8] = {0, 2, 4, 5, 64, 300, 16384, 1u << 20};

/* b[0..n) in an exact-size heap buffer (NULL for n = 0: nothing to read). */
static uint8_t *copy(const uint8_t *b, size_t n)
{
	if(n == 0) {
		return NULL;
	}
	uint8_t *c = malloc(n);
	if(c) {
		memcpy(c, b, n);
	}
	return c;
}

static void check_ack(int protocol, uint8_t h, const uint8_t *body, uint32_t blen)
{
	unsigned type = h >> 4;
	uint16_t mid;
	uint8_t reason;
	mqw_rc_t rc = mqw_ack_parse(protocol, h, body, blen, &mid, &reason);
	CHECK(rc == MQW_OK || rc == MQW_MALFORMED);
	if(rc != MQW_OK) {
		return;
	}
	CHECK(type >= MQW_PUBACK && type <= MQW_PUBCOMP);
	CHECK((h & 15u) == (type == MQW_PUBREL ? 2u : 0u));
	CHECK(blen >= 2 && mid != 0 && mid == (uint16_t)(body[0] << 8 | body[1]));
	CHECK(protocol == 5 || blen == 2);
	CHECK(blen >= 3 ? reason == body[2] : reason == 0);
}

static void check_disconnect(int protocol, uint8_t h, const uint8_t *body, uint32_t blen,
                             size_t why_len)
{
	char *why = NULL;
	if(why_len) {
		why = malloc(why_len);
		if(!why) {
			return;
		}
		memset(why, 'X', why_len);
	}
	uint8_t reason;
	mqw_rc_t rc = mqw_disconnect_parse(protocol, h, body, blen, &reason, why, why_len);
	CHECK(rc == MQW_OK || rc == MQW_MALFORMED);
	if(why) {
		/* always a string within the buffer; "" when refused */
		CHECK(memchr(why, '\0', why_len) != NULL);
		CHECK(rc == MQW_OK || why[0] == '\0');
	}
	if(rc == MQW_OK) {
		CHECK(protocol == 5 && h == (MQW_DISCONNECT << 4));
		CHECK(blen ? reason == body[0] : reason == 0);
		/* the reason string is bytes of the body */
		if(why && why[0]) {
			size_t k = strlen(why);
			int found = 0;
			for(uint32_t i = 0; i + k <= blen && !found; i++) {
				found = memcmp(body + i, why, k) == 0;
			}
			CHECK(found);
		}
	}
	free(why);
}

static void check_publish(int protocol, uint8_t h, const uint8_t *body, uint32_t blen)
{
	int qos;
	uint16_t mid;
	mqw_rc_t rc = mqw_publish_parse(protocol, h, body, blen, &qos, &mid);
	CHECK(rc == MQW_OK || rc == MQW_MALFORMED);
	if(rc != MQW_OK) {
		return;
	}
	CHECK((h >> 4) == MQW_PUBLISH);
	CHECK(qos >= 0 && qos <= 2 && qos == ((h >> 1) & 3));
	CHECK(qos > 0 || !(h & 0x08u));
	CHECK(blen >= 2);
	uint32_t tn = (uint32_t)(body[0] << 8 | body[1]);
	CHECK(2 + tn + (qos ? 2u : 0u) + (protocol == 5 ? 1u : 0u) <= blen);
	if(qos) {
		CHECK(mid != 0 && mid == (uint16_t)(body[2 + tn] << 8 | body[3 + tn]));
	} else {
		CHECK(mid == 0);
	}
}

/* Every parser on one frame (body exact-size on the heap). */
static void parse_frame(int protocol, uint8_t h, const uint8_t *body, uint32_t blen,
                        size_t why_len)
{
	check_ack(protocol, h, body, blen);
	check_disconnect(protocol, h, body, blen, why_len);
	check_publish(protocol, h, body, blen);
	mqw_rc_t rc = mqw_pingresp_parse(h, blen);
	CHECK(rc == (h == (MQW_PINGRESP << 4) && blen == 0 ? MQW_OK : MQW_MALFORMED));
	CHECK(mqw_type_name(h >> 4) != NULL);
}

static void decode_stream(int protocol, size_t max_total, size_t why_len, const uint8_t *in,
                          size_t n)
{
	size_t off = 0;
	while(off < n) {
		uint8_t h;
		const uint8_t *body;
		uint32_t blen;
		size_t total;
		const uint8_t *f = in + off;
		mqw_rc_t rc = mqw_frame(f, n - off, max_total, &h, &body, &blen, &total);
		if(rc != MQW_OK) {
			CHECK(rc == MQW_MORE || rc == MQW_MALFORMED || rc == MQW_TOO_BIG);
			CHECK(rc != MQW_TOO_BIG || max_total != 0);
			return;
		}
		CHECK(body > f + 1 && body <= f + 5);
		size_t lenbytes = (size_t)(body - f) - 1;
		CHECK(h == f[0]);
		CHECK(!(f[lenbytes] & 0x80u));
		CHECK(total == 1 + lenbytes + blen);
		CHECK(total >= 2 && total <= n - off);
		CHECK(max_total == 0 || total <= max_total);
		CHECK(blen <= MQW_MAX_REMAINING);

		/* the frame alone is the same frame; one byte short it wants more */
		uint8_t *alone = copy(f, total);
		if(!alone) {
			return;
		}
		uint8_t h2;
		const uint8_t *body2;
		uint32_t blen2;
		size_t total2;
		CHECK(mqw_frame(alone, total, max_total, &h2, &body2, &blen2, &total2) == MQW_OK);
		CHECK(h2 == h && blen2 == blen && total2 == total && body2 == alone + (body - f));
		CHECK(mqw_frame(alone, total - 1, max_total, &h2, &body2, &blen2, &total2) == MQW_MORE);
		free(alone);

		uint8_t *b = copy(body, blen);
		if(blen && !b) {
			return;
		}
		parse_frame(protocol, h, b, blen, why_len);
		free(b);
		off += total;
	}
}

/* --- encoder ---------------------------------------------------------------- */

typedef struct rd {
	const uint8_t *p;
	size_t n;
} rd_t;

static uint8_t rd_u8(rd_t *r)
{
	if(!r->n) {
		return 0;
	}
	r->n--;
	return *r->p++;
}

/* A NUL-terminated string of up to max bytes from the input, NULs replaced
 * (user properties are C strings). */
static char *rd_str(rd_t *r, size_t max)
{
	size_t k = max ? rd_u8(r) % (max + 1) : 0;
	if(k > r->n) {
		k = r->n;
	}
	char *s = malloc(k + 1);
	if(!s) {
		return NULL;
	}
	for(size_t i = 0; i < k; i++) {
		s[i] = r->p[i] ? (char)r->p[i] : '?';
	}
	s[k] = '\0';
	r->p += k;
	r->n -= k;
	return s;
}

#define MAX_PROPS 3

static void encode_publish(const uint8_t *data, size_t size)
{
	rd_t r = {data, size};
	uint8_t f = rd_u8(&r);
	mqw_publish_t p = {.protocol = f & 1 ? 5 : 4, .qos = (f >> 1) & 1, .retain = (f >> 2) & 1};
	size_t n_props = (f >> 3) % (MAX_PROPS + 1);
	uint8_t hi = rd_u8(&r);
	p.mid = (uint16_t)(hi << 8 | rd_u8(&r));
	if(p.qos && p.mid == 0) {
		p.mid = 1;
	}
	char *topic = rd_str(&r, 200);
	mqw_prop_t props[MAX_PROPS];
	char *strs[2 * MAX_PROPS] = {0};
	size_t got = 0;
	for(; got < n_props; got++) {
		strs[2 * got] = rd_str(&r, 40);
		strs[2 * got + 1] = rd_str(&r, 40);
		if(!strs[2 * got] || !strs[2 * got + 1]) {
			break;
		}
		props[got].name = strs[2 * got];
		props[got].value = strs[2 * got + 1];
	}
	uint8_t *payload = copy(r.p, r.n);
	uint8_t *out = NULL;
	if(!topic || got < n_props || (r.n && !payload)) {
		goto out;
	}
	p.topic = topic;
	p.topic_len = strlen(topic);
	p.props = props;
	p.n_props = n_props;
	p.payload = payload;
	p.payload_len = r.n;

	size_t want = mqw_publish_size(&p);
	CHECK(want > 0); /* nothing here is too large for MQTT */
	out = malloc(want); /* exact size: ASan catches a byte too many */
	if(!out) {
		goto out;
	}
	CHECK(mqw_publish_encode(&p, out) == want);

	uint8_t h;
	const uint8_t *body;
	uint32_t blen;
	size_t total;
	CHECK(mqw_frame(out, want, want, &h, &body, &blen, &total) == MQW_OK);
	CHECK(total == want);
	CHECK(h == (MQW_PUBLISH << 4 | p.qos << 1 | (p.retain ? 1 : 0)));
	CHECK(mqw_frame(out, want, want - 1, &h, &body, &blen, &total) == MQW_TOO_BIG);
	CHECK(mqw_frame(out, want, want, &h, &body, &blen, &total) == MQW_OK);
	int qos;
	uint16_t mid;
	CHECK(mqw_publish_parse(p.protocol, h, body, blen, &qos, &mid) == MQW_OK);
	CHECK(qos == p.qos && mid == (p.qos ? p.mid : 0));
	CHECK(blen >= 2 + p.topic_len + p.payload_len);
	CHECK((size_t)(body[0] << 8 | body[1]) == p.topic_len);
	CHECK(memcmp(body + 2, topic, p.topic_len) == 0);
	CHECK(p.payload_len == 0 || memcmp(body + blen - p.payload_len, payload, p.payload_len) == 0);
	/* a 3.1.1 PUBLISH has exactly topic, packet id and payload */
	if(p.protocol == 4) {
		CHECK(blen == 2 + p.topic_len + (p.qos ? 2 : 0) + p.payload_len);
	}

	/* an acknowledgement for the same packet id */
	enum mqw_type t = (enum mqw_type)(MQW_PUBACK + (f >> 5) % 4);
	uint16_t amid = p.mid ? p.mid : 1;
	uint8_t ack[MQW_ACK_LEN];
	mqw_ack_encode(t, amid, ack);
	CHECK(mqw_frame(ack, sizeof(ack), MQW_ACK_LEN, &h, &body, &blen, &total) == MQW_OK);
	CHECK(total == MQW_ACK_LEN && blen == 2 && (h >> 4) == (unsigned)t);
	uint8_t reason;
	CHECK(mqw_ack_parse(p.protocol, h, body, blen, &mid, &reason) == MQW_OK);
	CHECK(mid == amid && reason == 0);

out:
	free(out);
	free(payload);
	for(size_t i = 0; i < 2 * MAX_PROPS; i++) {
		free(strs[i]);
	}
	free(topic);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if(size < 1) {
		return 0;
	}
	int protocol = data[0] & 1 ? 5 : 4;
	size_t max_total = max_totals[(data[0] >> 1) & 7];
	size_t why_len = data[0] >> 4;
	decode_stream(protocol, max_total, why_len, data + 1, size - 1);
	encode_publish(data, size);
	return 0;
}
