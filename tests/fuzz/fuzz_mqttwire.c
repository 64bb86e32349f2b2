/*
 * fuzz_mqttwire.c — libFuzzer target for the bridge links' MQTT codec
 * (bridge/mqttwire.c), whose decoder reads whatever the cloud or plant
 * broker (or whatever answers in its place) sends.
 *
 * Decoding: the first byte picks the protocol (bit 0: 4 or 5), a frame size
 * limit (bits 1-3) and the size of the DISCONNECT reason buffer (bits 4-7);
 * the rest is a stream of frames, cut with mqw_frame as the cloud link would.
 * Every frame must lie inside the input with total = 1 + length bytes + body,
 * stand on its own and want more one byte short; its body, copied to an
 * exact-size heap buffer so ASan catches an overread, goes to every parser:
 * the one for its type must keep its promises, the others must refuse it.
 * A PUBLISH decoded in full must point inside its body (topic, properties,
 * payload in that order, the payload to the end), agree with
 * mqw_publish_parse, and its User Properties looked up by name (the topic's
 * bytes, "plantgate-device", "") must be found where a User Property of that
 * name is, each match once.
 *
 * Encoding: a PUBLISH (protocol, QoS, retain, packet id, topic, user
 * properties, payload) and an acknowledgement taken from the same input must
 * encode to mqw_publish_size bytes exactly and decode back to themselves.
 * So must a SUBSCRIBE or UNSUBSCRIBE read from the same input: byte 0 gives
 * the protocol (bit 0) and UNSUBSCRIBE (bit 1), bytes 1-2 the packet id,
 * byte 3 the options, the rest is the filter.
 */
#include <stdbool.h>
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

static uint16_t be16(const uint8_t *b)
{
	return (uint16_t)(b[0] << 8 | b[1]);
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
	CHECK(blen >= 2 && mid != 0 && mid == be16(body));
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

/* The length of the variable byte integer at b[0..n), or 0 when there is
 * none. */
static size_t varint_at(const uint8_t *b, size_t n, uint32_t *v)
{
	uint32_t r = 0, mul = 1;
	for(size_t i = 0; i < 4 && i < n; i++) {
		r += (uint32_t)(b[i] & 0x7fu) * mul;
		if(!(b[i] & 0x80u)) {
			*v = r;
			return i + 1;
		}
		mul *= 128u;
	}
	return 0;
}

/* The User Properties named name[0..name_len) in props[0..props_len): each
 * match lies inside the properties, is a User Property of that name, and the
 * rest of the properties after it hold one match fewer. */
static void check_user_prop(const uint8_t *props, uint32_t props_len, const char *name,
                            size_t name_len)
{
	const uint8_t *v = (const uint8_t *)"x", *end = props + props_len;
	uint16_t vn = 1;
	unsigned count = mqw_user_prop_find(props, props_len, name, name_len, &v, &vn);
	CHECK(count <= props_len / 5); /* 26, two lengths: five bytes at least */
	if(count == 0) {
		CHECK(v == NULL && vn == 0);
		return;
	}
	const uint8_t *at = props;
	for(unsigned left = count; left > 0; left--) {
		/* 26, name length, name, value length, value: after the previous
		 * match, inside the properties */
		CHECK(v != NULL && v >= at && v <= end);
		CHECK((size_t)(v - at) >= 5 + name_len && (size_t)(end - v) >= vn);
		const uint8_t *prop = v - 5 - name_len;
		CHECK(prop[0] == 0x26 && be16(prop + 1) == name_len);
		CHECK(name_len == 0 || memcmp(prop + 3, name, name_len) == 0);
		CHECK(be16(v - 2) == vn);
		at = v + vn;
		const uint8_t *v2;
		uint16_t vn2;
		CHECK(mqw_user_prop_find(at, (uint32_t)(end - at), name, name_len, &v2, &vn2) ==
		      left - 1);
		v = v2;
		vn = vn2;
	}
	CHECK(v == NULL && vn == 0);
}

/* mqw_publish_decode: where everything is, and the same as mqw_publish_parse
 * says. */
static void check_decode(int protocol, uint8_t h, const uint8_t *body, uint32_t blen,
                         mqw_rc_t parse_rc, int qos, uint16_t mid)
{
	mqw_rx_publish_t m;
	mqw_rc_t rc = mqw_publish_decode(protocol, h, body, blen, &m);
	CHECK(rc == parse_rc);
	if(rc != MQW_OK) {
		return;
	}
	CHECK(m.qos == qos && m.mid == mid);
	CHECK(m.dup == ((h & 0x08u) != 0) && m.retain == ((h & 0x01u) != 0));
	CHECK(blen >= 2);
	const uint8_t *end = body + blen;
	CHECK(m.topic == body + 2 && m.topic_len == be16(body));
	/* topic, packet id: what follows starts at body + off */
	size_t off = 2 + (size_t)m.topic_len + (qos ? 2 : 0);
	CHECK(off <= blen);
	CHECK(m.payload != NULL && m.payload >= body && m.payload <= end);
	if(protocol == 5) {
		/* the property length, then the properties, then the payload */
		CHECK(m.props != NULL && m.props >= body && m.props <= end);
		size_t poff = (size_t)(m.props - body);
		uint32_t plen;
		CHECK(poff > off && varint_at(body + off, blen - off, &plen) == poff - off);
		CHECK(plen == m.props_len && m.props_len <= blen - poff);
		CHECK(m.payload == m.props + m.props_len);
		CHECK(!m.topic_alias || m.props_len >= 3);
		check_user_prop(m.props, m.props_len, (const char *)m.topic, m.topic_len);
		check_user_prop(m.props, m.props_len, "plantgate-device", 16);
		check_user_prop(m.props, m.props_len, "", 0);
	} else {
		CHECK(m.props == NULL && m.props_len == 0 && !m.topic_alias);
		CHECK(m.payload == body + off);
		const uint8_t *v;
		uint16_t vn;
		CHECK(mqw_user_prop_find(m.props, m.props_len, "", 0, &v, &vn) == 0);
	}
	CHECK(m.payload_len == (size_t)(end - m.payload));
}

static void check_publish(int protocol, uint8_t h, const uint8_t *body, uint32_t blen)
{
	int qos;
	uint16_t mid;
	mqw_rc_t rc = mqw_publish_parse(protocol, h, body, blen, &qos, &mid);
	CHECK(rc == MQW_OK || rc == MQW_MALFORMED);
	check_decode(protocol, h, body, blen, rc, qos, mid);
	if(rc != MQW_OK) {
		return;
	}
	CHECK((h >> 4) == MQW_PUBLISH);
	CHECK(qos >= 0 && qos <= 2 && qos == ((h >> 1) & 3));
	CHECK(qos > 0 || !(h & 0x08u));
	CHECK(blen >= 2);
	uint32_t tn = be16(body);
	CHECK(2 + tn + (qos ? 2u : 0u) + (protocol == 5 ? 1u : 0u) <= blen);
	if(qos) {
		CHECK(mid != 0 && mid == be16(body + 2 + tn));
	} else {
		CHECK(mid == 0);
	}
}

static void check_suback(int protocol, uint8_t h, const uint8_t *body, uint32_t blen)
{
	uint16_t mid;
	uint8_t code;
	mqw_rc_t rc = mqw_suback_parse(protocol, h, body, blen, &mid, &code);
	CHECK(rc == MQW_OK || rc == MQW_MALFORMED);
	if(rc != MQW_OK) {
		return;
	}
	CHECK(h == (MQW_SUBACK << 4) || h == (MQW_UNSUBACK << 4));
	CHECK(blen >= 2 && mid != 0 && mid == be16(body));
	if(protocol != 5) {
		/* packet id and one return code; UNSUBACK: the packet id alone */
		if(h == (MQW_UNSUBACK << 4)) {
			CHECK(blen == 2 && code == 0);
		} else {
			CHECK(blen == 3 && code == body[2]);
		}
		return;
	}
	/* packet id, property length, properties, one reason code */
	uint32_t plen;
	size_t vl = varint_at(body + 2, blen - 2, &plen);
	CHECK(vl > 0 && 2 + vl + plen + 1 == blen);
	CHECK(code == body[blen - 1]);
}

/* Every parser on one frame (body exact-size on the heap). */
static void parse_frame(int protocol, uint8_t h, const uint8_t *body, uint32_t blen,
                        size_t why_len)
{
	check_ack(protocol, h, body, blen);
	check_disconnect(protocol, h, body, blen, why_len);
	check_publish(protocol, h, body, blen);
	check_suback(protocol, h, body, blen);
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
	CHECK(be16(body) == p.topic_len);
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

static size_t varint_len(uint32_t v)
{
	return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

/* SUBSCRIBE or UNSUBSCRIBE of the filter the input ends with: encoded to
 * mqw_subscribe_size bytes, it frames back to one packet whose body is the
 * packet id, (5.0) an empty property length, the filter and (SUBSCRIBE) the
 * options, and no parser of received packets takes it. */
static void encode_subscribe(const uint8_t *data, size_t size)
{
	rd_t r = {data, size};
	uint8_t f = rd_u8(&r);
	int protocol = f & 1 ? 5 : 4;
	bool unsub = (f >> 1) & 1;
	uint8_t hi = rd_u8(&r);
	uint16_t mid = (uint16_t)(hi << 8 | rd_u8(&r));
	uint8_t options = rd_u8(&r);
	size_t fl = r.n;

	/* no filter, or one too long for a UTF-8 string: nothing written */
	uint8_t none = 0xAA;
	CHECK(mqw_subscribe_size(protocol, unsub, 65536 + fl) == 0);
	CHECK(mqw_subscribe_encode(protocol, unsub, mid, "", 65536 + fl, options, &none) == 0);
	CHECK(mqw_subscribe_size(protocol, unsub, 0) == 0);
	CHECK(mqw_subscribe_encode(protocol, unsub, mid, "", 0, options, &none) == 0);
	CHECK(none == 0xAA);
	if(fl == 0 || fl > 65535) {
		return;
	}

	uint32_t rem = (uint32_t)(2 + (protocol == 5 ? 1 : 0) + 2 + fl + (unsub ? 0 : 1));
	size_t want = mqw_subscribe_size(protocol, unsub, fl);
	CHECK(want == 1 + varint_len(rem) + rem);
	char *filter = (char *)copy(r.p, fl); /* exact size: ASan catches a byte too far */
	uint8_t *out = malloc(want);
	if(!filter || !out) {
		goto out;
	}
	CHECK(mqw_subscribe_encode(protocol, unsub, mid, filter, fl, options, out) == want);

	uint8_t h;
	const uint8_t *body;
	uint32_t blen;
	size_t total;
	CHECK(mqw_frame(out, want, want, &h, &body, &blen, &total) == MQW_OK);
	CHECK(total == want && blen == rem && body == out + want - rem);
	CHECK(h == (unsub ? 0xA2 : 0x82));
	CHECK(mqw_frame(out, want - 1, 0, &h, &body, &blen, &total) == MQW_MORE);
	CHECK(mqw_frame(out, want, want - 1, &h, &body, &blen, &total) == MQW_TOO_BIG);
	CHECK(mqw_frame(out, want, want, &h, &body, &blen, &total) == MQW_OK);

	const uint8_t *b = body;
	CHECK(be16(b) == mid);
	b += 2;
	if(protocol == 5) {
		CHECK(*b++ == 0);
	}
	CHECK(be16(b) == fl && memcmp(b + 2, filter, fl) == 0);
	b += 2 + fl;
	if(!unsub) {
		CHECK(*b++ == (protocol == 5 ? options : (options & 3u)));
	}
	CHECK(b == out + want);

	/* what the bridge sends is nothing it would accept */
	uint16_t m16;
	uint8_t code;
	mqw_rx_publish_t m;
	CHECK(mqw_suback_parse(protocol, h, body, blen, &m16, &code) == MQW_MALFORMED);
	CHECK(mqw_ack_parse(protocol, h, body, blen, &m16, &code) == MQW_MALFORMED);
	CHECK(mqw_publish_decode(protocol, h, body, blen, &m) == MQW_MALFORMED);

out:
	free(out);
	free(filter);
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
	encode_subscribe(data, size);
	return 0;
}
