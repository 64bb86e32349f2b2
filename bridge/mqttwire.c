/*
 * mqttwire.c — see mqttwire.h.
 */
#include "mqttwire.h"

#include <string.h>

/* --- encoding -------------------------------------------------------------- */

static size_t varint_len(uint32_t v)
{
	return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

static uint8_t *put_varint(uint8_t *o, uint32_t v)
{
	do {
		uint8_t b = (uint8_t)(v % 128u);
		v /= 128u;
		*o++ = v ? (uint8_t)(b | 0x80u) : b;
	} while(v);
	return o;
}

static uint8_t *put_u16(uint8_t *o, uint16_t v)
{
	*o++ = (uint8_t)(v >> 8);
	*o++ = (uint8_t)(v & 0xffu);
	return o;
}

static uint8_t *put_str(uint8_t *o, const char *s, size_t n)
{
	o = put_u16(o, (uint16_t)n);
	if(n) {
		memcpy(o, s, n);
	}
	return o + n;
}

/* Bytes of the properties (without their length), or SIZE_MAX when a string
 * is too long for MQTT. */
static size_t props_len(const mqw_publish_t *p)
{
	size_t n = 0;
	if(p->protocol != 5) {
		return 0;
	}
	for(size_t i = 0; i < p->n_props; i++) {
		size_t a = strlen(p->props[i].name), b = strlen(p->props[i].value);
		if(a > 65535 || b > 65535) {
			return SIZE_MAX;
		}
		n += 1 + 2 + a + 2 + b;
	}
	return n;
}

/* The remaining length, or 0 when it cannot be expressed (a PUBLISH always
 * has at least the topic's two length bytes). */
static size_t publish_remaining(const mqw_publish_t *p, size_t *plen)
{
	*plen = props_len(p);
	if(*plen == SIZE_MAX || p->topic_len > 65535 || p->payload_len > MQW_MAX_REMAINING ||
	   *plen > MQW_MAX_REMAINING) {
		return 0;
	}
	size_t r = 2 + p->topic_len + (p->qos > 0 ? 2 : 0) + p->payload_len;
	if(p->protocol == 5) {
		r += varint_len((uint32_t)*plen) + *plen;
	}
	return r > MQW_MAX_REMAINING ? 0 : r;
}

size_t mqw_publish_size(const mqw_publish_t *p)
{
	size_t plen, r = publish_remaining(p, &plen);
	return r ? 1 + varint_len((uint32_t)r) + r : 0;
}

size_t mqw_publish_encode(const mqw_publish_t *p, uint8_t *out)
{
	size_t plen, r = publish_remaining(p, &plen);
	if(!r) {
		return 0;
	}
	uint8_t *o = out;
	*o++ = (uint8_t)(MQW_PUBLISH << 4 | (p->qos > 0 ? 1 : 0) << 1 | (p->retain ? 1 : 0));
	o = put_varint(o, (uint32_t)r);
	o = put_str(o, p->topic, p->topic_len);
	if(p->qos > 0) {
		o = put_u16(o, p->mid);
	}
	if(p->protocol == 5) {
		o = put_varint(o, (uint32_t)plen);
		for(size_t i = 0; i < p->n_props; i++) {
			*o++ = 0x26; /* User Property */
			o = put_str(o, p->props[i].name, strlen(p->props[i].name));
			o = put_str(o, p->props[i].value, strlen(p->props[i].value));
		}
	}
	if(p->payload_len) {
		memcpy(o, p->payload, p->payload_len);
		o += p->payload_len;
	}
	return (size_t)(o - out);
}

void mqw_ack_encode(enum mqw_type type, uint16_t mid, uint8_t out[MQW_ACK_LEN])
{
	/* PUBREL's fixed header carries the flags 0010, the others 0000. */
	out[0] = (uint8_t)((unsigned)type << 4 | (type == MQW_PUBREL ? 2u : 0u));
	out[1] = 2;
	put_u16(out + 2, mid);
}

/* --- decoding -------------------------------------------------------------- */

mqw_rc_t mqw_frame(const uint8_t *buf, size_t len, size_t max_total, uint8_t *header,
                   const uint8_t **body, uint32_t *body_len, size_t *total)
{
	if(len < 2) {
		return MQW_MORE;
	}
	uint32_t r = 0, mul = 1;
	size_t i = 1;
	for(;; i++) {
		if(i > 4) {
			return MQW_MALFORMED;
		}
		if(i >= len) {
			return MQW_MORE;
		}
		uint8_t b = buf[i];
		r += (uint32_t)(b & 0x7fu) * mul;
		if(!(b & 0x80u)) {
			/* A last byte of 0 after the first is a non-minimal encoding. */
			if(b == 0 && i > 1) {
				return MQW_MALFORMED;
			}
			break;
		}
		mul *= 128u;
	}
	size_t t = i + 1 + (size_t)r;
	if(max_total && t > max_total) {
		return MQW_TOO_BIG;
	}
	if(len < t) {
		return MQW_MORE;
	}
	*header = buf[0];
	*body = buf + i + 1;
	*body_len = r;
	*total = t;
	return MQW_OK;
}

static bool get_u16(const uint8_t *b, uint32_t len, uint32_t *pos, uint16_t *v)
{
	if(len - *pos < 2) {
		return false;
	}
	*v = (uint16_t)(b[*pos] << 8 | b[*pos + 1]);
	*pos += 2;
	return true;
}

static bool get_varint(const uint8_t *b, uint32_t len, uint32_t *pos, uint32_t *v)
{
	uint32_t r = 0, mul = 1;
	for(int i = 0; i < 4; i++) {
		if(*pos >= len) {
			return false;
		}
		uint8_t c = b[(*pos)++];
		r += (uint32_t)(c & 0x7fu) * mul;
		if(!(c & 0x80u)) {
			if(c == 0 && i > 0) {
				return false;
			}
			*v = r;
			return true;
		}
		mul *= 128u;
	}
	return false;
}

/* A UTF-8 string or binary item: two length bytes and the bytes. */
static bool get_bytes(const uint8_t *b, uint32_t len, uint32_t *pos, const uint8_t **s,
                      uint16_t *n)
{
	if(!get_u16(b, len, pos, n) || len - *pos < *n) {
		return false;
	}
	*s = b + *pos;
	*pos += *n;
	return true;
}

/* One property at b[*p..end): its identifier into *id and, for a string
 * (or a User Property's name and value), where it is; *p moves past it.
 * False when malformed or the identifier is unknown. */
static bool prop_next(const uint8_t *b, uint32_t end, uint32_t *p, uint32_t *id,
                      const uint8_t **s, uint16_t *n, const uint8_t **v, uint16_t *vn)
{
	uint16_t u16;
	*s = *v = NULL;
	if(!get_varint(b, end, p, id)) {
		return false;
	}
	switch(*id) {
	case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2A:
		if(*p >= end) {
			return false;
		}
		(*p)++;
		return true;
	case 0x13: case 0x21: case 0x22: case 0x23:
		return get_u16(b, end, p, &u16);
	case 0x02: case 0x11: case 0x18: case 0x27:
		if(end - *p < 4) {
			return false;
		}
		*p += 4;
		return true;
	case 0x0B: {
		uint32_t x;
		return get_varint(b, end, p, &x);
	}
	case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1A: case 0x1C:
	case 0x1F:
		return get_bytes(b, end, p, s, n);
	case 0x26:
		return get_bytes(b, end, p, s, n) && get_bytes(b, end, p, v, vn);
	default:
		return false;
	}
}

/* Walk the properties at b[*pos..): the length, then each property by its
 * type.  With `want` non-zero, the first property of that id is reported:
 * a string's bytes go to *s / *n; any other kind sets *s to where it
 * starts.  False when malformed or an identifier is unknown. */
static bool props_walk(const uint8_t *b, uint32_t len, uint32_t *pos, uint8_t want,
                       const uint8_t **s, uint16_t *n)
{
	uint32_t plen;
	if(!get_varint(b, len, pos, &plen) || len - *pos < plen) {
		return false;
	}
	uint32_t end = *pos + plen, p = *pos;
	while(p < end) {
		uint32_t id, at = p;
		const uint8_t *str, *val;
		uint16_t sn = 0, vn;
		if(!prop_next(b, end, &p, &id, &str, &sn, &val, &vn)) {
			return false;
		}
		if(want && id == want && s && !*s) {
			*s = str ? str : b + at;
			*n = sn;
		}
	}
	*pos = end;
	return true;
}

mqw_rc_t mqw_ack_parse(int protocol, uint8_t header, const uint8_t *body, uint32_t len,
                       uint16_t *mid, uint8_t *reason)
{
	unsigned type = header >> 4;
	unsigned flags = header & 0x0fu;
	uint32_t pos = 0;
	if(type < MQW_PUBACK || type > MQW_PUBCOMP || flags != (type == MQW_PUBREL ? 2u : 0u) ||
	   !get_u16(body, len, &pos, mid) || *mid == 0) {
		return MQW_MALFORMED;
	}
	*reason = 0;
	if(protocol != 5) {
		return len == 2 ? MQW_OK : MQW_MALFORMED;
	}
	if(len == 2) {
		return MQW_OK;
	}
	*reason = body[pos++];
	if(pos == len) {
		return MQW_OK;
	}
	if(!props_walk(body, len, &pos, 0, NULL, NULL) || pos != len) {
		return MQW_MALFORMED;
	}
	return MQW_OK;
}

mqw_rc_t mqw_disconnect_parse(int protocol, uint8_t header, const uint8_t *body, uint32_t len,
                              uint8_t *reason, char *why, size_t why_len)
{
	uint32_t pos = 0;
	if(why_len) {
		why[0] = '\0';
	}
	*reason = 0;
	if(protocol != 5 || header != (MQW_DISCONNECT << 4)) {
		return MQW_MALFORMED;
	}
	if(len == 0) {
		return MQW_OK;
	}
	*reason = body[pos++];
	if(pos == len) {
		return MQW_OK;
	}
	const uint8_t *s = NULL;
	uint16_t n = 0;
	if(!props_walk(body, len, &pos, 0x1F, &s, &n) || pos != len) {
		return MQW_MALFORMED;
	}
	if(s && why_len) {
		size_t k = n < why_len - 1 ? n : why_len - 1;
		memcpy(why, s, k);
		why[k] = '\0';
	}
	return MQW_OK;
}

mqw_rc_t mqw_publish_decode(int protocol, uint8_t header, const uint8_t *body, uint32_t len,
                            mqw_rx_publish_t *out)
{
	uint32_t pos = 0;
	memset(out, 0, sizeof(*out));
	if((header >> 4) != MQW_PUBLISH) {
		return MQW_MALFORMED;
	}
	out->qos = (header >> 1) & 3;
	out->dup = (header & 0x08u) != 0;
	out->retain = (header & 0x01u) != 0;
	if(out->qos == 3 || (out->qos == 0 && out->dup) ||
	   !get_bytes(body, len, &pos, &out->topic, &out->topic_len)) {
		return MQW_MALFORMED;
	}
	if(out->qos > 0 && (!get_u16(body, len, &pos, &out->mid) || out->mid == 0)) {
		return MQW_MALFORMED;
	}
	if(protocol == 5) {
		uint32_t plen, at = pos;
		const uint8_t *alias = NULL;
		uint16_t an = 0;
		if(!get_varint(body, len, &at, &plen) || !props_walk(body, len, &pos, 0x23, &alias, &an)) {
			return MQW_MALFORMED;
		}
		out->props = body + at;
		out->props_len = plen;
		out->topic_alias = alias != NULL;
	}
	out->payload = body + pos;
	out->payload_len = len - pos;
	return MQW_OK;
}

mqw_rc_t mqw_publish_parse(int protocol, uint8_t header, const uint8_t *body, uint32_t len,
                           int *qos, uint16_t *mid)
{
	mqw_rx_publish_t p;
	mqw_rc_t rc = mqw_publish_decode(protocol, header, body, len, &p);
	*qos = p.qos;
	*mid = p.mid;
	return rc;
}

unsigned mqw_user_prop_find(const uint8_t *props, uint32_t props_len, const char *name,
                            size_t name_len, const uint8_t **value, uint16_t *value_len)
{
	unsigned count = 0;
	*value = NULL;
	*value_len = 0;
	uint32_t p = 0;
	while(p < props_len) {
		uint32_t id;
		const uint8_t *n, *v;
		uint16_t nn = 0, vn = 0;
		if(!prop_next(props, props_len, &p, &id, &n, &nn, &v, &vn)) {
			break; /* cannot be after mqw_publish_decode */
		}
		if(id == 0x26 && nn == name_len && (name_len == 0 || memcmp(n, name, name_len) == 0) &&
		   count++ == 0) {
			*value = v;
			*value_len = vn;
		}
	}
	return count;
}

size_t mqw_subscribe_size(int protocol, bool unsubscribe, size_t filter_len)
{
	if(filter_len == 0 || filter_len > 65535) {
		return 0;
	}
	size_t r = 2 + (protocol == 5 ? 1 : 0) + 2 + filter_len + (unsubscribe ? 0 : 1);
	return 1 + varint_len((uint32_t)r) + r;
}

size_t mqw_subscribe_encode(int protocol, bool unsubscribe, uint16_t mid, const char *filter,
                            size_t filter_len, uint8_t options, uint8_t *out)
{
	size_t total = mqw_subscribe_size(protocol, unsubscribe, filter_len);
	if(!total) {
		return 0;
	}
	size_t r = 2 + (protocol == 5 ? 1 : 0) + 2 + filter_len + (unsubscribe ? 0 : 1);
	uint8_t *o = out;
	/* SUBSCRIBE's and UNSUBSCRIBE's fixed headers carry the flags 0010. */
	*o++ = (uint8_t)((unsigned)(unsubscribe ? MQW_UNSUBSCRIBE : MQW_SUBSCRIBE) << 4 | 2u);
	o = put_varint(o, (uint32_t)r);
	o = put_u16(o, mid);
	if(protocol == 5) {
		*o++ = 0; /* no properties */
	}
	o = put_str(o, filter, filter_len);
	if(!unsubscribe) {
		*o++ = protocol == 5 ? options : (uint8_t)(options & 3u);
	}
	return (size_t)(o - out);
}

mqw_rc_t mqw_suback_parse(int protocol, uint8_t header, const uint8_t *body, uint32_t len,
                          uint16_t *mid, uint8_t *code)
{
	uint32_t pos = 0;
	bool unsub = header == (MQW_UNSUBACK << 4);
	*code = 0;
	if((header != (MQW_SUBACK << 4) && !unsub) || !get_u16(body, len, &pos, mid) || *mid == 0) {
		return MQW_MALFORMED;
	}
	if(protocol == 5 && !props_walk(body, len, &pos, 0, NULL, NULL)) {
		return MQW_MALFORMED;
	}
	if(protocol != 5 && unsub) {
		return pos == len ? MQW_OK : MQW_MALFORMED;
	}
	if(len - pos != 1) {
		return MQW_MALFORMED;
	}
	*code = body[pos];
	return MQW_OK;
}

mqw_rc_t mqw_pingresp_parse(uint8_t header, uint32_t len)
{
	return header == (MQW_PINGRESP << 4) && len == 0 ? MQW_OK : MQW_MALFORMED;
}

const char *mqw_type_name(unsigned type)
{
	static const char *const names[16] = {
		"reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT",
		"AUTH"};
	return names[type & 15u];
}
