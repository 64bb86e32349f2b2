/*
 * test_bridge_mqttwire.c — the cloud link's MQTT codec (bridge/mqttwire.c)
 * against byte strings written out from the MQTT 3.1.1 and 5.0
 * specifications, not derived from the code: PUBLISH encoding (protocol 4
 * and 5, QoS 0 and 1, retain, user properties, empty payload, remaining
 * lengths at the varint boundaries of spec table 2.4 / 1.5.5, strings over
 * 65,535 bytes refused), the four acknowledgements, framing (every prefix of
 * a frame wants more, five length bytes and non-minimal lengths are
 * malformed, the caller's size limit holds before the body arrives), and the
 * decoders of what a server sends: PUBACK/PUBREC/PUBREL/PUBCOMP, DISCONNECT,
 * PUBLISH and PINGRESP.  The plant link's part: SUBSCRIBE/UNSUBSCRIBE of one
 * filter (protocol 4 and 5, byte for byte), PUBLISH decoded in full (topic,
 * payload, flags, properties, Topic Alias), User Properties looked up by
 * name, SUBACK/UNSUBACK, and a PUBLISH encoded and decoded back.  Every
 * encoded packet and every parsed body lives in an exact-size heap buffer so
 * the ASan run catches a byte too far.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqttwire.h"

/* Encode p into an exact-size heap buffer; checks that the encoder returns
 * what mqw_publish_size announced.  The caller frees. */
static uint8_t *encode(const mqw_publish_t *p, size_t *n)
{
	*n = mqw_publish_size(p);
	assert_true(*n > 0);
	uint8_t *out = malloc(*n);
	assert_non_null(out);
	assert_int_equal(mqw_publish_encode(p, out), *n);
	return out;
}

/* encode(), then frame the result: it must be exactly one whole packet. */
static uint8_t *encode_framed(const mqw_publish_t *p, size_t *n, uint8_t *h, const uint8_t **body,
                              uint32_t *blen)
{
	uint8_t *out = encode(p, n);
	size_t total;
	assert_int_equal(mqw_frame(out, *n, *n, h, body, blen, &total), MQW_OK);
	assert_int_equal(total, *n);
	return out;
}

/* p must encode to exactly want[0..len). */
static void check_encoding(const mqw_publish_t *p, const uint8_t *want, size_t len)
{
	size_t n;
	uint8_t *out = encode(p, &n);
	assert_int_equal(n, len);
	assert_memory_equal(out, want, len);
	free(out);
}

/* A copy of b[0..n) in an exact-size heap buffer (a 1-byte one for n = 0,
 * which the parsers must not read). */
static uint8_t *dup_body(const uint8_t *b, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	assert_non_null(c);
	if(n) {
		memcpy(c, b, n);
	}
	return c;
}

static mqw_rc_t ack_parse(int protocol, uint8_t header, const uint8_t *b, uint32_t n,
                          uint16_t *mid, uint8_t *reason)
{
	uint8_t *c = dup_body(b, n);
	mqw_rc_t rc = mqw_ack_parse(protocol, header, c, n, mid, reason);
	free(c);
	return rc;
}

static mqw_rc_t publish_parse(int protocol, uint8_t header, const uint8_t *b, uint32_t n,
                              int *qos, uint16_t *mid)
{
	uint8_t *c = dup_body(b, n);
	mqw_rc_t rc = mqw_publish_parse(protocol, header, c, n, qos, mid);
	free(c);
	return rc;
}

static mqw_rc_t disconnect_parse(int protocol, uint8_t header, const uint8_t *b, uint32_t n,
                                 uint8_t *reason, char *why, size_t why_len)
{
	uint8_t *c = dup_body(b, n);
	mqw_rc_t rc = mqw_disconnect_parse(protocol, header, c, n, reason, why, why_len);
	free(c);
	return rc;
}

/* --- PUBLISH encoding ------------------------------------------------------ */

/* MQTT 3.1.1 3.3.2.3: topic "a/b", packet identifier 10 is
 * 00 03 'a' '/' 'b' 00 0A; the fixed header is 0011 DUP QoS(2) RETAIN. */
static void test_publish_v4(void **state)
{
	mqw_publish_t p = {.protocol = 4, .topic = "a/b", .topic_len = 3, .payload = "hi",
	                   .payload_len = 2};
	static const uint8_t q0[] = {0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'};
	check_encoding(&p, q0, sizeof(q0));

	p.retain = true;
	static const uint8_t q0r[] = {0x31, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'};
	check_encoding(&p, q0r, sizeof(q0r));

	p.retain = false;
	p.qos = 1;
	p.mid = 10;
	static const uint8_t q1[] = {0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'};
	check_encoding(&p, q1, sizeof(q1));

	p.retain = true;
	p.mid = 0xBEEF; /* big-endian packet identifier */
	static const uint8_t q1r[] = {0x33, 0x09, 0x00, 0x03, 'a', '/', 'b', 0xBE, 0xEF, 'h', 'i'};
	check_encoding(&p, q1r, sizeof(q1r));

	/* QoS 0 carries no packet identifier whatever mid says */
	p.qos = 0;
	p.retain = false;
	check_encoding(&p, q0, sizeof(q0));
}

/* MQTT 5.0 3.3.2: after the topic (and packet identifier) comes the
 * Property Length; User Property is identifier 0x26 and a UTF-8 string pair
 * (2.2.2.2).  A 3.1.1 packet has no properties: the ones given are left out. */
static void test_publish_v5(void **state)
{
	mqw_publish_t p = {.protocol = 5, .topic = "a/b", .topic_len = 3, .payload = "hi",
	                   .payload_len = 2};
	static const uint8_t q0[] = {0x30, 0x08, 0x00, 0x03, 'a', '/', 'b', 0x00, 'h', 'i'};
	check_encoding(&p, q0, sizeof(q0));

	p.qos = 1;
	p.mid = 10;
	static const uint8_t q1[] = {0x32, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 0x00,
	                             'h',  'i'};
	check_encoding(&p, q1, sizeof(q1));

	static const mqw_prop_t props[] = {{"k", "v"}, {"unit", "C"}};
	mqw_publish_t u = {.protocol = 5, .topic = "t/1", .topic_len = 3, .payload = "21.5",
	                   .payload_len = 4, .qos = 1, .retain = true, .mid = 0x1234,
	                   .props = props, .n_props = 2};
	static const uint8_t up[] = {
	    0x33, 0x1D,                                      /* PUBLISH QoS 1 retain, 29 */
	    0x00, 0x03, 't',  '/', '1',                      /* topic */
	    0x12, 0x34,                                      /* packet identifier */
	    0x11,                                            /* property length 17 */
	    0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v',          /* k = v */
	    0x26, 0x00, 0x04, 'u', 'n',  'i', 't', 0x00, 0x01, 'C', /* unit = C */
	    '2',  '1',  '.',  '5'};
	check_encoding(&u, up, sizeof(up));

	/* QoS 0 with a user property */
	u.qos = 0;
	u.retain = false;
	u.n_props = 1;
	static const uint8_t up0[] = {0x30, 0x11, 0x00, 0x03, 't', '/', '1', 0x07, 0x26,
	                              0x00, 0x01, 'k',  0x00, 0x01, 'v', '2', '1', '.',
	                              '5'};
	check_encoding(&u, up0, sizeof(up0));

	/* the same under 3.1.1: no property length, no properties */
	u.protocol = 4;
	u.qos = 1;
	u.retain = true;
	u.n_props = 2;
	static const uint8_t v4[] = {0x33, 0x0B, 0x00, 0x03, 't', '/', '1', 0x12, 0x34,
	                             '2',  '1',  '.',  '5'};
	check_encoding(&u, v4, sizeof(v4));
}

static void test_publish_empty_payload(void **state)
{
	mqw_publish_t p = {.protocol = 4, .topic = "a/b", .topic_len = 3};
	static const uint8_t v4[] = {0x30, 0x05, 0x00, 0x03, 'a', '/', 'b'};
	check_encoding(&p, v4, sizeof(v4));
	p.protocol = 5;
	static const uint8_t v5[] = {0x30, 0x06, 0x00, 0x03, 'a', '/', 'b', 0x00};
	check_encoding(&p, v5, sizeof(v5));
	p.qos = 1;
	p.mid = 1;
	static const uint8_t v5q1[] = {0x32, 0x08, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x01, 0x00};
	check_encoding(&p, v5q1, sizeof(v5q1));
}

/* Remaining lengths at the edges of MQTT's variable byte integer (3.1.1
 * table 2.4, 5.0 1.5.5): 127 = 7F, 128 = 80 01, 16383 = FF 7F,
 * 16384 = 80 80 01, 2097151 = FF FF 7F, 2097152 = 80 80 80 01.  Topic "a"
 * at QoS 0 under 3.1.1 takes 3 bytes, the payload the rest. */
static void test_publish_varint_boundaries(void **state)
{
	static const struct {
		uint32_t remaining;
		uint8_t len[4];
		size_t n;
	} cases[] = {
	    {127, {0x7F}, 1},
	    {128, {0x80, 0x01}, 2},
	    {16383, {0xFF, 0x7F}, 2},
	    {16384, {0x80, 0x80, 0x01}, 3},
	    {2097151, {0xFF, 0xFF, 0x7F}, 3},
	    {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
	};
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t plen = cases[i].remaining - 3;
		uint8_t *payload = malloc(plen);
		assert_non_null(payload);
		for(size_t k = 0; k < plen; k++) {
			payload[k] = (uint8_t)(k * 7 + 1);
		}
		mqw_publish_t p = {.protocol = 4, .topic = "a", .topic_len = 1, .payload = payload,
		                   .payload_len = plen};
		size_t n;
		uint8_t *out = encode(&p, &n);
		assert_int_equal(n, 1 + cases[i].n + cases[i].remaining);
		assert_int_equal(out[0], 0x30);
		assert_memory_equal(out + 1, cases[i].len, cases[i].n);
		assert_memory_equal(out + 1 + cases[i].n, "\x00\x01" "a", 3);
		assert_memory_equal(out + 1 + cases[i].n + 3, payload, plen);

		/* and it frames back to exactly that */
		uint8_t h;
		const uint8_t *body;
		uint32_t blen;
		size_t total;
		assert_int_equal(mqw_frame(out, n, 0, &h, &body, &blen, &total), MQW_OK);
		assert_int_equal(h, 0x30);
		assert_int_equal(blen, cases[i].remaining);
		assert_int_equal(total, n);
		assert_ptr_equal(body, out + 1 + cases[i].n);
		free(out);
		free(payload);
	}
}

/* The largest remaining length is 268,435,455 (FF FF FF 7F); one more
 * cannot be expressed.  mqw_publish_size does not read the payload. */
static void test_publish_max_remaining(void **state)
{
	mqw_publish_t p = {.protocol = 4, .topic = "a", .topic_len = 1,
	                   .payload_len = MQW_MAX_REMAINING - 3};
	assert_int_equal(mqw_publish_size(&p), 1 + 4 + (size_t)MQW_MAX_REMAINING);
	p.payload_len++;
	assert_int_equal(mqw_publish_size(&p), 0);
	p.payload_len = MQW_MAX_REMAINING - 3;
	p.qos = 1; /* the packet identifier's two bytes push it over */
	assert_int_equal(mqw_publish_size(&p), 0);
	p.qos = 0;
	p.protocol = 5; /* so does the property length */
	assert_int_equal(mqw_publish_size(&p), 0);
	p.payload_len = (size_t)-1;
	assert_int_equal(mqw_publish_size(&p), 0);
}

/* A UTF-8 string is at most 65,535 bytes (two length bytes): a longer topic
 * or user property cannot be encoded; encode writes nothing then. */
static void test_publish_long_strings(void **state)
{
	char *s = malloc(65537);
	assert_non_null(s);
	memset(s, 'x', 65536);
	s[65536] = '\0';
	uint8_t out[64];
	memset(out, 0xAA, sizeof(out));
	uint8_t untouched[64];
	memset(untouched, 0xAA, sizeof(untouched));

	mqw_publish_t p = {.protocol = 4, .topic = s, .topic_len = 65536};
	assert_int_equal(mqw_publish_size(&p), 0);
	assert_int_equal(mqw_publish_encode(&p, out), 0);
	assert_memory_equal(out, untouched, sizeof(out));

	/* 65,535 is fine: remaining 65,537 = 81 80 04 */
	p.topic_len = 65535;
	size_t n;
	uint8_t *big = encode(&p, &n);
	assert_int_equal(n, 1 + 3 + 65537);
	assert_memory_equal(big, "\x30\x81\x80\x04\xFF\xFF", 6);
	free(big);

	/* user property name or value over 65,535 */
	mqw_prop_t long_name[] = {{s, "v"}};
	mqw_prop_t long_value[] = {{"k", s}};
	mqw_publish_t u = {.protocol = 5, .topic = "a", .topic_len = 1, .props = long_name,
	                   .n_props = 1};
	assert_int_equal(mqw_publish_size(&u), 0);
	assert_int_equal(mqw_publish_encode(&u, out), 0);
	assert_memory_equal(out, untouched, sizeof(out));
	u.props = long_value;
	assert_int_equal(mqw_publish_size(&u), 0);
	assert_int_equal(mqw_publish_encode(&u, out), 0);
	assert_memory_equal(out, untouched, sizeof(out));
	/* 3.1.1 leaves properties out, so they do not matter there */
	u.protocol = 4;
	assert_int_equal(mqw_publish_size(&u), 5);

	/* exactly 65,535 in a property is fine */
	s[65535] = '\0';
	u.protocol = 5;
	big = encode(&u, &n);
	/* 2 + 1 topic, property length 1+2+1+2+65535 = 65541 (3 bytes) */
	assert_int_equal(n, 1 + 3 + 3 + 3 + 65541);
	free(big);
	free(s);
}

/* --- acknowledgements ------------------------------------------------------ */

/* 3.1.1 3.4-3.7: PUBACK 40 02, PUBREC 50 02, PUBREL 62 02 (its flags are
 * 0010), PUBCOMP 70 02, then the packet identifier MSB, LSB. */
static void test_ack_encode(void **state)
{
	static const struct {
		enum mqw_type type;
		uint8_t want[MQW_ACK_LEN];
	} cases[] = {
	    {MQW_PUBACK, {0x40, 0x02, 0x12, 0x34}},
	    {MQW_PUBREC, {0x50, 0x02, 0x12, 0x34}},
	    {MQW_PUBREL, {0x62, 0x02, 0x12, 0x34}},
	    {MQW_PUBCOMP, {0x70, 0x02, 0x12, 0x34}},
	};
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t out[MQW_ACK_LEN];
		mqw_ack_encode(cases[i].type, 0x1234, out);
		assert_memory_equal(out, cases[i].want, MQW_ACK_LEN);
		/* and it parses back, under either protocol */
		uint16_t mid;
		uint8_t reason = 0xFF;
		assert_int_equal(ack_parse(4, out[0], out + 2, 2, &mid, &reason), MQW_OK);
		assert_int_equal(mid, 0x1234);
		assert_int_equal(reason, 0);
		assert_int_equal(ack_parse(5, out[0], out + 2, 2, &mid, &reason), MQW_OK);
	}
	uint8_t out[MQW_ACK_LEN];
	mqw_ack_encode(MQW_PUBACK, 1, out);
	assert_memory_equal(out, "\x40\x02\x00\x01", 4);
	mqw_ack_encode(MQW_PUBACK, 0xFFFF, out);
	assert_memory_equal(out, "\x40\x02\xFF\xFF", 4);
}

/* --- framing --------------------------------------------------------------- */

/* Every proper prefix of f[0..n) is MQW_MORE; the whole is one frame with
 * the body at f + hdr. */
static void check_prefixes(const uint8_t *f, size_t n, size_t hdr)
{
	uint8_t *buf = malloc(n);
	assert_non_null(buf);
	memcpy(buf, f, n);
	uint8_t h;
	const uint8_t *body;
	uint32_t blen;
	size_t total;
	for(size_t k = 0; k < n; k++) {
		/* a copy of exactly k bytes: reading byte k would be caught */
		uint8_t *pre = malloc(k ? k : 1);
		assert_non_null(pre);
		memcpy(pre, buf, k);
		assert_int_equal(mqw_frame(pre, k, 0, &h, &body, &blen, &total), MQW_MORE);
		assert_int_equal(mqw_frame(pre, k, n, &h, &body, &blen, &total), MQW_MORE);
		free(pre);
	}
	assert_int_equal(mqw_frame(buf, n, 0, &h, &body, &blen, &total), MQW_OK);
	assert_int_equal(h, f[0]);
	assert_ptr_equal(body, buf + hdr);
	assert_int_equal(blen, n - hdr);
	assert_int_equal(total, n);
	free(buf);
}

static void test_frame_incomplete(void **state)
{
	static const uint8_t ping[] = {0xD0, 0x00};
	check_prefixes(ping, sizeof(ping), 2);
	static const uint8_t puback[] = {0x40, 0x02, 0x00, 0x0A};
	check_prefixes(puback, sizeof(puback), 2);
	static const uint8_t pub[] = {0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'};
	check_prefixes(pub, sizeof(pub), 2);
	/* a two-byte remaining length: 200 = C8 01 */
	uint8_t big[3 + 200];
	big[0] = 0x30;
	big[1] = 0xC8;
	big[2] = 0x01;
	memset(big + 3, 'z', 200);
	check_prefixes(big, sizeof(big), 3);
}

static void test_frame_stream(void **state)
{
	/* PUBACK, PINGRESP, PUBACK back to back: each frame alone */
	static const uint8_t s[] = {0x40, 0x02, 0x00, 0x01, 0xD0, 0x00, 0x40, 0x03, 0x00, 0x02, 0x10};
	uint8_t h;
	const uint8_t *body;
	uint32_t blen;
	size_t total, off = 0;
	assert_int_equal(mqw_frame(s + off, sizeof(s) - off, 0, &h, &body, &blen, &total), MQW_OK);
	assert_int_equal(h, 0x40);
	assert_int_equal(blen, 2);
	assert_int_equal(total, 4);
	off += total;
	assert_int_equal(mqw_frame(s + off, sizeof(s) - off, 0, &h, &body, &blen, &total), MQW_OK);
	assert_int_equal(h, 0xD0);
	assert_int_equal(blen, 0);
	assert_int_equal(total, 2);
	off += total;
	assert_int_equal(mqw_frame(s + off, sizeof(s) - off, 0, &h, &body, &blen, &total), MQW_OK);
	assert_int_equal(blen, 3);
	assert_int_equal(total, 5);
	assert_ptr_equal(body, s + off + 2);
	off += total;
	assert_int_equal(off, sizeof(s));
}

static void test_frame_malformed_length(void **state)
{
	uint8_t h;
	const uint8_t *body;
	uint32_t blen;
	size_t total;
	/* a fifth length byte: malformed as soon as the fourth says "more" */
	static const uint8_t five[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
	assert_int_equal(mqw_frame(five, sizeof(five), 0, &h, &body, &blen, &total),
	                 MQW_MALFORMED);
	assert_int_equal(mqw_frame(five, 5, 0, &h, &body, &blen, &total), MQW_MALFORMED);
	static const uint8_t five0[] = {0x30, 0x80, 0x80, 0x80, 0x80, 0x01};
	assert_int_equal(mqw_frame(five0, sizeof(five0), 0, &h, &body, &blen, &total),
	                 MQW_MALFORMED);
	/* four bytes still only want more */
	assert_int_equal(mqw_frame(five, 4, 0, &h, &body, &blen, &total), MQW_MORE);
	/* non-minimal: 0 as 80 00, 127 as FF 00, 0 as 80 80 80 00 (5.0 1.5.5:
	 * the encoding uses the minimum number of bytes) */
	static const uint8_t nm1[] = {0x40, 0x80, 0x00};
	static const uint8_t nm2[] = {0x40, 0xFF, 0x00};
	static const uint8_t nm3[] = {0x40, 0x80, 0x80, 0x80, 0x00};
	static const uint8_t nm4[] = {0x40, 0x82, 0x00, 0x00, 0x01};
	assert_int_equal(mqw_frame(nm1, sizeof(nm1), 0, &h, &body, &blen, &total), MQW_MALFORMED);
	assert_int_equal(mqw_frame(nm2, sizeof(nm2), 0, &h, &body, &blen, &total), MQW_MALFORMED);
	assert_int_equal(mqw_frame(nm3, sizeof(nm3), 0, &h, &body, &blen, &total), MQW_MALFORMED);
	assert_int_equal(mqw_frame(nm4, sizeof(nm4), 0, &h, &body, &blen, &total), MQW_MALFORMED);
	/* the largest, FF FF FF 7F, is well formed (and wants its body) */
	static const uint8_t max[] = {0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00};
	assert_int_equal(mqw_frame(max, sizeof(max), 0, &h, &body, &blen, &total), MQW_MORE);
}

static void test_frame_max_total(void **state)
{
	uint8_t h;
	const uint8_t *body;
	uint32_t blen;
	size_t total;
	/* remaining 128 = 80 01: 131 bytes in all.  Three bytes are enough to
	 * know it is too big. */
	static const uint8_t hdr[] = {0x30, 0x80, 0x01};
	assert_int_equal(mqw_frame(hdr, sizeof(hdr), 130, &h, &body, &blen, &total), MQW_TOO_BIG);
	assert_int_equal(mqw_frame(hdr, sizeof(hdr), 131, &h, &body, &blen, &total), MQW_MORE);
	assert_int_equal(mqw_frame(hdr, sizeof(hdr), 0, &h, &body, &blen, &total), MQW_MORE);
	/* the largest remaining length with the body nowhere near */
	static const uint8_t huge[] = {0x30, 0xFF, 0xFF, 0xFF, 0x7F};
	assert_int_equal(mqw_frame(huge, sizeof(huge), 1 << 20, &h, &body, &blen, &total),
	                 MQW_TOO_BIG);
	/* exactly the limit is fine */
	static const uint8_t ack[] = {0x40, 0x02, 0x00, 0x01};
	assert_int_equal(mqw_frame(ack, sizeof(ack), 4, &h, &body, &blen, &total), MQW_OK);
	assert_int_equal(total, 4);
	assert_int_equal(mqw_frame(ack, sizeof(ack), 3, &h, &body, &blen, &total), MQW_TOO_BIG);
	assert_int_equal(mqw_frame(ack, 2, 3, &h, &body, &blen, &total), MQW_TOO_BIG);
}

/* --- acknowledgements received --------------------------------------------- */

static void test_ack_parse_v4(void **state)
{
	uint16_t mid;
	uint8_t reason = 0xFF;
	static const uint8_t b[] = {0x00, 0x0A, 0x00};
	assert_int_equal(ack_parse(4, 0x40, b, 2, &mid, &reason), MQW_OK);
	assert_int_equal(mid, 10);
	assert_int_equal(reason, 0);
	assert_int_equal(ack_parse(4, 0x50, b, 2, &mid, &reason), MQW_OK);
	assert_int_equal(ack_parse(4, 0x62, b, 2, &mid, &reason), MQW_OK);
	assert_int_equal(ack_parse(4, 0x70, b, 2, &mid, &reason), MQW_OK);
	/* 3.1.1: remaining length is exactly 2 */
	assert_int_equal(ack_parse(4, 0x40, b, 3, &mid, &reason), MQW_MALFORMED);
	assert_int_equal(ack_parse(4, 0x40, b, 1, &mid, &reason), MQW_MALFORMED);
	assert_int_equal(ack_parse(4, 0x40, b, 0, &mid, &reason), MQW_MALFORMED);
	/* flags: PUBREL 0010, the others 0000 */
	assert_int_equal(ack_parse(4, 0x60, b, 2, &mid, &reason), MQW_MALFORMED);
	assert_int_equal(ack_parse(4, 0x42, b, 2, &mid, &reason), MQW_MALFORMED);
	assert_int_equal(ack_parse(4, 0x41, b, 2, &mid, &reason), MQW_MALFORMED);
	assert_int_equal(ack_parse(4, 0x52, b, 2, &mid, &reason), MQW_MALFORMED);
	assert_int_equal(ack_parse(4, 0x72, b, 2, &mid, &reason), MQW_MALFORMED);
	/* not an acknowledgement */
	assert_int_equal(ack_parse(4, 0x30, b, 2, &mid, &reason), MQW_MALFORMED);
	assert_int_equal(ack_parse(4, 0x90, b, 2, &mid, &reason), MQW_MALFORMED);
	assert_int_equal(ack_parse(4, 0xD0, b, 2, &mid, &reason), MQW_MALFORMED);
	/* packet identifier 0 is not one */
	static const uint8_t zero[] = {0x00, 0x00};
	assert_int_equal(ack_parse(4, 0x40, zero, 2, &mid, &reason), MQW_MALFORMED);
}

static void test_ack_parse_v5(void **state)
{
	uint16_t mid;
	uint8_t reason;
	/* 5.0 3.4.2.1: the reason code and property length may be left out */
	static const uint8_t two[] = {0x12, 0x34};
	reason = 0xFF;
	assert_int_equal(ack_parse(5, 0x40, two, sizeof(two), &mid, &reason), MQW_OK);
	assert_int_equal(mid, 0x1234);
	assert_int_equal(reason, 0);
	/* reason only (0x10 No matching subscribers); no property length below 4 */
	static const uint8_t three[] = {0x12, 0x34, 0x10};
	assert_int_equal(ack_parse(5, 0x40, three, sizeof(three), &mid, &reason), MQW_OK);
	assert_int_equal(mid, 0x1234);
	assert_int_equal(reason, 0x10);
	/* reason and an empty property list */
	static const uint8_t four[] = {0x00, 0x07, 0x80, 0x00};
	assert_int_equal(ack_parse(5, 0x50, four, sizeof(four), &mid, &reason), MQW_OK);
	assert_int_equal(mid, 7);
	assert_int_equal(reason, 0x80);
	/* 0x87 Not authorized, Reason String "no", User Property k=v */
	static const uint8_t props[] = {0x00, 0x05, 0x87, 0x0C, 0x1F, 0x00, 0x02, 'n', 'o',
	                                0x26, 0x00, 0x01, 'k',  0x00, 0x01, 'v'};
	assert_int_equal(ack_parse(5, 0x40, props, sizeof(props), &mid, &reason), MQW_OK);
	assert_int_equal(mid, 5);
	assert_int_equal(reason, 0x87);
	assert_int_equal(ack_parse(5, 0x62, props, sizeof(props), &mid, &reason), MQW_OK);
	assert_int_equal(ack_parse(5, 0x70, props, sizeof(props), &mid, &reason), MQW_OK);
	/* cut anywhere after the reason code: malformed */
	for(uint32_t n = 4; n < sizeof(props); n++) {
		assert_int_equal(ack_parse(5, 0x40, props, n, &mid, &reason), MQW_MALFORMED);
	}
	/* a property length past the end, and one shorter than its properties */
	static const uint8_t over[] = {0x00, 0x05, 0x87, 0x05, 0x1F, 0x00, 0x02, 'n'};
	assert_int_equal(ack_parse(5, 0x40, over, sizeof(over), &mid, &reason), MQW_MALFORMED);
	static const uint8_t under[] = {0x00, 0x05, 0x87, 0x03, 0x1F, 0x00, 0x02, 'n', 'o'};
	assert_int_equal(ack_parse(5, 0x40, under, sizeof(under), &mid, &reason), MQW_MALFORMED);
	/* bytes after the properties */
	static const uint8_t trail[] = {0x00, 0x05, 0x00, 0x00, 0x00};
	assert_int_equal(ack_parse(5, 0x40, trail, sizeof(trail), &mid, &reason), MQW_MALFORMED);
	/* a user property with its value missing */
	static const uint8_t half[] = {0x00, 0x05, 0x00, 0x04, 0x26, 0x00, 0x01, 'k'};
	assert_int_equal(ack_parse(5, 0x40, half, sizeof(half), &mid, &reason), MQW_MALFORMED);
	/* unknown property identifiers (0x00, 0x05, 0x7F are not assigned) */
	static const uint8_t unk[] = {0x00, 0x05, 0x00, 0x02, 0x05, 0x00};
	assert_int_equal(ack_parse(5, 0x40, unk, sizeof(unk), &mid, &reason), MQW_MALFORMED);
	static const uint8_t unk0[] = {0x00, 0x05, 0x00, 0x02, 0x00, 0x00};
	assert_int_equal(ack_parse(5, 0x40, unk0, sizeof(unk0), &mid, &reason), MQW_MALFORMED);
	static const uint8_t unk7f[] = {0x00, 0x05, 0x00, 0x01, 0x7F};
	assert_int_equal(ack_parse(5, 0x40, unk7f, sizeof(unk7f), &mid, &reason), MQW_MALFORMED);
	/* the identifier is a variable byte integer: 0x26 written as A6 00 is
	 * not minimal */
	static const uint8_t nmid[] = {0x00, 0x05, 0x00, 0x08, 0xA6, 0x00, 0x00,
	                               0x01, 'k',  0x00, 0x01, 'v'};
	assert_int_equal(ack_parse(5, 0x40, nmid, sizeof(nmid), &mid, &reason), MQW_MALFORMED);
	/* packet identifier 0, wrong flags, short */
	static const uint8_t zero[] = {0x00, 0x00, 0x00};
	assert_int_equal(ack_parse(5, 0x40, zero, sizeof(zero), &mid, &reason), MQW_MALFORMED);
	assert_int_equal(ack_parse(5, 0x60, two, sizeof(two), &mid, &reason), MQW_MALFORMED);
	assert_int_equal(ack_parse(5, 0x48, two, sizeof(two), &mid, &reason), MQW_MALFORMED);
	assert_int_equal(ack_parse(5, 0x40, two, 1, &mid, &reason), MQW_MALFORMED);
}

/* --- DISCONNECT ------------------------------------------------------------ */

static void test_disconnect_parse(void **state)
{
	uint8_t reason;
	char why[32];
	static const uint8_t none[] = {0x00};
	/* 3.1.1: a server never sends DISCONNECT */
	memset(why, 'X', sizeof(why));
	assert_int_equal(disconnect_parse(4, 0xE0, none, 0, &reason, why, sizeof(why)),
	                 MQW_MALFORMED);
	assert_string_equal(why, "");
	/* 5.0 3.14.2.1: remaining length 0 is reason 0x00 */
	reason = 0xFF;
	memset(why, 'X', sizeof(why));
	assert_int_equal(disconnect_parse(5, 0xE0, none, 0, &reason, why, sizeof(why)), MQW_OK);
	assert_int_equal(reason, 0);
	assert_string_equal(why, "");
	/* flags must be 0 */
	assert_int_equal(disconnect_parse(5, 0xE1, none, 0, &reason, why, sizeof(why)),
	                 MQW_MALFORMED);
	assert_int_equal(disconnect_parse(5, 0xD0, none, 0, &reason, why, sizeof(why)),
	                 MQW_MALFORMED);
	/* reason only: 0x8E Session taken over */
	static const uint8_t r[] = {0x8E};
	assert_int_equal(disconnect_parse(5, 0xE0, r, sizeof(r), &reason, why, sizeof(why)), MQW_OK);
	assert_int_equal(reason, 0x8E);
	assert_string_equal(why, "");
	/* reason, User Property, Reason String (0x1F), Server Reference (0x1C) */
	static const uint8_t rs[] = {0x9C, 0x1B, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v',
	                             0x1F, 0x00, 0x07, 'm',  'o',  'v', 'e', 'd', ' ', 'x',
	                             0x1C, 0x00, 0x07, 'h',  'o',  's', 't', ':', '8', '8'};
	memset(why, 'X', sizeof(why));
	assert_int_equal(disconnect_parse(5, 0xE0, rs, sizeof(rs), &reason, why, sizeof(why)),
	                 MQW_OK);
	assert_int_equal(reason, 0x9C);
	assert_string_equal(why, "moved x");
	/* cut to the caller's buffer, still NUL-terminated, nothing written past it */
	memset(why, 'X', sizeof(why));
	assert_int_equal(disconnect_parse(5, 0xE0, rs, sizeof(rs), &reason, why, 5), MQW_OK);
	assert_string_equal(why, "move");
	assert_int_equal(why[5], 'X');
	memset(why, 'X', sizeof(why));
	assert_int_equal(disconnect_parse(5, 0xE0, rs, sizeof(rs), &reason, why, 8), MQW_OK);
	assert_string_equal(why, "moved x");
	memset(why, 'X', sizeof(why));
	assert_int_equal(disconnect_parse(5, 0xE0, rs, sizeof(rs), &reason, why, 1), MQW_OK);
	assert_int_equal(why[0], '\0');
	assert_int_equal(why[1], 'X');
	/* no buffer at all */
	assert_int_equal(disconnect_parse(5, 0xE0, rs, sizeof(rs), &reason, NULL, 0), MQW_OK);
	assert_int_equal(reason, 0x9C);
	/* in an exact-size heap buffer too */
	char *small = malloc(3);
	assert_non_null(small);
	assert_int_equal(disconnect_parse(5, 0xE0, rs, sizeof(rs), &reason, small, 3), MQW_OK);
	assert_string_equal(small, "mo");
	free(small);
	/* properties cut short: malformed, why left empty */
	for(uint32_t n = 2; n < sizeof(rs); n++) {
		memset(why, 'X', sizeof(why));
		assert_int_equal(disconnect_parse(5, 0xE0, rs, n, &reason, why, sizeof(why)),
		                 MQW_MALFORMED);
		assert_string_equal(why, "");
	}
	/* an unknown property */
	static const uint8_t unk[] = {0x00, 0x02, 0x04, 0x00};
	assert_int_equal(disconnect_parse(5, 0xE0, unk, sizeof(unk), &reason, why, sizeof(why)),
	                 MQW_MALFORMED);
	/* an empty Reason String */
	static const uint8_t empty[] = {0x00, 0x03, 0x1F, 0x00, 0x00};
	memset(why, 'X', sizeof(why));
	assert_int_equal(disconnect_parse(5, 0xE0, empty, sizeof(empty), &reason, why, sizeof(why)),
	                 MQW_OK);
	assert_string_equal(why, "");
}

/* --- PUBLISH received ------------------------------------------------------ */

static void test_publish_parse(void **state)
{
	int qos;
	uint16_t mid;
	static const uint8_t q0[] = {0x00, 0x03, 'a', '/', 'b', 'h', 'i'};
	assert_int_equal(publish_parse(4, 0x30, q0, sizeof(q0), &qos, &mid), MQW_OK);
	assert_int_equal(qos, 0);
	assert_int_equal(mid, 0);
	assert_int_equal(publish_parse(4, 0x31, q0, sizeof(q0), &qos, &mid), MQW_OK); /* retain */
	/* no payload at all is fine */
	assert_int_equal(publish_parse(4, 0x30, q0, 5, &qos, &mid), MQW_OK);
	/* topic cut short */
	assert_int_equal(publish_parse(4, 0x30, q0, 4, &qos, &mid), MQW_MALFORMED);
	assert_int_equal(publish_parse(4, 0x30, q0, 1, &qos, &mid), MQW_MALFORMED);
	assert_int_equal(publish_parse(4, 0x30, q0, 0, &qos, &mid), MQW_MALFORMED);

	static const uint8_t q1[] = {0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'};
	assert_int_equal(publish_parse(4, 0x32, q1, sizeof(q1), &qos, &mid), MQW_OK);
	assert_int_equal(qos, 1);
	assert_int_equal(mid, 10);
	assert_int_equal(publish_parse(4, 0x34, q1, sizeof(q1), &qos, &mid), MQW_OK);
	assert_int_equal(qos, 2);
	assert_int_equal(mid, 10);
	/* DUP with QoS 1 and 2 is fine */
	assert_int_equal(publish_parse(4, 0x3A, q1, sizeof(q1), &qos, &mid), MQW_OK);
	assert_int_equal(publish_parse(4, 0x3C, q1, sizeof(q1), &qos, &mid), MQW_OK);
	/* packet identifier cut short */
	assert_int_equal(publish_parse(4, 0x32, q1, 6, &qos, &mid), MQW_MALFORMED);
	assert_int_equal(publish_parse(4, 0x32, q1, 5, &qos, &mid), MQW_MALFORMED);
	/* QoS 3 (both bits) is malformed (3.1.1 3.3.1.2) */
	assert_int_equal(publish_parse(4, 0x36, q1, sizeof(q1), &qos, &mid), MQW_MALFORMED);
	assert_int_equal(publish_parse(5, 0x37, q1, sizeof(q1), &qos, &mid), MQW_MALFORMED);
	/* DUP must be 0 at QoS 0 (3.1.1 3.3.1.1) */
	assert_int_equal(publish_parse(4, 0x38, q0, sizeof(q0), &qos, &mid), MQW_MALFORMED);
	/* packet identifier 0 at QoS > 0 */
	static const uint8_t z[] = {0x00, 0x01, 'a', 0x00, 0x00};
	assert_int_equal(publish_parse(4, 0x32, z, sizeof(z), &qos, &mid), MQW_MALFORMED);
	assert_int_equal(publish_parse(4, 0x34, z, sizeof(z), &qos, &mid), MQW_MALFORMED);
	/* not a PUBLISH */
	assert_int_equal(publish_parse(4, 0x40, q0, sizeof(q0), &qos, &mid), MQW_MALFORMED);
}

/* A v5 PUBLISH body: QoS 1 (mid 258), Payload Format Indicator 1, Message
 * Expiry 60, Topic Alias 5, Subscription Identifier 300 (AC 02), Content
 * Type "t", Correlation Data DE AD, User Property a=b; payload "pay". */
static const uint8_t publish_v5_full[] = {
    0x00, 0x03, 'a',  '/',  'b',  0x01, 0x02,             /* topic, mid 258 */
    0x1D,                                                 /* property length 29 */
    0x01, 0x01,                                           /* payload format */
    0x02, 0x00, 0x00, 0x00, 0x3C,                         /* message expiry */
    0x23, 0x00, 0x05,                                     /* topic alias */
    0x0B, 0xAC, 0x02,                                     /* subscription id */
    0x03, 0x00, 0x01, 't',                                /* content type */
    0x09, 0x00, 0x02, 0xDE, 0xAD,                         /* correlation data */
    0x26, 0x00, 0x01, 'a',  0x00, 0x01, 'b',              /* user property */
    'p',  'a',  'y'};

static void test_publish_parse_v5(void **state)
{
	int qos;
	uint16_t mid;
	/* QoS 1, Payload Format Indicator 1, Message Expiry 60, Topic Alias 5,
	 * Subscription Identifier 300 (AC 02), Content Type "t", Correlation
	 * Data 2 bytes, User Property a=b */
	assert_int_equal(publish_parse(5, 0x32, publish_v5_full, sizeof(publish_v5_full), &qos, &mid), MQW_OK);
	assert_int_equal(qos, 1);
	assert_int_equal(mid, 258);
	/* the payload may be anything, even empty */
	assert_int_equal(publish_parse(5, 0x32, publish_v5_full, sizeof(publish_v5_full) - 3, &qos, &mid), MQW_OK);
	/* cut inside the properties */
	for(uint32_t n = 7; n < sizeof(publish_v5_full) - 3; n++) {
		assert_int_equal(publish_parse(5, 0x32, publish_v5_full, n, &qos, &mid), MQW_MALFORMED);
	}
	/* 5.0 always has a property length */
	static const uint8_t none[] = {0x00, 0x01, 'a', 'x'};
	static const uint8_t empty[] = {0x00, 0x01, 'a', 0x00, 'x'};
	assert_int_equal(publish_parse(5, 0x30, none, 3, &qos, &mid), MQW_MALFORMED);
	assert_int_equal(publish_parse(5, 0x30, empty, sizeof(empty), &qos, &mid), MQW_OK);
	assert_int_equal(qos, 0);
	assert_int_equal(mid, 0);
	/* unknown property */
	static const uint8_t unk[] = {0x00, 0x01, 'a', 0x02, 0x2B, 0x00};
	assert_int_equal(publish_parse(5, 0x30, unk, sizeof(unk), &qos, &mid), MQW_MALFORMED);
	/* property length past the body */
	static const uint8_t over[] = {0x00, 0x01, 'a', 0x05, 0x01, 0x01};
	assert_int_equal(publish_parse(5, 0x30, over, sizeof(over), &qos, &mid), MQW_MALFORMED);
	/* a four-byte property cut to three by the property length */
	static const uint8_t cut[] = {0x00, 0x01, 'a', 0x04, 0x02, 0x00, 0x00, 0x00, 0x3C};
	assert_int_equal(publish_parse(5, 0x30, cut, sizeof(cut), &qos, &mid), MQW_MALFORMED);
	/* a five-byte subscription identifier */
	static const uint8_t sub5[] = {0x00, 0x01, 'a', 0x06, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01};
	assert_int_equal(publish_parse(5, 0x30, sub5, sizeof(sub5), &qos, &mid), MQW_MALFORMED);
	/* what 3.1.1 reads as payload */
	assert_int_equal(publish_parse(4, 0x30, unk, sizeof(unk), &qos, &mid), MQW_OK);
}

static void test_pingresp_parse(void **state)
{
	assert_int_equal(mqw_pingresp_parse(0xD0, 0), MQW_OK);
	assert_int_equal(mqw_pingresp_parse(0xD0, 1), MQW_MALFORMED);
	assert_int_equal(mqw_pingresp_parse(0xD1, 0), MQW_MALFORMED);
	assert_int_equal(mqw_pingresp_parse(0xC0, 0), MQW_MALFORMED); /* PINGREQ */
	assert_int_equal(mqw_pingresp_parse(0x40, 0), MQW_MALFORMED);
}

/* Encode, frame, parse: what goes out is what a server would read. */
static void test_round_trip(void **state)
{
	static const mqw_prop_t props[] = {{"plant", "north"}, {"", ""}};
	for(int protocol = 4; protocol <= 5; protocol++) {
		for(int qos = 0; qos <= 1; qos++) {
			mqw_publish_t p = {.protocol = protocol, .topic = "plant/north/t1",
			                   .topic_len = 14, .payload = "{\"v\":1}", .payload_len = 7,
			                   .qos = qos, .retain = qos == 1, .mid = 0xABCD,
			                   .props = props, .n_props = 2};
			size_t n;
			uint8_t h;
			const uint8_t *body;
			uint32_t blen;
			uint8_t *out = encode_framed(&p, &n, &h, &body, &blen);
			int q;
			uint16_t mid;
			assert_int_equal(publish_parse(protocol, h, body, blen, &q, &mid), MQW_OK);
			assert_int_equal(q, qos);
			assert_int_equal(mid, qos ? 0xABCD : 0);
			assert_int_equal(h & 1, qos == 1);
			assert_memory_equal(body + blen - 7, "{\"v\":1}", 7);
			free(out);
		}
	}
}

/* --- SUBSCRIBE / UNSUBSCRIBE ----------------------------------------------- */

/* One filter of filter[0..fl) must encode to exactly want[0..len), into an
 * exact-size heap buffer, and frame back to one packet of that size. */
static void check_subscribe(int protocol, bool unsubscribe, uint16_t mid, const char *filter,
                            size_t fl, uint8_t options, const uint8_t *want, size_t len)
{
	assert_int_equal(mqw_subscribe_size(protocol, unsubscribe, fl), len);
	uint8_t *out = malloc(len);
	assert_non_null(out);
	assert_int_equal(mqw_subscribe_encode(protocol, unsubscribe, mid, filter, fl, options, out),
	                 len);
	assert_memory_equal(out, want, len);
	uint8_t h;
	const uint8_t *body;
	uint32_t blen;
	size_t total;
	assert_int_equal(mqw_frame(out, len, len, &h, &body, &blen, &total), MQW_OK);
	assert_int_equal(h, want[0]);
	assert_int_equal(total, len);
	free(out);
}

/* 3.1.1 3.8: SUBSCRIBE is 1000 0010 (82), remaining length, packet
 * identifier, then per filter a UTF-8 string and a byte whose bits 0-1 are
 * the QoS and bits 2-7 reserved (0).  3.10: UNSUBSCRIBE is A2, packet
 * identifier, the filter, no options. */
static void test_subscribe_v4(void **state)
{
	static const uint8_t sub[] = {0x82, 0x08, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x01};
	check_subscribe(4, false, 10, "a/b", 3, 0x01, sub, sizeof(sub));
	/* MQTT 5's option bits are left out: what the plant link asks for
	 * (QoS 1, Retain As Published 08, Retain Handling 1 = 10) is QoS 1 */
	check_subscribe(4, false, 10, "a/b", 3, 0x19, sub, sizeof(sub));
	check_subscribe(4, false, 10, "a/b", 3, 0xFD, sub, sizeof(sub));
	static const uint8_t q2[] = {0x82, 0x08, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x02};
	check_subscribe(4, false, 10, "a/b", 3, 0x02, q2, sizeof(q2));
	check_subscribe(4, false, 10, "a/b", 3, 0x3E, q2, sizeof(q2));
	static const uint8_t q0[] = {0x82, 0x08, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00};
	check_subscribe(4, false, 10, "a/b", 3, 0x00, q0, sizeof(q0));
	/* the packet identifier is big-endian */
	static const uint8_t be[] = {0x82, 0x08, 0xBE, 0xEF, 0x00, 0x03, 'a', '/', 'b', 0x01};
	check_subscribe(4, false, 0xBEEF, "a/b", 3, 0x01, be, sizeof(be));
	/* wildcards are just bytes of the filter */
	static const uint8_t wild[] = {0x82, 0x13, 0x00, 0x01, 0x00, 0x0E, 'p', 'l', 'a', 'n', 't',
	                               '/',  '+',  '/',  't',  'e',  'm',  'p', '/', '#', 0x01};
	check_subscribe(4, false, 1, "plant/+/temp/#", 14, 0x01, wild, sizeof(wild));
	/* the filter is filter[0..filter_len), not a C string */
	check_subscribe(4, false, 10, "a/bcd", 3, 0x01, sub, sizeof(sub));

	static const uint8_t unsub[] = {0xA2, 0x07, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b'};
	check_subscribe(4, true, 10, "a/b", 3, 0x01, unsub, sizeof(unsub));
	check_subscribe(4, true, 10, "a/b", 3, 0xFF, unsub, sizeof(unsub)); /* options unused */
	static const uint8_t unsubh[] = {0xA2, 0x05, 0xFF, 0xFF, 0x00, 0x01, '#'};
	check_subscribe(4, true, 0xFFFF, "#", 1, 0, unsubh, sizeof(unsubh));
}

/* 5.0 3.8.2 / 3.10.2: a Property Length (here 0) follows the packet
 * identifier; 3.8.3.1: the options byte is QoS (bits 0-1), No Local (04),
 * Retain As Published (08), Retain Handling (bits 4-5), and goes out as
 * given. */
static void test_subscribe_v5(void **state)
{
	static const uint8_t sub[] = {0x82, 0x09, 0x00, 0x0A, 0x00, 0x00,
	                              0x03, 'a',  '/',  'b',  0x19};
	check_subscribe(5, false, 10, "a/b", 3, 0x19, sub, sizeof(sub));
	static const uint8_t all[] = {0x82, 0x09, 0x00, 0x0A, 0x00, 0x00,
	                              0x03, 'a',  '/',  'b',  0x2E};
	check_subscribe(5, false, 10, "a/b", 3, 0x2E, all, sizeof(all)); /* QoS 2, RAP, RH 2 */
	static const uint8_t nl[] = {0x82, 0x09, 0x12, 0x34, 0x00, 0x00,
	                             0x03, 'a',  '/',  'b',  0x05};
	check_subscribe(5, false, 0x1234, "a/b", 3, 0x05, nl, sizeof(nl)); /* QoS 1, No Local */
	static const uint8_t wild[] = {0x82, 0x14, 0x00, 0x01, 0x00, 0x00, 0x0E, 'p',
	                               'l',  'a',  'n',  't',  '/',  '+',  '/',  't',
	                               'e',  'm',  'p',  '/',  '#',  0x01};
	check_subscribe(5, false, 1, "plant/+/temp/#", 14, 0x01, wild, sizeof(wild));

	static const uint8_t unsub[] = {0xA2, 0x08, 0x00, 0x0A, 0x00, 0x00, 0x03, 'a', '/', 'b'};
	check_subscribe(5, true, 10, "a/b", 3, 0x19, unsub, sizeof(unsub));
	check_subscribe(5, true, 10, "a/b", 3, 0x00, unsub, sizeof(unsub));
}

/* The remaining length is a variable byte integer: at 127 one byte, at 128
 * two (80 01).  SUBSCRIBE 3.1.1 has 5 bytes besides the filter, 5.0 and
 * UNSUBSCRIBE 5.0 have 6 and 5, UNSUBSCRIBE 3.1.1 has 4; a 65,535-byte filter
 * is the longest (two length bytes FF FF). */
static void test_subscribe_lengths(void **state)
{
	static const struct {
		int protocol;
		bool unsub;
		size_t fl;
		uint8_t len[3];
		size_t n;
	} cases[] = {
	    {4, false, 122, {0x7F}, 1},           {4, false, 123, {0x80, 0x01}, 2},
	    {5, false, 121, {0x7F}, 1},           {5, false, 122, {0x80, 0x01}, 2},
	    {4, true, 123, {0x7F}, 1},            {4, true, 124, {0x80, 0x01}, 2},
	    {5, true, 122, {0x7F}, 1},            {5, true, 123, {0x80, 0x01}, 2},
	    /* 65540 = 84 80 04, 65541 = 85 80 04, 65539 = 83 80 04 */
	    {4, false, 65535, {0x84, 0x80, 0x04}, 3}, {5, false, 65535, {0x85, 0x80, 0x04}, 3},
	    {4, true, 65535, {0x83, 0x80, 0x04}, 3},  {5, true, 65535, {0x84, 0x80, 0x04}, 3},
	};
	char *f = malloc(65536);
	assert_non_null(f);
	for(size_t i = 0; i < 65536; i++) {
		f[i] = (char)('a' + i % 26);
	}
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int protocol = cases[i].protocol;
		bool unsub = cases[i].unsub;
		size_t fl = cases[i].fl, n = cases[i].n;
		size_t remaining = 2 + (protocol == 5 ? 1 : 0) + 2 + fl + (unsub ? 0 : 1);
		size_t size = mqw_subscribe_size(protocol, unsub, fl);
		assert_int_equal(size, 1 + n + remaining);
		uint8_t *out = malloc(size);
		assert_non_null(out);
		assert_int_equal(mqw_subscribe_encode(protocol, unsub, 0x0102, f, fl, 1, out),
		                 size);
		assert_int_equal(out[0], unsub ? 0xA2 : 0x82);
		assert_memory_equal(out + 1, cases[i].len, n);
		const uint8_t *o = out + 1 + n;
		assert_int_equal(o[0], 0x01);
		assert_int_equal(o[1], 0x02);
		o += 2;
		if(protocol == 5) {
			assert_int_equal(*o++, 0x00);
		}
		assert_int_equal(o[0], fl >> 8);
		assert_int_equal(o[1], fl & 0xFF);
		assert_memory_equal(o + 2, f, fl);
		o += 2 + fl;
		if(!unsub) {
			assert_int_equal(*o++, 0x01);
		}
		assert_ptr_equal(o, out + size);
		free(out);
	}
	free(f);
}

/* An empty filter is not one (3.1.1 3.8.3-3, 5.0 3.8.3-2); over 65,535
 * bytes it cannot be a UTF-8 string: size 0, and encode writes nothing (nor
 * reads the filter). */
static void test_subscribe_refused(void **state)
{
	uint8_t out[16], untouched[16];
	memset(out, 0xAA, sizeof(out));
	memset(untouched, 0xAA, sizeof(untouched));
	static const size_t bad[] = {0, 65536, 65537, (size_t)-1};
	for(int k = 0; k < 4; k++) {
		int protocol = k & 1 ? 5 : 4;
		bool unsub = k & 2;
		for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			assert_int_equal(mqw_subscribe_size(protocol, unsub, bad[i]), 0);
			size_t w = mqw_subscribe_encode(protocol, unsub, 1, "a/b", bad[i], 1, out);
			assert_int_equal(w, 0);
			assert_memory_equal(out, untouched, sizeof(out));
		}
	}
}

/* --- PUBLISH received, decoded in full -------------------------------------- */

/* A PUBLISH decoded from an exact-size heap copy of its body, which the
 * pointers in m point into; rx_free frees the copy. */
typedef struct rx {
	uint8_t *body;
	uint32_t len;
	mqw_rx_publish_t m;
} rx_t;

static mqw_rc_t rx_decode(rx_t *r, int protocol, uint8_t header, const uint8_t *b, uint32_t n)
{
	r->body = dup_body(b, n);
	r->len = n;
	memset(&r->m, 0xA5, sizeof(r->m));
	return mqw_publish_decode(protocol, header, r->body, n, &r->m);
}

static void rx_free(rx_t *r)
{
	free(r->body);
	r->body = NULL;
}

/* The return code alone. */
static mqw_rc_t decode_rc(int protocol, uint8_t header, const uint8_t *b, uint32_t n)
{
	rx_t r;
	mqw_rc_t rc = rx_decode(&r, protocol, header, b, n);
	rx_free(&r);
	return rc;
}

static void test_publish_decode_v4(void **state)
{
	rx_t r;
	/* QoS 0, retain: topic "a/b", payload "hi" */
	static const uint8_t q0[] = {0x00, 0x03, 'a', '/', 'b', 'h', 'i'};
	assert_int_equal(rx_decode(&r, 4, 0x31, q0, sizeof(q0)), MQW_OK);
	assert_ptr_equal(r.m.topic, r.body + 2);
	assert_int_equal(r.m.topic_len, 3);
	assert_ptr_equal(r.m.payload, r.body + 5);
	assert_int_equal(r.m.payload_len, 2);
	assert_int_equal(r.m.qos, 0);
	assert_true(r.m.retain);
	assert_false(r.m.dup);
	assert_int_equal(r.m.mid, 0);
	assert_null(r.m.props); /* 3.1.1 has none */
	assert_int_equal(r.m.props_len, 0);
	assert_false(r.m.topic_alias);
	rx_free(&r);

	/* QoS 1 with DUP (1011 1010 = 3A), packet identifier 10 */
	static const uint8_t q1[] = {0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'};
	assert_int_equal(rx_decode(&r, 4, 0x3A, q1, sizeof(q1)), MQW_OK);
	assert_int_equal(r.m.qos, 1);
	assert_true(r.m.dup);
	assert_false(r.m.retain);
	assert_int_equal(r.m.mid, 10);
	assert_ptr_equal(r.m.topic, r.body + 2);
	assert_int_equal(r.m.topic_len, 3);
	assert_ptr_equal(r.m.payload, r.body + 7);
	assert_int_equal(r.m.payload_len, 2);
	assert_memory_equal(r.m.payload, "hi", 2);
	rx_free(&r);
	/* QoS 1 without DUP */
	assert_int_equal(rx_decode(&r, 4, 0x32, q1, sizeof(q1)), MQW_OK);
	assert_int_equal(r.m.qos, 1);
	assert_false(r.m.dup);
	assert_false(r.m.retain);
	rx_free(&r);
	/* QoS 2, DUP and retain (3D): the decoder reports it, the caller refuses it */
	assert_int_equal(rx_decode(&r, 4, 0x3D, q1, sizeof(q1)), MQW_OK);
	assert_int_equal(r.m.qos, 2);
	assert_true(r.m.dup);
	assert_true(r.m.retain);
	assert_int_equal(r.m.mid, 10);
	rx_free(&r);

	/* no payload: payload at the end of the body, length 0 */
	assert_int_equal(rx_decode(&r, 4, 0x32, q1, 7), MQW_OK);
	assert_ptr_equal(r.m.payload, r.body + 7);
	assert_int_equal(r.m.payload_len, 0);
	assert_int_equal(r.m.mid, 10);
	rx_free(&r);
	assert_int_equal(rx_decode(&r, 4, 0x30, q0, 5), MQW_OK);
	assert_ptr_equal(r.m.payload, r.body + 5);
	assert_int_equal(r.m.payload_len, 0);
	rx_free(&r);

	/* an empty topic is the caller's to refuse */
	static const uint8_t et[] = {0x00, 0x00, 'x'};
	assert_int_equal(rx_decode(&r, 4, 0x30, et, sizeof(et)), MQW_OK);
	assert_int_equal(r.m.topic_len, 0);
	assert_ptr_equal(r.m.payload, r.body + 2);
	assert_int_equal(r.m.payload_len, 1);
	rx_free(&r);

	/* what 5.0 would read as properties is payload under 3.1.1 */
	static const uint8_t pl[] = {0x00, 0x01, 'a', 0x03, 0x23, 0x00, 0x05};
	assert_int_equal(rx_decode(&r, 4, 0x30, pl, sizeof(pl)), MQW_OK);
	assert_ptr_equal(r.m.payload, r.body + 3);
	assert_int_equal(r.m.payload_len, 4);
	assert_false(r.m.topic_alias);
	assert_null(r.m.props);
	rx_free(&r);

	/* QoS 3 is malformed (3.1.1 3.3.1.2), with or without retain */
	assert_int_equal(decode_rc(4, 0x36, q1, sizeof(q1)), MQW_MALFORMED);
	assert_int_equal(decode_rc(4, 0x37, q1, sizeof(q1)), MQW_MALFORMED);
	assert_int_equal(decode_rc(4, 0x3E, q1, sizeof(q1)), MQW_MALFORMED);
	/* DUP at QoS 0 (3.3.1.1) */
	assert_int_equal(decode_rc(4, 0x38, q0, sizeof(q0)), MQW_MALFORMED);
	assert_int_equal(decode_rc(4, 0x39, q0, sizeof(q0)), MQW_MALFORMED);
	/* packet identifier 0 at QoS 1 and 2 (2.3.1) */
	static const uint8_t z[] = {0x00, 0x01, 'a', 0x00, 0x00, 'x'};
	assert_int_equal(decode_rc(4, 0x32, z, sizeof(z)), MQW_MALFORMED);
	assert_int_equal(decode_rc(4, 0x3A, z, sizeof(z)), MQW_MALFORMED);
	assert_int_equal(decode_rc(4, 0x34, z, sizeof(z)), MQW_MALFORMED);
	/* at QoS 0 those bytes are payload */
	assert_int_equal(decode_rc(4, 0x30, z, sizeof(z)), MQW_OK);
	/* topic cut short: no length, half a length, length past the body */
	for(uint32_t n = 0; n < 5; n++) {
		assert_int_equal(decode_rc(4, 0x30, q0, n), MQW_MALFORMED);
	}
	static const uint8_t longtopic[] = {0x00, 0x09, 'a', '/', 'b', 'h', 'i'};
	assert_int_equal(decode_rc(4, 0x30, longtopic, sizeof(longtopic)), MQW_MALFORMED);
	static const uint8_t ff[] = {0xFF, 0xFF, 'a'};
	assert_int_equal(decode_rc(4, 0x30, ff, sizeof(ff)), MQW_MALFORMED);
	/* packet identifier cut short */
	assert_int_equal(decode_rc(4, 0x32, q1, 5), MQW_MALFORMED);
	assert_int_equal(decode_rc(4, 0x32, q1, 6), MQW_MALFORMED);
	/* not a PUBLISH */
	assert_int_equal(decode_rc(4, 0x40, q0, sizeof(q0)), MQW_MALFORMED);
	assert_int_equal(decode_rc(4, 0x20, q0, sizeof(q0)), MQW_MALFORMED);
	assert_int_equal(decode_rc(4, 0x00, q0, sizeof(q0)), MQW_MALFORMED);
	assert_int_equal(decode_rc(4, 0xB0, q0, sizeof(q0)), MQW_MALFORMED);
}

static void test_publish_decode_v5(void **state)
{
	rx_t r;
	/* QoS 1, Payload Format Indicator 1, Message Expiry 60, Topic Alias 5,
	 * Subscription Identifier 300 (AC 02), Content Type "t", Correlation
	 * Data DE AD, User Property a=b; payload "pay" */
	assert_int_equal(rx_decode(&r, 5, 0x33, publish_v5_full, sizeof(publish_v5_full)), MQW_OK);
	assert_int_equal(r.m.qos, 1);
	assert_true(r.m.retain);
	assert_false(r.m.dup);
	assert_int_equal(r.m.mid, 258);
	assert_ptr_equal(r.m.topic, r.body + 2);
	assert_int_equal(r.m.topic_len, 3);
	assert_ptr_equal(r.m.props, r.body + 8); /* after the property length */
	assert_int_equal(r.m.props_len, 29);
	assert_true(r.m.topic_alias);
	assert_ptr_equal(r.m.payload, r.body + 37);
	assert_int_equal(r.m.payload_len, 3);
	assert_memory_equal(r.m.payload, "pay", 3);
	rx_free(&r);
	/* the same without its payload */
	assert_int_equal(rx_decode(&r, 5, 0x3A, publish_v5_full, sizeof(publish_v5_full) - 3), MQW_OK);
	assert_true(r.m.dup);
	assert_false(r.m.retain);
	assert_ptr_equal(r.m.payload, r.body + 37);
	assert_int_equal(r.m.payload_len, 0);
	assert_int_equal(r.m.props_len, 29);
	rx_free(&r);
	/* cut anywhere inside the properties */
	for(uint32_t n = 7; n < sizeof(publish_v5_full) - 3; n++) {
		assert_int_equal(decode_rc(5, 0x32, publish_v5_full, n), MQW_MALFORMED);
	}

	/* QoS 0, no Topic Alias: Content Type, two User Properties around a
	 * Message Expiry Interval; payload "21.5" */
	static const uint8_t qos0[] = {
	    0x00, 0x03, 't', '/', '1',                                  /* topic */
	    0x3C,                                                       /* property length 60 */
	    0x03, 0x00, 0x10, 'p', 'l', 'a', 'n', 't', 'g', 'a', 't', 'e', '-', 'd', 'e', 'v', 'i',
	    'c', 'e',                                                   /* content type */
	    0x26, 0x00, 0x10, 'p', 'l', 'a', 'n', 't', 'g', 'a', 't', 'e', '-', 'd', 'e', 'v', 'i',
	    'c', 'e', 0x00, 0x05, 'd', 'e', 'v', '-', '7',              /* user property */
	    0x02, 0x00, 0x00, 0x0E, 0x10,                               /* message expiry */
	    0x26, 0x00, 0x04, 'u', 'n', 'i', 't', 0x00, 0x01, 'C',      /* user property */
	    '2', '1', '.', '5'};
	assert_int_equal(sizeof(qos0), 5 + 1 + 60 + 4);
	assert_int_equal(rx_decode(&r, 5, 0x30, qos0, sizeof(qos0)), MQW_OK);
	assert_int_equal(r.m.qos, 0);
	assert_int_equal(r.m.mid, 0);
	assert_false(r.m.retain);
	assert_false(r.m.dup);
	assert_false(r.m.topic_alias);
	assert_ptr_equal(r.m.props, r.body + 6);
	assert_int_equal(r.m.props_len, 60);
	assert_ptr_equal(r.m.payload, r.body + 66);
	assert_int_equal(r.m.payload_len, 4);
	assert_memory_equal(r.m.payload, "21.5", 4);
	rx_free(&r);

	/* a Topic Alias alone, and with an empty topic (5.0 3.3.2.3.4) */
	static const uint8_t alias[] = {0x00, 0x01, 'a', 0x03, 0x23, 0x00, 0x01, 'x'};
	assert_int_equal(rx_decode(&r, 5, 0x30, alias, sizeof(alias)), MQW_OK);
	assert_true(r.m.topic_alias);
	assert_ptr_equal(r.m.props, r.body + 4);
	assert_int_equal(r.m.props_len, 3);
	assert_ptr_equal(r.m.payload, r.body + 7);
	assert_int_equal(r.m.payload_len, 1);
	rx_free(&r);
	static const uint8_t alias0[] = {0x00, 0x00, 0x03, 0x23, 0x00, 0x05};
	assert_int_equal(rx_decode(&r, 5, 0x30, alias0, sizeof(alias0)), MQW_OK);
	assert_true(r.m.topic_alias);
	assert_int_equal(r.m.topic_len, 0);
	assert_int_equal(r.m.payload_len, 0);
	rx_free(&r);
	/* a Topic Alias after other properties is found too */
	static const uint8_t alias2[] = {0x00, 0x01, 'a',  0x00, 0x07, 0x05,
	                                 0x01, 0x01, 0x23, 0xFF, 0xFF};
	assert_int_equal(rx_decode(&r, 5, 0x3A, alias2, sizeof(alias2)), MQW_OK);
	assert_true(r.m.topic_alias);
	assert_int_equal(r.m.mid, 7);
	assert_int_equal(r.m.props_len, 5);
	assert_int_equal(r.m.payload_len, 0);
	rx_free(&r);

	/* an empty property list: properties and payload both at the end */
	static const uint8_t empty[] = {0x00, 0x01, 'a', 0x00};
	assert_int_equal(rx_decode(&r, 5, 0x30, empty, sizeof(empty)), MQW_OK);
	assert_ptr_equal(r.m.props, r.body + 4);
	assert_int_equal(r.m.props_len, 0);
	assert_ptr_equal(r.m.payload, r.body + 4);
	assert_int_equal(r.m.payload_len, 0);
	assert_false(r.m.topic_alias);
	rx_free(&r);
	/* QoS 1 and DUP, empty properties, payload "p" */
	static const uint8_t q1[] = {0x00, 0x01, 'a', 0x00, 0x07, 0x00, 'p'};
	assert_int_equal(rx_decode(&r, 5, 0x3A, q1, sizeof(q1)), MQW_OK);
	assert_int_equal(r.m.qos, 1);
	assert_true(r.m.dup);
	assert_int_equal(r.m.mid, 7);
	assert_ptr_equal(r.m.props, r.body + 6);
	assert_int_equal(r.m.props_len, 0);
	assert_ptr_equal(r.m.payload, r.body + 6);
	assert_int_equal(r.m.payload_len, 1);
	rx_free(&r);

	/* a two-byte property length: a user property k = 130 bytes is
	 * 1 + 3 + 132 = 136 bytes, 88 01 */
	uint8_t big[3 + 2 + 136 + 2];
	memcpy(big, "\x00\x01" "a" "\x88\x01" "\x26\x00\x01" "k" "\x00\x82", 11);
	memset(big + 11, 'v', 130);
	memcpy(big + 141, "zz", 2);
	assert_int_equal(rx_decode(&r, 5, 0x30, big, sizeof(big)), MQW_OK);
	assert_ptr_equal(r.m.props, r.body + 5);
	assert_int_equal(r.m.props_len, 136);
	assert_ptr_equal(r.m.payload, r.body + 141);
	assert_int_equal(r.m.payload_len, 2);
	rx_free(&r);

	/* malformed: QoS 3, DUP at QoS 0, packet identifier 0 */
	assert_int_equal(decode_rc(5, 0x36, publish_v5_full, sizeof(publish_v5_full)), MQW_MALFORMED);
	assert_int_equal(decode_rc(5, 0x38, empty, sizeof(empty)), MQW_MALFORMED);
	static const uint8_t z[] = {0x00, 0x01, 'a', 0x00, 0x00, 0x00};
	assert_int_equal(decode_rc(5, 0x32, z, sizeof(z)), MQW_MALFORMED);
	/* topic cut short */
	for(uint32_t n = 0; n < 5; n++) {
		assert_int_equal(decode_rc(5, 0x32, publish_v5_full, n), MQW_MALFORMED);
	}
	/* 5.0 always has a property length */
	assert_int_equal(decode_rc(5, 0x30, empty, 3), MQW_MALFORMED);
	assert_int_equal(decode_rc(5, 0x32, q1, 5), MQW_MALFORMED);
	/* property length past the body, by one and by a lot */
	static const uint8_t over[] = {0x00, 0x01, 'a', 0x03, 0x23, 0x00};
	assert_int_equal(decode_rc(5, 0x30, over, sizeof(over)), MQW_MALFORMED);
	static const uint8_t over2[] = {0x00, 0x01, 'a', 0xFF, 0xFF, 0xFF, 0x7F, 0x01, 0x01};
	assert_int_equal(decode_rc(5, 0x30, over2, sizeof(over2)), MQW_MALFORMED);
	/* a property length not minimally encoded, or of five bytes */
	static const uint8_t nonmin[] = {0x00, 0x01, 'a', 0x80, 0x00};
	assert_int_equal(decode_rc(5, 0x30, nonmin, sizeof(nonmin)), MQW_MALFORMED);
	static const uint8_t five[] = {0x00, 0x01, 'a', 0x80, 0x80, 0x80, 0x80, 0x00};
	assert_int_equal(decode_rc(5, 0x30, five, sizeof(five)), MQW_MALFORMED);
	/* a property length shorter than its Topic Alias, the rest payload */
	static const uint8_t under[] = {0x00, 0x01, 'a', 0x02, 0x23, 0x00, 0x05};
	assert_int_equal(decode_rc(5, 0x30, under, sizeof(under)), MQW_MALFORMED);
	/* unknown identifiers: 00, 04, 2B, 7F and 128 (80 01) */
	static const uint8_t unk[][7] = {
	    {0x00, 0x01, 'a', 0x02, 0x00, 0x00, 'x'}, {0x00, 0x01, 'a', 0x02, 0x04, 0x00, 'x'},
	    {0x00, 0x01, 'a', 0x02, 0x2B, 0x00, 'x'}, {0x00, 0x01, 'a', 0x02, 0x7F, 0x00, 'x'},
	    {0x00, 0x01, 'a', 0x03, 0x80, 0x01, 0x00},
	};
	for(size_t i = 0; i < sizeof(unk) / sizeof(unk[0]); i++) {
		assert_int_equal(decode_rc(5, 0x30, unk[i], sizeof(unk[i])), MQW_MALFORMED);
		assert_int_equal(decode_rc(4, 0x30, unk[i], sizeof(unk[i])), MQW_OK);
	}
	/* an unknown property after a good one */
	static const uint8_t unk2[] = {0x00, 0x01, 'a', 0x05, 0x23, 0x00, 0x01, 0x2B, 0x00};
	assert_int_equal(decode_rc(5, 0x30, unk2, sizeof(unk2)), MQW_MALFORMED);
	/* a User Property without its value */
	static const uint8_t half[] = {0x00, 0x01, 'a', 0x04, 0x26, 0x00, 0x01, 'k'};
	assert_int_equal(decode_rc(5, 0x30, half, sizeof(half)), MQW_MALFORMED);
	/* not a PUBLISH */
	assert_int_equal(decode_rc(5, 0x40, empty, sizeof(empty)), MQW_MALFORMED);
}

/* --- User Properties ------------------------------------------------------- */

/* mqw_user_prop_find on r's properties: the count, and the first value must
 * be want (NULL: none). */
static void check_find(const rx_t *r, const char *name, size_t name_len, unsigned count,
                       const char *want)
{
	const uint8_t *v = (const uint8_t *)"junk";
	uint16_t vn = 0xBEEF;
	assert_int_equal(mqw_user_prop_find(r->m.props, r->m.props_len, name, name_len, &v, &vn),
	                 count);
	if(!want) {
		assert_null(v);
		assert_int_equal(vn, 0);
		return;
	}
	assert_non_null(v);
	assert_int_equal(vn, strlen(want));
	assert_memory_equal(v, want, vn);
	/* the value is where it was sent, inside the properties */
	assert_true(v >= r->m.props && v + vn <= r->m.props + r->m.props_len);
	assert_int_equal(v[-2] << 8 | v[-1], vn);
}

static void test_user_prop_find(void **state)
{
	/* topic "t"; properties: Content Type "plantgate-device"; User
	 * Properties plantgate-dev = short (a prefix of the name),
	 * plantgate-device-x = long (the name is its prefix), other =
	 * plantgate-device (the name as a value); Message Expiry; User Property
	 * plantgate-device = dev-1; Topic Alias 1; User Properties
	 * PLANTGATE-DEVICE = upper, plantgate-device = dev-2, "" = ""; Response
	 * Topic "plantgate-device"; payload "x".  205 bytes of properties, CD 01. */
#define PGD 'p', 'l', 'a', 'n', 't', 'g', 'a', 't', 'e', '-', 'd', 'e', 'v', 'i', 'c', 'e'
	static const uint8_t body[] = {
	    0x00, 0x01, 't', 0xCD, 0x01,
	    0x03, 0x00, 0x10, PGD,                                              /* 19 */
	    0x26, 0x00, 0x0D, 'p', 'l', 'a', 'n', 't', 'g', 'a', 't', 'e', '-', 'd', 'e', 'v',
	    0x00, 0x05, 's', 'h', 'o', 'r', 't',                                /* 23 */
	    0x26, 0x00, 0x12, PGD, '-', 'x', 0x00, 0x04, 'l', 'o', 'n', 'g',    /* 27 */
	    0x26, 0x00, 0x05, 'o', 't', 'h', 'e', 'r', 0x00, 0x10, PGD,         /* 26 */
	    0x02, 0x00, 0x00, 0x00, 0x3C,                                       /* 5 */
	    0x26, 0x00, 0x10, PGD, 0x00, 0x05, 'd', 'e', 'v', '-', '1',         /* 26 */
	    0x23, 0x00, 0x01,                                                   /* 3 */
	    0x26, 0x00, 0x10, 'P', 'L', 'A', 'N', 'T', 'G', 'A', 'T', 'E', '-', 'D', 'E', 'V', 'I',
	    'C', 'E', 0x00, 0x05, 'u', 'p', 'p', 'e', 'r',                      /* 26 */
	    0x26, 0x00, 0x10, PGD, 0x00, 0x05, 'd', 'e', 'v', '-', '2',         /* 26 */
	    0x26, 0x00, 0x00, 0x00, 0x00,                                       /* 5 */
	    0x08, 0x00, 0x10, PGD,                                              /* 19 */
	    'x'};
#undef PGD
	assert_int_equal(sizeof(body), 3 + 2 + 205 + 1);
	rx_t r;
	assert_int_equal(rx_decode(&r, 5, 0x30, body, sizeof(body)), MQW_OK);
	assert_int_equal(r.m.props_len, 205);
	assert_true(r.m.topic_alias);
	assert_int_equal(r.m.payload_len, 1);

	/* two matches: the first one's value, where it is in the packet */
	check_find(&r, "plantgate-device", 16, 2, "dev-1");
	const uint8_t *v;
	uint16_t vn;
	mqw_user_prop_find(r.m.props, r.m.props_len, "plantgate-device", 16, &v, &vn);
	assert_ptr_equal(v, r.m.props + 19 + 23 + 27 + 26 + 5 + 21);
	/* exact names only: a prefix of a name, a name with the wanted one as
	 * its prefix, another case are other names */
	check_find(&r, "plantgate-dev", 13, 1, "short");
	check_find(&r, "plantgate-devic", 15, 0, NULL);
	check_find(&r, "plantgate-device-x", 18, 1, "long");
	check_find(&r, "plantgate-device-", 17, 0, NULL);
	check_find(&r, "PLANTGATE-DEVICE", 16, 1, "upper");
	check_find(&r, "other", 5, 1, "plantgate-device");
	/* the name is name[0..name_len) */
	check_find(&r, "plantgate-device", 13, 1, "short");
	check_find(&r, "otherwise", 5, 1, "plantgate-device");
	/* values, Content Type and Response Topic are not names */
	check_find(&r, "dev-1", 5, 0, NULL);
	check_find(&r, "long", 4, 0, NULL);
	/* the empty name: one, with an empty value */
	check_find(&r, "", 0, 1, "");
	rx_free(&r);

	/* one match among other properties */
	static const uint8_t one[] = {
	    0x00, 0x01, 't', 0x13,
	    0x01, 0x01,                                    /* payload format */
	    0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v',        /* k = v */
	    0x0B, 0x05,                                    /* subscription id 5 */
	    0x26, 0x00, 0x01, 'K', 0x00, 0x02, 'v', '2',   /* K = v2 */
	    'p'};
	assert_int_equal(rx_decode(&r, 5, 0x30, one, sizeof(one)), MQW_OK);
	check_find(&r, "k", 1, 1, "v");
	check_find(&r, "K", 1, 1, "v2");
	check_find(&r, "kk", 2, 0, NULL);
	check_find(&r, "", 0, 0, NULL);
	rx_free(&r);

	/* no properties at all (5.0), and a 3.1.1 PUBLISH */
	static const uint8_t none[] = {0x00, 0x01, 't', 0x00, 'p'};
	assert_int_equal(rx_decode(&r, 5, 0x30, none, sizeof(none)), MQW_OK);
	check_find(&r, "k", 1, 0, NULL);
	check_find(&r, "", 0, 0, NULL);
	rx_free(&r);
	assert_int_equal(rx_decode(&r, 4, 0x30, one, sizeof(one)), MQW_OK);
	check_find(&r, "k", 1, 0, NULL);
	rx_free(&r);
	/* properties without a User Property: Payload Format, Topic Alias */
	static const uint8_t nouser[] = {0x00, 0x01, 'a',  0x00, 0x07, 0x05,
	                                 0x01, 0x01, 0x23, 0xFF, 0xFF};
	assert_int_equal(rx_decode(&r, 5, 0x3A, nouser, sizeof(nouser)), MQW_OK);
	assert_int_equal(r.m.props_len, 5);
	check_find(&r, "", 0, 0, NULL);
	rx_free(&r);
}

/* --- SUBACK / UNSUBACK ----------------------------------------------------- */

static mqw_rc_t suback_parse(int protocol, uint8_t header, const uint8_t *b, uint32_t n,
                             uint16_t *mid, uint8_t *code)
{
	uint8_t *c = dup_body(b, n);
	mqw_rc_t rc = mqw_suback_parse(protocol, header, c, n, mid, code);
	free(c);
	return rc;
}

/* 3.1.1 3.9: SUBACK 90, packet identifier, one return code per filter:
 * 00, 01, 02 (the QoS granted) or 80 (failure).  3.11: UNSUBACK B0 and the
 * packet identifier, remaining length exactly 2. */
static void test_suback_v4(void **state)
{
	uint16_t mid;
	uint8_t code;
	static const uint8_t codes[] = {0x00, 0x01, 0x02, 0x80};
	for(size_t i = 0; i < sizeof(codes); i++) {
		const uint8_t b[] = {0x00, 0x0A, codes[i]};
		code = 0x55;
		assert_int_equal(suback_parse(4, 0x90, b, sizeof(b), &mid, &code), MQW_OK);
		assert_int_equal(mid, 10);
		assert_int_equal(code, codes[i]);
	}
	static const uint8_t be[] = {0xBE, 0xEF, 0x01};
	assert_int_equal(suback_parse(4, 0x90, be, sizeof(be), &mid, &code), MQW_OK);
	assert_int_equal(mid, 0xBEEF);
	/* UNSUBACK: no code; 0 reported */
	static const uint8_t un[] = {0x00, 0x0A, 0x00, 0x00};
	code = 0x55;
	assert_int_equal(suback_parse(4, 0xB0, un, 2, &mid, &code), MQW_OK);
	assert_int_equal(mid, 10);
	assert_int_equal(code, 0);
	/* ... and nothing after the packet identifier */
	assert_int_equal(suback_parse(4, 0xB0, un, 3, &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(4, 0xB0, un, 4, &mid, &code), MQW_MALFORMED);
	/* SUBACK for one filter: exactly one code, not none, not two */
	static const uint8_t two[] = {0x00, 0x0A, 0x01, 0x01};
	assert_int_equal(suback_parse(4, 0x90, two, 2, &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(4, 0x90, two, 4, &mid, &code), MQW_MALFORMED);
	/* packet identifier 0, or cut short */
	static const uint8_t z[] = {0x00, 0x00, 0x01};
	assert_int_equal(suback_parse(4, 0x90, z, sizeof(z), &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(4, 0xB0, z, 2, &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(4, 0x90, two, 1, &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(4, 0x90, two, 0, &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(4, 0xB0, two, 1, &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(4, 0xB0, two, 0, &mid, &code), MQW_MALFORMED);
	/* flags must be 0000 (2.2.2) */
	static const uint8_t ok[] = {0x00, 0x0A, 0x01};
	static const uint8_t flagged[] = {0x91, 0x92, 0x94, 0x98, 0x9F, 0xB1, 0xB2, 0xB8};
	for(size_t i = 0; i < sizeof(flagged); i++) {
		uint32_t n = (flagged[i] >> 4) == MQW_UNSUBACK ? 2 : 3;
		assert_int_equal(suback_parse(4, flagged[i], ok, n, &mid, &code), MQW_MALFORMED);
	}
	/* not a SUBACK or UNSUBACK: SUBSCRIBE, UNSUBSCRIBE, PUBACK */
	assert_int_equal(suback_parse(4, 0x82, ok, 3, &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(4, 0xA2, ok, 2, &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(4, 0x40, ok, 2, &mid, &code), MQW_MALFORMED);
}

/* 5.0 3.9 / 3.11: packet identifier, Property Length and properties (Reason
 * String, User Property), then one reason code per filter; UNSUBACK has
 * codes too (00 Success, 11 No subscription existed, 87 Not authorized). */
static void test_suback_v5(void **state)
{
	uint16_t mid;
	uint8_t code;
	static const uint8_t codes[] = {0x00, 0x01, 0x02, 0x80, 0x87, 0x8F, 0x97, 0xA2};
	for(size_t i = 0; i < sizeof(codes); i++) {
		const uint8_t b[] = {0x00, 0x0A, 0x00, codes[i]};
		code = 0x55;
		assert_int_equal(suback_parse(5, 0x90, b, sizeof(b), &mid, &code), MQW_OK);
		assert_int_equal(mid, 10);
		assert_int_equal(code, codes[i]);
		code = 0x55;
		assert_int_equal(suback_parse(5, 0xB0, b, sizeof(b), &mid, &code), MQW_OK);
		assert_int_equal(code, codes[i]);
	}
	static const uint8_t un11[] = {0x12, 0x34, 0x00, 0x11};
	assert_int_equal(suback_parse(5, 0xB0, un11, sizeof(un11), &mid, &code), MQW_OK);
	assert_int_equal(mid, 0x1234);
	assert_int_equal(code, 0x11);
	/* Reason String "no" and User Property k = v, then 87 */
	static const uint8_t props[] = {0x00, 0x0B, 0x0C, 0x1F, 0x00, 0x02, 'n', 'o', 0x26,
	                                0x00, 0x01, 'k',  0x00, 0x01, 'v',  0x87};
	assert_int_equal(suback_parse(5, 0x90, props, sizeof(props), &mid, &code), MQW_OK);
	assert_int_equal(mid, 11);
	assert_int_equal(code, 0x87);
	assert_int_equal(suback_parse(5, 0xB0, props, sizeof(props), &mid, &code), MQW_OK);
	assert_int_equal(code, 0x87);
	/* cut anywhere: malformed (inside the properties, or no code) */
	for(uint32_t n = 0; n < sizeof(props); n++) {
		assert_int_equal(suback_parse(5, 0x90, props, n, &mid, &code), MQW_MALFORMED);
		assert_int_equal(suback_parse(5, 0xB0, props, n, &mid, &code), MQW_MALFORMED);
	}
	/* a property length that takes the code: the byte is read as property 00 */
	static const uint8_t takes[] = {0x00, 0x0A, 0x05, 0x1F, 0x00, 0x01, 'n', 0x00};
	assert_int_equal(suback_parse(5, 0x90, takes, sizeof(takes), &mid, &code), MQW_MALFORMED);
	static const uint8_t fits[] = {0x00, 0x0A, 0x04, 0x1F, 0x00, 0x01, 'n', 0x00};
	assert_int_equal(suback_parse(5, 0x90, fits, sizeof(fits), &mid, &code), MQW_OK);
	assert_int_equal(code, 0x00);
	/* zero codes, two codes */
	static const uint8_t zero[] = {0x00, 0x0A, 0x00};
	assert_int_equal(suback_parse(5, 0x90, zero, sizeof(zero), &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(5, 0xB0, zero, sizeof(zero), &mid, &code), MQW_MALFORMED);
	static const uint8_t two[] = {0x00, 0x0A, 0x00, 0x00, 0x80};
	assert_int_equal(suback_parse(5, 0x90, two, sizeof(two), &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(5, 0xB0, two, sizeof(two), &mid, &code), MQW_MALFORMED);
	/* the Property Length is not optional: 3.1.1's shapes are malformed */
	static const uint8_t v4sub[] = {0x00, 0x0A, 0x01};
	assert_int_equal(suback_parse(5, 0x90, v4sub, sizeof(v4sub), &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(5, 0xB0, v4sub, 2, &mid, &code), MQW_MALFORMED);
	/* property length past the body; unknown property; half a User Property */
	static const uint8_t over[] = {0x00, 0x0A, 0x05, 0x1F, 0x00, 0x00};
	assert_int_equal(suback_parse(5, 0x90, over, sizeof(over), &mid, &code), MQW_MALFORMED);
	static const uint8_t unk[] = {0x00, 0x0A, 0x02, 0x05, 0x00, 0x00};
	assert_int_equal(suback_parse(5, 0x90, unk, sizeof(unk), &mid, &code), MQW_MALFORMED);
	static const uint8_t half[] = {0x00, 0x0A, 0x04, 0x26, 0x00, 0x01, 'k', 0x00};
	assert_int_equal(suback_parse(5, 0x90, half, sizeof(half), &mid, &code), MQW_MALFORMED);
	static const uint8_t nonmin[] = {0x00, 0x0A, 0x80, 0x00, 0x00};
	assert_int_equal(suback_parse(5, 0x90, nonmin, sizeof(nonmin), &mid, &code), MQW_MALFORMED);
	/* packet identifier 0; wrong flags; other types */
	static const uint8_t z[] = {0x00, 0x00, 0x00, 0x00};
	assert_int_equal(suback_parse(5, 0x90, z, sizeof(z), &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(5, 0xB0, z, sizeof(z), &mid, &code), MQW_MALFORMED);
	static const uint8_t ok[] = {0x00, 0x0A, 0x00, 0x00};
	assert_int_equal(suback_parse(5, 0x92, ok, sizeof(ok), &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(5, 0x91, ok, sizeof(ok), &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(5, 0xB2, ok, sizeof(ok), &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(5, 0xB8, ok, sizeof(ok), &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(5, 0x40, ok, sizeof(ok), &mid, &code), MQW_MALFORMED);
	assert_int_equal(suback_parse(5, 0xE0, ok, sizeof(ok), &mid, &code), MQW_MALFORMED);
}

/* mqw_publish_encode, mqw_frame, mqw_publish_decode: topic, payload, flags,
 * packet id and user properties come back as they went out. */
static void test_publish_decode_round_trip(void **state)
{
	static const mqw_prop_t props[] = {{"plantgate-device", "dev-1"},
	                                   {"unit", "C"},
	                                   {"plantgate-device", "dev-2"},
	                                   {"", ""}};
	static const char topic[] = "plant/north/line-2/t1";
	static const char json[] = "{\"v\":21.5}";
	/* protocol 4 or 5, QoS 0 (retained) or 1, with or without a payload */
	for(int k = 0; k < 8; k++) {
		int protocol = k & 1 ? 5 : 4, qos = (k >> 1) & 1;
		bool empty = k & 4;
		mqw_publish_t p = {.protocol = protocol, .topic = topic,
		                   .topic_len = sizeof(topic) - 1, .payload = empty ? NULL : json,
		                   .payload_len = empty ? 0 : sizeof(json) - 1, .qos = qos,
		                   .retain = qos == 0, .mid = 0x8001, .props = props, .n_props = 4};
		size_t n;
		uint8_t h;
		const uint8_t *body;
		uint32_t blen;
		uint8_t *out = encode_framed(&p, &n, &h, &body, &blen);
		rx_t r;
		assert_int_equal(rx_decode(&r, protocol, h, body, blen), MQW_OK);
		assert_int_equal(r.m.qos, qos);
		assert_int_equal(r.m.retain, qos == 0);
		assert_false(r.m.dup);
		assert_int_equal(r.m.mid, qos ? 0x8001 : 0);
		assert_int_equal(r.m.topic_len, sizeof(topic) - 1);
		assert_memory_equal(r.m.topic, topic, sizeof(topic) - 1);
		assert_int_equal(r.m.payload_len, p.payload_len);
		assert_ptr_equal(r.m.payload + r.m.payload_len, r.body + r.len);
		if(!empty) {
			assert_memory_equal(r.m.payload, json, sizeof(json) - 1);
		}
		assert_false(r.m.topic_alias);
		if(protocol == 5) {
			/* four user properties: 1+2+16+2+5, 1+2+4+2+1, 1+2+16+2+5, 1+2+2 */
			assert_int_equal(r.m.props_len, 26 + 10 + 26 + 5);
			assert_ptr_equal(r.m.props + r.m.props_len, r.m.payload);
			check_find(&r, "plantgate-device", 16, 2, "dev-1");
			check_find(&r, "unit", 4, 1, "C");
			check_find(&r, "", 0, 1, "");
		} else {
			assert_null(r.m.props);
			assert_int_equal(r.m.props_len, 0);
			check_find(&r, "plantgate-device", 16, 0, NULL);
		}
		check_find(&r, "missing", 7, 0, NULL);
		rx_free(&r);
		free(out);
	}
}

static void test_type_name(void **state)
{
	assert_string_equal(mqw_type_name(0), "reserved");
	assert_string_equal(mqw_type_name(MQW_PUBACK), "PUBACK");
	assert_string_equal(mqw_type_name(MQW_PUBREL), "PUBREL");
	assert_string_equal(mqw_type_name(MQW_DISCONNECT), "DISCONNECT");
	assert_string_equal(mqw_type_name(MQW_AUTH), "AUTH");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_publish_v4),
	    cmocka_unit_test(test_publish_v5),
	    cmocka_unit_test(test_publish_empty_payload),
	    cmocka_unit_test(test_publish_varint_boundaries),
	    cmocka_unit_test(test_publish_max_remaining),
	    cmocka_unit_test(test_publish_long_strings),
	    cmocka_unit_test(test_ack_encode),
	    cmocka_unit_test(test_frame_incomplete),
	    cmocka_unit_test(test_frame_stream),
	    cmocka_unit_test(test_frame_malformed_length),
	    cmocka_unit_test(test_frame_max_total),
	    cmocka_unit_test(test_ack_parse_v4),
	    cmocka_unit_test(test_ack_parse_v5),
	    cmocka_unit_test(test_disconnect_parse),
	    cmocka_unit_test(test_publish_parse),
	    cmocka_unit_test(test_publish_parse_v5),
	    cmocka_unit_test(test_pingresp_parse),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_subscribe_v4),
	    cmocka_unit_test(test_subscribe_v5),
	    cmocka_unit_test(test_subscribe_lengths),
	    cmocka_unit_test(test_subscribe_refused),
	    cmocka_unit_test(test_publish_decode_v4),
	    cmocka_unit_test(test_publish_decode_v5),
	    cmocka_unit_test(test_user_prop_find),
	    cmocka_unit_test(test_suback_v4),
	    cmocka_unit_test(test_suback_v5),
	    cmocka_unit_test(test_publish_decode_round_trip),
	    cmocka_unit_test(test_type_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
