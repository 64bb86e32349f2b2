/*
 * mqttwire.h — the few MQTT packets the bridge's links speak themselves once
 * libmosquitto has connected them (link.c "raw mode").  The cloud link:
 * PUBLISH out, PUBACK / PINGRESP / DISCONNECT in, and what a server may send
 * unasked.  The plant link: SUBSCRIBE / UNSUBSCRIBE / PUBACK out, PUBLISH /
 * SUBACK / UNSUBACK in.
 *
 * Why: libmosquitto writes one TLS record per packet and reads a PUBACK in
 * three SSL_read calls; the bridge sends a page of publishes at a time and
 * reads PUBACKs as they come, so encoding the page into one buffer (one
 * SSL_write: a few records for a whole page) and parsing every PUBACK of one
 * read at once halves the cloud thread's work and the cloud broker's reads
 * (docs/benchmarks.md, issue 14).
 *
 * MQTT 3.1.1 (protocol 4) and 5.  Pure: no network, no allocation.  The
 * decoder is fuzzed by tests/fuzz/fuzz_mqttwire.c.
 */
#ifndef PG_MQTTWIRE_H
#define PG_MQTTWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Packet types (the fixed header's high nibble). */
enum mqw_type {
	MQW_CONNECT = 1,
	MQW_CONNACK = 2,
	MQW_PUBLISH = 3,
	MQW_PUBACK = 4,
	MQW_PUBREC = 5,
	MQW_PUBREL = 6,
	MQW_PUBCOMP = 7,
	MQW_SUBSCRIBE = 8,
	MQW_SUBACK = 9,
	MQW_UNSUBSCRIBE = 10,
	MQW_UNSUBACK = 11,
	MQW_PINGREQ = 12,
	MQW_PINGRESP = 13,
	MQW_DISCONNECT = 14,
	MQW_AUTH = 15
};

/* The largest remaining length MQTT can express (four length bytes). */
#define MQW_MAX_REMAINING 268435455u
#define MQW_ACK_LEN 4 /* PUBACK, PUBREC, PUBREL, PUBCOMP without reason code */

typedef enum mqw_rc {
	MQW_OK = 0,
	MQW_MORE,      /* frame incomplete: read more */
	MQW_MALFORMED, /* not MQTT as the standard says: close the connection */
	MQW_TOO_BIG    /* larger than the caller's limit: close the connection */
} mqw_rc_t;

/* A user property (MQTT 5), as sent. */
typedef struct mqw_prop {
	const char *name;
	const char *value;
} mqw_prop_t;

/* One PUBLISH to encode.  qos 0 or 1; mid is ignored for QoS 0. */
typedef struct mqw_publish {
	int protocol; /* 4 or 5 */
	const char *topic;
	size_t topic_len;
	const void *payload;
	size_t payload_len;
	int qos;
	bool retain;
	uint16_t mid;
	const mqw_prop_t *props; /* MQTT 5 only; ignored for 4 */
	size_t n_props;
} mqw_publish_t;

/* Bytes of the whole PUBLISH packet (fixed header included), or 0 when it
 * cannot be expressed (remaining length over MQW_MAX_REMAINING, a string
 * over 65,535 bytes). */
size_t mqw_publish_size(const mqw_publish_t *p);

/* Encode into out, which has mqw_publish_size(p) bytes; returns that size
 * (0, writing nothing, when it cannot be expressed). */
size_t mqw_publish_encode(const mqw_publish_t *p, uint8_t *out);

/* An acknowledgement (type MQW_PUBACK, MQW_PUBREC, MQW_PUBREL or
 * MQW_PUBCOMP) with reason "success": MQW_ACK_LEN bytes. */
void mqw_ack_encode(enum mqw_type type, uint16_t mid, uint8_t out[MQW_ACK_LEN]);

/* One frame at the start of buf[0..len): on MQW_OK, *header is the fixed
 * header's first byte, body[0..*body_len) the rest and *total the frame's
 * size.  MQW_MORE when the frame is not complete yet; MQW_TOO_BIG when its
 * total size exceeds max_total (0: no limit but MQTT's); MQW_MALFORMED for a
 * remaining length over four bytes or not minimally encoded. */
mqw_rc_t mqw_frame(const uint8_t *buf, size_t len, size_t max_total, uint8_t *header,
                   const uint8_t **body, uint32_t *body_len, size_t *total);

/* PUBACK / PUBREC / PUBREL / PUBCOMP body: the packet id, and the reason
 * code (0 when absent).  Checks the fixed header's flags and, for MQTT 5,
 * that any properties are well formed. */
mqw_rc_t mqw_ack_parse(int protocol, uint8_t header, const uint8_t *body, uint32_t len,
                       uint16_t *mid, uint8_t *reason);

/* DISCONNECT (MQTT 5; for 3.1.1 a server never sends one: MQW_MALFORMED):
 * the reason code (0 when absent) and the Reason String property, if any,
 * into why (NUL-terminated, cut to why_len - 1; "" when absent). */
mqw_rc_t mqw_disconnect_parse(int protocol, uint8_t header, const uint8_t *body, uint32_t len,
                              uint8_t *reason, char *why, size_t why_len);

/* PUBLISH received: its QoS and packet id (0 for QoS 0), with the topic's
 * length and, for MQTT 5, the properties checked for form.  The topic's
 * content is not checked (empty, wildcards, UTF-8): the bridge only
 * acknowledges and drops what a cloud sends unasked. */
mqw_rc_t mqw_publish_parse(int protocol, uint8_t header, const uint8_t *body, uint32_t len,
                           int *qos, uint16_t *mid);

/* A PUBLISH received, decoded (mqw_publish_decode).  Pointers into the
 * packet's body; nothing is copied. */
typedef struct mqw_rx_publish {
	const uint8_t *topic;
	uint16_t topic_len;
	const uint8_t *payload;
	uint32_t payload_len;
	int qos;
	bool retain, dup;
	uint16_t mid;          /* 0 for QoS 0 */
	const uint8_t *props;  /* MQTT 5: the properties, without their length */
	uint32_t props_len;
	bool topic_alias;      /* a Topic Alias property was present */
} mqw_rx_publish_t;

/* PUBLISH received, in full: as mqw_publish_parse, plus where topic, payload
 * and properties are.  The topic's content is not checked (the caller does:
 * UTF-8, no wildcards). */
mqw_rc_t mqw_publish_decode(int protocol, uint8_t header, const uint8_t *body, uint32_t len,
                            mqw_rx_publish_t *out);

/* In properties checked by mqw_publish_decode: how many User Properties are
 * named name[0..name_len); the first one's value is *value[0..*value_len)
 * (NULL, 0 when there is none). */
unsigned mqw_user_prop_find(const uint8_t *props, uint32_t props_len, const char *name,
                            size_t name_len, const uint8_t **value, uint16_t *value_len);

/* SUBSCRIBE to one filter with the given options byte (QoS in bits 0-1;
 * MQTT 5 adds No Local 0x04, Retain As Published 0x08, Retain Handling
 * 0x30; 3.1.1 takes the QoS bits only), or UNSUBSCRIBE from it (options
 * unused).  *_size is the packet's size, 0 when the filter is empty or over
 * 65,535 bytes; *_encode writes that many bytes and returns their count. */
size_t mqw_subscribe_size(int protocol, bool unsubscribe, size_t filter_len);
size_t mqw_subscribe_encode(int protocol, bool unsubscribe, uint16_t mid, const char *filter,
                            size_t filter_len, uint8_t options, uint8_t *out);

/* SUBACK or UNSUBACK (by the header) for a request of one filter: its packet
 * id and its one reason code (MQTT 5 and SUBACK; 3.1.1's SUBACK return code;
 * 0 for a 3.1.1 UNSUBACK, which has none).  MQW_MALFORMED unless exactly
 * one code follows (3.1.1 UNSUBACK: none). */
mqw_rc_t mqw_suback_parse(int protocol, uint8_t header, const uint8_t *body, uint32_t len,
                          uint16_t *mid, uint8_t *code);

/* PINGRESP: a fixed header 0xD0 and nothing else. */
mqw_rc_t mqw_pingresp_parse(uint8_t header, uint32_t len);

/* "PUBACK", "CONNACK", ... for a packet type (0..15); "reserved" for 0. */
const char *mqw_type_name(unsigned type);

#endif
