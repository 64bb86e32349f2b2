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
 * PUBLISH and PINGRESP.  Every encoded packet and every parsed body lives in
 * an exact-size heap buffer so the ASan run catches a byte too far.
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

static void test_publish_parse_v5(void **state)
{
	int qos;
	uint16_t mid;
	/* QoS 1, Payload Format Indicator 1, Message Expiry 60, Topic Alias 5,
	 * Subscription Identifier 300 (AC 02), Content Type "t", Correlation
	 * Data 2 bytes, User Property a=b */
	static const uint8_t full[] = {
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
	assert_int_equal(publish_parse(5, 0x32, full, sizeof(full), &qos, &mid), MQW_OK);
	assert_int_equal(qos, 1);
	assert_int_equal(mid, 258);
	/* the payload may be anything, even empty */
	assert_int_equal(publish_parse(5, 0x32, full, sizeof(full) - 3, &qos, &mid), MQW_OK);
	/* cut inside the properties */
	for(uint32_t n = 7; n < sizeof(full) - 3; n++) {
		assert_int_equal(publish_parse(5, 0x32, full, n, &qos, &mid), MQW_MALFORMED);
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
			uint8_t *out = encode(&p, &n);
			uint8_t h;
			const uint8_t *body;
			uint32_t blen;
			size_t total;
			assert_int_equal(mqw_frame(out, n, n, &h, &body, &blen, &total), MQW_OK);
			assert_int_equal(total, n);
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
	    cmocka_unit_test(test_type_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
