/*
 * cloud.c — the cloud link: publishes queued messages to the cloud endpoint
 * over mutually authenticated TLS, strictly in sequence order, with at most
 * drain_inflight unacknowledged, at most drain_rate per second and at most
 * drain_byte_rate bytes per second (pace.h, burst of one second); deletes a
 * message from the queue only when the cloud acknowledged it (QoS 1 PUBACK;
 * for QoS 0, once handed to TLS: written out at the end of the loop turn).
 *
 * Every connection uses a fresh libmosquitto object, and once it is
 * connected the cloud speaks MQTT itself (link.h, "raw mode"; mqttwire.h):
 * a page of publishes is encoded into one buffer and leaves in one SSL_write,
 * and every PUBACK of a read is parsed at once.  libmosquitto keeps no copy
 * of what is in flight; after any disconnect we resend from the oldest
 * unacknowledged message.
 *
 * Outbound only: the bridge never subscribes on the cloud side; anything the
 * cloud sends is counted and dropped.
 *
 * The connection itself (connect, backoff, failure reasons, TLS buffering)
 * is link.c's; this file is the cloud's protocol only.
 */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blog.h"
#include "bridge.h"
#include "link.h"
#include "mqttwire.h"
#include "pace.h"
#include "tunnel.h"
#include "util.h"

#define CLOUD_PAGE 64               /* messages read from the queue at a time */
/* Acknowledged messages are deleted from the queue in batches: when this many
 * are owed, when the oldest has waited CLOUD_ACK_DELAY_MS, when nothing is in
 * flight, and always before a resend.  A crash in between means those
 * messages are sent again (at-least-once), never lost. */
#define CLOUD_ACK_BATCH 256
#define CLOUD_ACK_DELAY_MS 20
/* Messages in flight and no PUBACK for two keepalive intervals (at least
 * this long) on a connection that is up: something is wrong that keepalive
 * cannot see, e.g. a broker or proxy that answers PINGREQ but swallows
 * publishes.  Reconnect, which resends them from the queue. */
#define CLOUD_STALL_MIN_MS 10000
#define CLOUD_STOP_GRACE_MS 5000    /* SIGTERM: wait this long for PUBACKs */
#define CLOUD_DEAD_STREAK 10        /* dead letters in a row, no PUBACK between: stop */
#define CLOUD_STATUS_EVERY_MS 60000 /* backlog summary while a backlog exists */

typedef struct cloud_inflight {
	int mid;
	int64_t seq;
	uint32_t hold_gen; /* cloud_t.hold_gen when it was sent */
} cloud_inflight_t;

/* A QoS 0 message: done once the link handed the bytes up to `end` to TLS. */
typedef struct cloud_q0 {
	int64_t seq;
	uint64_t end;
} cloud_q0_t;

typedef struct cloud {
	bridge_t *b;
	link_t link;
	tunnel_ctx_t *tc; /* wss and/or cloud_proxy (tunnel.h); NULL: direct tls */
	tunnel_t *tun;    /* this connection's relay; closed once the client is gone */

	cloud_inflight_t *inflight; /* window entries, in send order */
	size_t n_inflight, window;
	size_t max_window;    /* drain_inflight: the inflight array's size */
	cloud_q0_t *q0;       /* QoS 0 messages not yet handed to TLS (count in the window) */
	size_t n_q0;
	uint8_t mid_used[65536 / 8]; /* packet ids in flight */
	uint16_t next_mid;
	/* What the CONNACK allowed (MQTT 5; 3.1.1: no limits). */
	uint32_t max_packet; /* 0: none */
	int max_qos;
	bool retain_ok;
	int64_t progress_at; /* last PUBACK, or when the window became non-empty */
	int64_t *acks; /* acknowledged seqs not yet deleted */
	size_t n_acks, cap_acks;
	int64_t first_ack_at; /* when acks[0] arrived */
	/* Acknowledged seqs whose delete failed (e.g. the disk is full even for
	 * a delete): retried every second until the queue takes them. */
	int64_t *retry;
	size_t n_retry, cap_retry;
	int64_t retry_at;
	int64_t last_sent_seq;
	/* A message the cloud may never take (see cloud_suspect): the oldest
	 * unacknowledged when the connection dropped, how many drops in a row,
	 * since when; while probing it is sent alone. */
	int64_t suspect_seq;
	int suspect_drops;
	int64_t suspect_first_ms;
	bool probing;
	bool local_failure; /* the turn failed on our side (queue, signing): no suspect */
	/* Dead letters since the cloud last acknowledged anything: past
	 * CLOUD_DEAD_STREAK the fault is the link, not the messages (e.g. two
	 * bridges with one client id taking the connection from each other), and
	 * setting more aside would only empty the queue: held until a PUBACK. */
	int dead_streak;
	bool dead_held;
	/* Refusals (PUBACK with a reason code >= 0x80, see cloud_refused): a
	 * refused message is kept and sent again, in order from the oldest
	 * refused one (resend_from; 0: none) once the hold has passed and
	 * nothing older is in flight.  The hold doubles with each pause from
	 * reconnect_min to reconnect_max until the cloud takes a message sent
	 * after a pause (cloud_hold).  refused_seq/refused_count: refusals in a
	 * row of the oldest refused message that say something about the
	 * message itself. */
	int64_t resend_from;
	int64_t hold_until, hold_ms;
	uint32_t hold_gen; /* pauses so far: only a message sent after one ends it */
	int64_t refused_seq, refused_first_ms;
	int refused_count;
	uint64_t refused_unlogged; /* refusals in a pause, after its line */
	double tokens;
	int64_t tokens_at;
	pace_t bytes; /* drain_byte_rate */
	int64_t last_expire, last_status;
} cloud_t;

static void flush_acks(cloud_t *c);

/* Owe the queue a delete for seq (deleted in batches: flush_acks_due). */
static void ack_add(cloud_t *c, int64_t seq)
{
	if(c->n_acks == c->cap_acks) {
		flush_acks(c); /* cannot happen by the sizing in cloud_run; stay safe */
	}
	if(c->n_acks == 0) {
		c->first_ack_at = util_mono_ms();
	}
	c->acks[c->n_acks++] = seq;
}

/* link_conf_t.up: connected (link.c counted it). */
static void cloud_up(void *owner, int flags, const mosquitto_property *props)
{
	cloud_t *c = owner;
	const bconf_t *cfg = c->b->cfg;
	queue_stats_t st;
	uint16_t recv_max = 0;
	uint32_t max_packet = 0;
	uint8_t max_qos = 2, retain = 1;
	/* What libmosquitto would have applied to its own publishes. */
	mosquitto_property_read_int16(props, MQTT_PROP_RECEIVE_MAXIMUM, &recv_max, false);
	mosquitto_property_read_int32(props, MQTT_PROP_MAXIMUM_PACKET_SIZE, &max_packet, false);
	mosquitto_property_read_byte(props, MQTT_PROP_MAXIMUM_QOS, &max_qos, false);
	mosquitto_property_read_byte(props, MQTT_PROP_RETAIN_AVAILABLE, &retain, false);
	c->window = c->max_window;
	if(recv_max && recv_max < c->window) {
		c->window = recv_max;
	}
	c->max_packet = max_packet;
	c->max_qos = max_qos;
	c->retain_ok = retain != 0;
	if(link_raw_start(&c->link)) {
		util_snprintf(c->link.cb_reason, sizeof(c->link.cb_reason), "out of memory");
		c->link.lost = true;
		c->local_failure = true;
	}
	queue_get_stats(c->b->queue, &st);
	link_lib_log_off(&c->link);
	blog(BLOG_INFO, "cloud.connected",
	     "host=%s port=%lld protocol=%s after_failures=%u down_ms=%lld backlog=%lld",
	     cfg->cloud_host, (long long)cfg->cloud_port, cfg->cloud_protocol == 5 ? "5" : "3.1.1",
	     c->link.failures_since_up, (long long)(util_mono_ms() - c->link.down_since),
	     (long long)st.messages);
}

static void cloud_refused(cloud_t *c, int64_t seq, int reason);

/* seq is no longer a suspect (see cloud_suspect): acknowledged, or set aside. */
static void suspect_clear(cloud_t *c, int64_t seq)
{
	if(seq == c->suspect_seq) {
		c->suspect_seq = 0;
		c->suspect_drops = 0;
		c->probing = false;
	}
}

/* seq's refusals are no longer counted (see cloud_refused): taken, set
 * aside, or gone. */
static void refused_clear(cloud_t *c, int64_t seq)
{
	if(seq == c->refused_seq) {
		c->refused_seq = 0;
		c->refused_count = 0;
	}
}

/* The cloud acknowledged packet id mid, with an MQTT 5 reason code. */
static void cloud_acked(cloud_t *c, int mid, int reason)
{
	for(size_t i = 0; i < c->n_inflight; i++) {
		if(c->inflight[i].mid != mid) {
			continue;
		}
		int64_t seq = c->inflight[i].seq;
		uint32_t gen = c->inflight[i].hold_gen;
		c->mid_used[mid / 8] &= (uint8_t)~(1u << (mid % 8));
		memmove(&c->inflight[i], &c->inflight[i + 1],
		        (c->n_inflight - i - 1) * sizeof(c->inflight[0]));
		c->n_inflight--;
		c->progress_at = util_mono_ms();
		if(reason >= 0x80) {
			cloud_refused(c, seq, reason);
			return;
		}
		if(c->dead_held) {
			blog(BLOG_INFO, "cloud.dead_letter_resumed",
			     "note=\"the cloud acknowledges again: messages it drops the connection for "
			     "are set aside again\"");
		}
		c->dead_streak = 0;
		c->dead_held = false;
		suspect_clear(c, seq); /* it got through: the drops were the line's */
		refused_clear(c, seq);
		if(c->hold_ms && gen == c->hold_gen) {
			/* Sent after the last pause and taken: the cloud takes messages
			 * again.  (One sent before it says nothing: a quota refuses
			 * some of a window and takes the rest.) */
			blog(BLOG_INFO, "cloud.refusals_ended",
			     "refused_since_last_line=%llu note=\"the cloud accepts messages again\"",
			     (unsigned long long)c->refused_unlogged);
			c->hold_ms = 0;
			c->refused_unlogged = 0;
			atomic_store(&c->b->ctr.refusal_pause_ms, 0);
		}
		atomic_fetch_add(&c->b->ctr.out_acked, 1);
		ack_add(c, seq);
		return;
	}
}

/* link_conf_t.packet: what the cloud sends besides PINGRESP and DISCONNECT. */
static int cloud_packet(void *owner, uint8_t header, const uint8_t *body, uint32_t len)
{
	cloud_t *c = owner;
	int protocol = c->link.conf.protocol;
	unsigned type = header >> 4;
	uint16_t mid = 0;
	uint8_t reason = 0, ack[MQW_ACK_LEN];
	int qos = 0;
	if(type == MQW_PUBACK && mqw_ack_parse(protocol, header, body, len, &mid, &reason) == MQW_OK) {
		cloud_acked(c, mid, reason);
		return MOSQ_ERR_SUCCESS;
	}
	if(type == MQW_PUBLISH && mqw_publish_parse(protocol, header, body, len, &qos, &mid) == MQW_OK) {
		/* Data-diode: nothing flows from the cloud into the plant.  The
		 * bridge never subscribes; what comes anyway is acknowledged (so the
		 * cloud does not resend it) and dropped. */
		atomic_fetch_add(&c->b->ctr.cloud_ignored, 1);
		if(qos == 0) {
			return MOSQ_ERR_SUCCESS;
		}
		mqw_ack_encode(qos == 1 ? MQW_PUBACK : MQW_PUBREC, mid, ack);
	} else if(type == MQW_PUBREL &&
	          mqw_ack_parse(protocol, header, body, len, &mid, &reason) == MQW_OK) {
		mqw_ack_encode(MQW_PUBCOMP, mid, ack);
	} else {
		util_snprintf(c->link.cb_reason, sizeof(c->link.cb_reason),
		              "protocol error: the cloud sent a malformed or unexpected %s packet",
		              mqw_type_name(type));
		return MOSQ_ERR_PROTOCOL;
	}
	return link_raw_put(&c->link, ack, sizeof(ack));
}

/* QoS 0 messages whose bytes TLS has taken: done (deleted with the next batch). */
static void cloud_q0_done(cloud_t *c)
{
	size_t i = 0;
	while(i < c->n_q0 && c->q0[i].end <= c->link.tx_pushed) {
		atomic_fetch_add(&c->b->ctr.out_acked, 1);
		ack_add(c, c->q0[i].seq);
		i++;
	}
	if(i) {
		memmove(c->q0, c->q0 + i, (c->n_q0 - i) * sizeof(*c->q0));
		c->n_q0 -= i;
	}
}

static void flush_acks(cloud_t *c)
{
	if(!c->n_acks) {
		return;
	}
	queue_rc_t qrc = queue_ack(c->b->queue, c->acks, c->n_acks);
	if(qrc != QUEUE_OK) {
		/* Not fatal: the cloud has these messages; only their delete is
		 * owed.  Keep the seqs and retry every second, so the queue shrinks
		 * as soon as the disk allows (a crash meanwhile means duplicates,
		 * never a loss). */
		if(c->n_retry + c->n_acks > c->cap_retry) {
			size_t cap = c->cap_retry ? c->cap_retry : 1024;
			while(cap < c->n_retry + c->n_acks) {
				cap *= 2;
			}
			int64_t *nr = realloc(c->retry, cap * sizeof(*nr));
			if(!nr) {
				/* Out of memory too: reconnect, which resends from the oldest
				 * queued message and acknowledges it again. */
				c->link.lost = true;
				c->local_failure = true;
				c->n_acks = 0;
				return;
			}
			c->retry = nr;
			c->cap_retry = cap;
		}
		if(c->n_retry == 0) {
			blog(BLOG_WARN, "queue.delete_failed",
			     "count=%zu reason=\"%s\" action=\"delivered; deleting them again every second\" "
			     "hint=\"free disk space on the queue's file system\"",
			     c->n_acks, queue_strerror(qrc));
		}
		memcpy(c->retry + c->n_retry, c->acks, c->n_acks * sizeof(*c->acks));
		c->n_retry += c->n_acks;
		c->retry_at = util_mono_ms() + 1000;
	}
	c->n_acks = 0;
}

/* Delete what the cloud acknowledged when a batch is due (see CLOUD_ACK_BATCH). */
static void flush_acks_due(cloud_t *c)
{
	if(c->n_acks >= CLOUD_ACK_BATCH || (c->n_acks && c->n_inflight == 0) ||
	   (c->n_acks && util_mono_ms() - c->first_ack_at >= CLOUD_ACK_DELAY_MS)) {
		flush_acks(c);
	}
}

/* Retry the deletes that failed, once a second. */
static void retry_deletes(cloud_t *c)
{
	if(!c->n_retry || util_mono_ms() < c->retry_at) {
		return;
	}
	queue_rc_t qrc = queue_ack(c->b->queue, c->retry, c->n_retry);
	if(qrc != QUEUE_OK) {
		c->retry_at = util_mono_ms() + 1000;
		return;
	}
	blog(BLOG_INFO, "queue.delete_resumed", "count=%zu", c->n_retry);
	c->n_retry = 0;
}

/* Move seq to the dead-letter table (kept, inspectable, replayable) and log
 * it as `event`; streak: count it in dead_streak (a failure the cloud
 * showed, not a limit its CONNACK set).  Nothing happens when the message is
 * not in the queue any more; on an error it stays there, tried again. */
static queue_rc_t cloud_dead_letter(cloud_t *c, const char *event, int64_t seq, const char *reason,
                                    int attempts, int64_t first_ms, bool streak)
{
	bridge_t *b = c->b;
	char q1[300];
	queue_msg_t page[1];
	size_t n = 0;
	const char *topic = "?";
	const char *conf = b->cfg_path ? b->cfg_path : "<config>";
	bool moved = false;
	if(queue_peek(b->queue, seq - 1, 0, page, 1, &n) == QUEUE_OK && n == 1 && page[0].seq == seq) {
		topic = util_log_quote(page[0].remote_topic, q1, sizeof(q1));
	}
	queue_rc_t qrc = queue_dead_letter(b->queue, seq, reason, attempts, first_ms, util_wall_ms(), &moved);
	if(qrc != QUEUE_OK) {
		blog(BLOG_ERROR, "queue.dead_letter_failed",
		     "seq=%lld reason=\"%s\" action=\"kept in the queue; tried again later\"", (long long)seq,
		     queue_strerror(qrc));
	} else if(moved) {
		c->dead_streak += streak ? 1 : 0;
		atomic_fetch_add(&b->ctr.out_dead_lettered, 1);
		blog(BLOG_ERROR, event,
		     "seq=%lld topic=%s attempts=%d reason=\"%s\" action=\"moved to the dead-letter "
		     "table; sending goes on\" inspect=\"plantgate-bridge deadletter show %lld -c %s\" "
		     "replay=\"plantgate-bridge deadletter replay %lld -c %s (bridge stopped)\"",
		     (long long)seq, topic, attempts, reason, (long long)seq, conf, (long long)seq, conf);
	}
	if(n) {
		queue_msg_clear(&page[0]);
	}
	return qrc;
}

/* An MQTT 5 DISCONNECT from the cloud whose reason speaks of the server, the
 * session or the rate, never of a message: such a drop does not make the
 * oldest message in flight a suspect (a cloud restarting its nodes one by one
 * would otherwise set a healthy message aside). */
static bool peer_reason_is_server(uint8_t reason)
{
	switch(reason) {
	case 0x89: /* Server busy */
	case 0x8B: /* Server shutting down */
	case 0x8D: /* Keep Alive timeout */
	case 0x8E: /* Session taken over */
	case 0x93: /* Receive Maximum exceeded: the bridge's window, not a message */
	case 0x96: /* Message rate too high */
	case 0x97: /* Quota exceeded */
	case 0x98: /* Administrative action */
	case 0x9C: /* Use another server */
	case 0x9D: /* Server moved */
	case 0x9F: /* Connection rate exceeded */
		return true;
	default:
		return false;
	}
}

/* The connection dropped with messages in flight: is the oldest one the
 * reason?  A cloud that can never take a message (a topic deeper than it
 * allows, a publish its policy forbids) closes the connection each time the
 * message is sent, and resending it first after every reconnect would block
 * the queue for good.  After the first such drop the message is sent alone
 * (probing), so further drops are its own; when it is acknowledged the
 * suspicion ends.  After dead_letter_after drops in a row it is moved to the
 * dead-letter table (kept, inspectable, replayable) and sending goes on. */
static void cloud_suspect(cloud_t *c)
{
	bridge_t *b = c->b;
	int64_t limit = b->cfg->dead_letter_after;
	if(c->local_failure || c->n_inflight == 0 || limit <= 0 || c->link.state != LINK_UP ||
	   peer_reason_is_server(c->link.peer_reason)) {
		return;
	}
	int64_t seq = c->inflight[0].seq, now = util_wall_ms();
	if(seq != c->suspect_seq) {
		c->suspect_seq = seq;
		c->suspect_drops = 0;
		c->suspect_first_ms = now;
	}
	c->suspect_drops++;
	c->probing = true;
	if(c->suspect_drops < limit) {
		return;
	}
	if(c->dead_streak >= CLOUD_DEAD_STREAK) {
		if(!c->dead_held) {
			c->dead_held = true;
			blog(BLOG_ERROR, "cloud.dead_letter_held",
			     "seq=%lld dead_letters_in_a_row=%d action=\"not setting more messages aside; "
			     "resending\" hint=\"the cloud drops the connection whatever is sent: check "
			     "its logs, its policy for this client, and that no other client uses "
			     "cloud_client_id\"",
			     (long long)seq, c->dead_streak);
		}
		return;
	}
	char reason[600];
	util_snprintf(reason, sizeof(reason), "the cloud dropped the connection %d times in a row "
	              "with this message the oldest unacknowledged (last: %s)",
	              c->suspect_drops, c->link.cb_reason[0] ? c->link.cb_reason : "connection lost");
	if(cloud_dead_letter(c, "cloud.dead_letter", seq, reason, c->suspect_drops, c->suspect_first_ms,
	                     true) == QUEUE_OK) {
		suspect_clear(c, seq);
	}
}

/* Keep seq for sending again from resend_from, after a pause; true when
 * this starts a pause (none is running), which doubles from reconnect_min to
 * reconnect_max until a message sent after a pause is taken. */
static bool cloud_hold(cloud_t *c, int64_t seq)
{
	const bconf_t *cfg = c->b->cfg;
	int64_t now = util_mono_ms();
	if(!c->resend_from || seq < c->resend_from) {
		c->resend_from = seq;
	}
	if(c->hold_until > now) {
		return false;
	}
	c->hold_ms = c->hold_ms ? c->hold_ms * 2 : cfg->reconnect_min_ms;
	if(c->hold_ms > cfg->reconnect_max_ms) {
		c->hold_ms = cfg->reconnect_max_ms;
	}
	c->hold_until = now + c->hold_ms;
	c->hold_gen++;
	atomic_store(&c->b->ctr.refusal_pause_ms, c->hold_ms);
	return true;
}

/* The cloud answered seq's PUBLISH with a reason code >= 0x80 (MQTT 5).
 * Nothing is deleted for it: the message is sent again later, or set aside
 * in the dead-letter table, from where an operator replays it once the cloud
 * takes it.  (It used to be deleted, so a cloud policy mistake or a quota
 * lost data.)
 *  - Quota exceeded (0x97) and Packet Identifier in use (0x91) speak of the
 *    rate or the session, not of the message: always sent again;
 *  - Unspecified error (0x80) and Implementation specific error (0x83) may
 *    pass another time: sent again, and set aside after dead_letter_after
 *    refusals in a row;
 *  - the rest (Not authorized 0x87, Topic Name invalid 0x90, Payload format
 *    invalid 0x99, ...) will not pass until the cloud changes: set aside at
 *    once, so it does not hold up the messages behind it.
 * After CLOUD_DEAD_STREAK dead letters with no accepting PUBACK between, the
 * cloud refuses everything (e.g. its policy lost the bridge's grant):
 * setting more aside would only empty the queue, so from then on every
 * refused message is kept and sent again, with a pause that doubles from
 * reconnect_min to reconnect_max, until the cloud accepts again.
 * dead_letter_after 0 keeps every refused message the same way. */
static void cloud_refused(cloud_t *c, int64_t seq, int reason)
{
	bridge_t *b = c->b;
	const bconf_t *cfg = b->cfg;
	int64_t limit = cfg->dead_letter_after;
	bool rate = reason == 0x91 || reason == 0x97;
	bool maybe = reason == 0x80 || reason == 0x83;
	char why[160];
	int attempts = 1;
	int64_t first_ms = util_wall_ms();
	atomic_fetch_add(&b->ctr.out_refused, 1);
	util_snprintf(why, sizeof(why), "the cloud refused it: %s (0x%02x)", mosquitto_reason_string(reason),
	              (unsigned)reason);
	suspect_clear(c, seq); /* answered: it does not break the connection */
	if(!rate) {
		/* Refusals in a row are counted for the oldest refused message only:
		 * it is sent first after each pause, so its count grows by one per
		 * pause whatever the messages behind it do. */
		if(!c->refused_seq || seq < c->refused_seq) {
			c->refused_seq = seq;
			c->refused_count = 0;
			c->refused_first_ms = first_ms;
		}
		if(seq == c->refused_seq) {
			attempts = ++c->refused_count;
			first_ms = c->refused_first_ms;
		}
	}
	if(!rate && limit > 0 && (!maybe || (seq == c->refused_seq && attempts >= limit))) {
		if(c->dead_streak < CLOUD_DEAD_STREAK) {
			if(cloud_dead_letter(c, "cloud.refused", seq, why, attempts, first_ms, true) == QUEUE_OK) {
				refused_clear(c, seq);
				return;
			}
		} else if(!c->dead_held) {
			c->dead_held = true;
			blog(BLOG_ERROR, "cloud.dead_letter_held",
			     "seq=%lld dead_letters_in_a_row=%d action=\"not setting more messages aside; "
			     "sending them again after a pause\" hint=\"the cloud refuses whatever is sent "
			     "(last: %s): check its policy for this client\"",
			     (long long)seq, c->dead_streak, why);
		}
	}
	/* Kept: sent again, from the oldest refused, once the pause is over. */
	if(!cloud_hold(c, seq)) {
		c->refused_unlogged++; /* in the pause already: said by its line */
		return;
	}
	blog(BLOG_WARN, "cloud.refused",
	     "seq=%lld reason=\"%s\" refused_since_last_line=%llu action=\"kept in the queue; "
	     "sending again in %lld ms\" hint=\"%s\"",
	     (long long)seq, why, (unsigned long long)c->refused_unlogged, (long long)c->hold_ms,
	     rate ? "the cloud's rate limit or quota: lower drain_rate, or raise the quota"
	          : "check the cloud's logs and its policy for this client and topic");
	c->refused_unlogged = 0;
}

/* link_conf_t.down: delete what was acknowledged; what was in flight is
 * resent from the queue after the next connect. */
static void cloud_down(void *owner, char *detail, size_t detail_len)
{
	cloud_t *c = owner;
	tunnel_close(c->tun);
	c->tun = NULL;
	flush_acks(c);
	cloud_suspect(c);
	c->local_failure = false;
	util_snprintf(detail, detail_len,
	              "unacked=%zu action=\"resending from the oldest unacknowledged message after "
	              "reconnect\"",
	              c->n_inflight);
	c->n_inflight = 0;
	c->n_q0 = 0;
	memset(c->mid_used, 0, sizeof(c->mid_used));
	c->last_sent_seq = 0;
	c->resend_from = 0; /* everything unacknowledged goes again from the oldest */
}

/* link_conf_t.connect with wss or cloud_proxy: open the way out, then
 * connect the client to its relay (tunnel.h). */
static int cloud_connect_tunnel(void *owner, struct mosquitto *mosq, char *reason, size_t len)
{
	cloud_t *c = owner;
	return tunnel_connect(c->tc, mosq, (int)(c->b->cfg->cloud_keepalive_ms / 1000), &c->tun,
	                      reason, len);
}

/* libmosquitto options, callbacks and credentials of the cloud's protocol. */
static int cloud_setup(void *owner, struct mosquitto *mosq)
{
	cloud_t *c = owner;
	const bconf_t *cfg = c->b->cfg;
	int rc = MOSQ_ERR_SUCCESS;
	if(cfg->cloud_username) {
		rc = mosquitto_username_pw_set(mosq, cfg->cloud_username, NULL);
	}
	/* Host name verification is always on; the only way around it is the
	 * test-only environment variable, logged at every connect. */
	if(c->b->insecure_hostname) {
		blog(BLOG_WARN, "cloud.INSECURE",
		     "reason=\"PLANTGATE_TEST_INSECURE_HOSTNAME=1: the cloud's host name is NOT "
		     "verified; for tests only, never in production\"");
	}
	return rc;
}

/* The user properties of one message (MQTT 5), with their storage. */
typedef struct cloud_props {
	mqw_prop_t p[ENVELOPE_NPROPS];
	size_t n;
	char seq[24];
	envelope_t e; /* values borrow its strings */
	envelope_props_t ep;
} cloud_props_t;

/* What is sent for message m besides its topic.  With a signing key, the
 * integrity envelope (docs/integrity.md), signed now (ts = send time, so a
 * resend carries a new ts but the same seq): as MQTT 5 user properties, or
 * for MQTT 3.1.1 as the JSON wrapper that replaces the payload (*wrapped,
 * allocated; the caller frees it).  Without a key: only the sequence id as
 * user property "plantgate-seq" (MQTT 5).  0, or a libmosquitto error code. */
static int cloud_message_props(const bridge_t *b, const queue_msg_t *m, cloud_props_t *pr,
                               char **wrapped, size_t *wlen)
{
	const bconf_t *cfg = b->cfg;
	*wrapped = NULL;
	*wlen = 0;
	pr->n = 0;
	if(!b->sign_key) {
		if(cfg->cloud_protocol == 5) {
			snprintf(pr->seq, sizeof(pr->seq), "%lld", (long long)m->seq);
			pr->p[0] = (mqw_prop_t){"plantgate-seq", pr->seq};
			pr->n = 1;
		}
		return 0;
	}
	envelope_t *e = &pr->e;
	*e = (envelope_t){.site = cfg->site_id,
	                  .device = m->device ? m->device : "",
	                  .topic = m->local_topic,
	                  .seq = m->seq,
	                  .rx_ms = m->rx_ms,
	                  .ts_ms = util_wall_ms()};
	envelope_rc_t erc = envelope_sign(e, b->sign_key, m->remote_topic, m->payload, m->len);
	if(erc == ENVELOPE_OK && cfg->cloud_protocol != 5) {
		erc = envelope_to_json(e, m->payload, m->len, wrapped, wlen);
	}
	if(erc != ENVELOPE_OK) {
		blog(BLOG_ERROR, "cloud.sign_failed", "seq=%lld reason=\"%s\"", (long long)m->seq,
		     envelope_strerror(erc));
		return erc == ENVELOPE_ERR_NOMEM ? MOSQ_ERR_NOMEM : MOSQ_ERR_UNKNOWN;
	}
	if(cfg->cloud_protocol != 5) {
		return 0;
	}
	/* The values borrow pr->e's strings (its own, the config's and m's, all
	 * alive until the encoding) or live in pr->ep. */
	envelope_to_props(e, &pr->ep);
	for(size_t i = 0; i < ENVELOPE_NPROPS; i++) {
		pr->p[i] = (mqw_prop_t){pr->ep.p[i].name, pr->ep.p[i].value};
	}
	pr->n = ENVELOPE_NPROPS;
	return 0;
}

/* Why the cloud can never take this message as it is (a libmosquitto error
 * code, as libmosquitto would have refused it), or 0. */
static int cloud_check(const cloud_t *c, const mqw_publish_t *p, size_t size)
{
	if(!p->topic_len || mosquitto_validate_utf8(p->topic, (int)p->topic_len)) {
		return MOSQ_ERR_MALFORMED_UTF8;
	}
	if(mosquitto_pub_topic_check(p->topic) != MOSQ_ERR_SUCCESS) {
		return MOSQ_ERR_INVAL;
	}
	if(!size) {
		return MOSQ_ERR_PAYLOAD_SIZE;
	}
	if(p->qos > c->max_qos) {
		return MOSQ_ERR_QOS_NOT_SUPPORTED;
	}
	if(c->max_packet && size > c->max_packet) {
		return MOSQ_ERR_OVERSIZE_PACKET;
	}
	return 0;
}

/* A packet id not in flight (the window is at most 65,535). */
static uint16_t cloud_mid(cloud_t *c)
{
	do {
		c->next_mid = (uint16_t)(c->next_mid == UINT16_MAX ? 1 : c->next_mid + 1);
	} while(c->mid_used[c->next_mid / 8] & (1u << (c->next_mid % 8)));
	c->mid_used[c->next_mid / 8] |= (uint8_t)(1u << (c->next_mid % 8));
	return c->next_mid;
}

/* Encode m into the link's send buffer (it leaves at link_write).  0, a
 * refusal (cloud_check), or another libmosquitto error code. */
static int cloud_publish(cloud_t *c, const queue_msg_t *m, size_t *wire)
{
	bridge_t *b = c->b;
	cloud_props_t pr;
	char *wrapped = NULL;
	size_t wlen = 0;
	int rc = cloud_message_props(b, m, &pr, &wrapped, &wlen);
	if(rc) {
		return rc;
	}
	mqw_publish_t p = {.protocol = c->link.conf.protocol,
	                   .topic = m->remote_topic,
	                   .topic_len = strlen(m->remote_topic),
	                   .payload = wrapped ? (const void *)wrapped : m->payload,
	                   .payload_len = wrapped ? wlen : m->len,
	                   .qos = m->qos > 0 ? 1 : 0,
	                   /* as libmosquitto: a cloud without retained messages gets none */
	                   .retain = m->retain && c->retain_ok,
	                   .props = pr.p,
	                   .n_props = pr.n};
	size_t size = mqw_publish_size(&p);
	rc = cloud_check(c, &p, size);
	uint8_t *out = rc ? NULL : link_raw_reserve(&c->link, size);
	if(!rc && !out) {
		rc = MOSQ_ERR_NOMEM;
	}
	if(!rc) {
		if(p.qos) {
			p.mid = cloud_mid(c);
		}
		mqw_publish_encode(&p, out);
		link_raw_commit(&c->link, size);
		if(p.qos) {
			c->inflight[c->n_inflight].mid = p.mid;
			c->inflight[c->n_inflight].seq = m->seq;
			c->inflight[c->n_inflight].hold_gen = c->hold_gen;
			c->n_inflight++;
		} else {
			c->q0[c->n_q0].seq = m->seq;
			c->q0[c->n_q0].end = c->link.tx_queued;
			c->n_q0++;
		}
		*wire = size;
	}
	free(wrapped);
	return rc;
}

static void refill_tokens(cloud_t *c, int64_t now)
{
	int64_t rate = c->b->cfg->drain_rate;
	if(rate == 0) {
		return;
	}
	double burst = rate / 10.0 < 1 ? 1 : rate / 10.0;
	c->tokens += (double)(now - c->tokens_at) * (double)rate / 1000.0;
	if(c->tokens > burst) {
		c->tokens = burst;
	}
	c->tokens_at = now;
}

/* Publish queued messages while the window and the rate allow. */
static int cloud_send(cloud_t *c)
{
	bridge_t *b = c->b;
	const bconf_t *cfg = b->cfg;
	queue_msg_t page[CLOUD_PAGE];
	size_t window = c->probing ? 1 : c->window; /* a suspect goes alone */
	if(c->hold_until > util_mono_ms()) {
		return 0; /* the cloud refused messages: a pause (cloud_refused) */
	}
	if(c->resend_from) {
		if(c->n_inflight || c->n_q0) {
			return 0; /* what is in flight answers first: it may be refused too */
		}
		flush_acks(c); /* what was accepted meanwhile is not read again */
		c->last_sent_seq = c->resend_from - 1;
		c->resend_from = 0;
	}
	refill_tokens(c, util_mono_ms());
	while(c->n_inflight + c->n_q0 < window && (cfg->drain_rate == 0 || c->tokens >= 1.0) &&
	      pace_ready(&c->bytes, util_mono_ms())) {
		size_t want = window - c->n_inflight - c->n_q0;
		if(cfg->drain_rate && (size_t)c->tokens < want) {
			want = (size_t)c->tokens;
		}
		if(want > CLOUD_PAGE) {
			want = CLOUD_PAGE;
		}
		size_t n = 0;
		queue_rc_t qrc = queue_peek(b->queue, c->last_sent_seq, util_wall_ms(), page, want, &n);
		if(qrc != QUEUE_OK) {
			blog(BLOG_ERROR, "queue.read_failed", "reason=\"%s\"", queue_strerror(qrc));
			c->local_failure = true;
			return -1;
		}
		/* A suspect or refused message that is not read where it would be
		 * (expired, evicted by drop-oldest, set aside meanwhile) is gone:
		 * forget it, or the window would stay at 1 and counting stop. */
		int64_t first = n ? page[0].seq : INT64_MAX;
		if(c->suspect_seq && c->last_sent_seq < c->suspect_seq && first > c->suspect_seq) {
			suspect_clear(c, c->suspect_seq);
		}
		if(c->refused_seq && c->last_sent_seq < c->refused_seq && first > c->refused_seq) {
			refused_clear(c, c->refused_seq);
		}
		if(n == 0) {
			return 0;
		}
		int rc = MOSQ_ERR_SUCCESS;
		size_t i;
		for(i = 0; i < n && !rc; i++) {
			queue_msg_t *m = &page[i];
			size_t wire = 0;
			if(i > 0 && !pace_ready(&c->bytes, util_mono_ms())) {
				break; /* the rest of the page waits, in order, for the byte rate */
			}
			if(c->n_inflight == 0 && c->n_q0 == 0) {
				c->progress_at = util_mono_ms();
			}
			rc = cloud_publish(c, m, &wire);
			if(rc == MOSQ_ERR_PAYLOAD_SIZE || rc == MOSQ_ERR_OVERSIZE_PACKET ||
			   rc == MOSQ_ERR_QOS_NOT_SUPPORTED || rc == MOSQ_ERR_MALFORMED_UTF8 ||
			   rc == MOSQ_ERR_INVAL) {
				/* The cloud cannot take this one as it is (the limits of its
				 * CONNACK): set it aside, do not block the queue.  Should
				 * that fail it stays queued, tried again after a pause. */
				char why[160];
				atomic_fetch_add(&b->ctr.out_refused, 1);
				util_snprintf(why, sizeof(why), "the cloud cannot take it: %s", mosquitto_strerror(rc));
				if(cloud_dead_letter(c, "cloud.refused", m->seq, why, 1, util_wall_ms(), false) !=
				   QUEUE_OK) {
					cloud_hold(c, m->seq); /* kept: tried again after a pause */
				}
				c->last_sent_seq = m->seq;
				rc = MOSQ_ERR_SUCCESS;
				continue;
			}
			if(rc) {
				break;
			}
			c->last_sent_seq = m->seq;
			c->tokens -= 1.0;
			pace_take(&c->bytes, wire);
		}
		for(size_t j = 0; j < n; j++) {
			queue_msg_clear(&page[j]);
		}
		if(rc) {
			snprintf(c->link.cb_reason, sizeof(c->link.cb_reason), "publish failed: %s",
			         mosquitto_strerror(rc));
			/* Not the cloud's doing (signing, memory). */
			c->local_failure = true;
			return -1;
		}
		if(n < want) {
			/* The queue had no more: another read would find nothing, and
			 * each is a read transaction (at 1,000 msg/s, one message at a
			 * time, a quarter of queue_peek's CPU went to these empty
			 * reads).  A commit from now on wakes the thread (b->wake). */
			return 0;
		}
	}
	return 0;
}

static void cloud_housekeeping(cloud_t *c, int64_t now)
{
	bridge_t *b = c->b;
	if(now - c->last_expire >= 1000) {
		c->last_expire = now;
		int64_t n = 0;
		if(queue_expire(b->queue, util_wall_ms(), &n) == QUEUE_OK && n > 0) {
			atomic_fetch_add(&b->ctr.expired, (uint64_t)n);
			blog(BLOG_WARN, "queue.expired", "count=%lld reason=ttl", (long long)n);
		}
	}
	if(now - c->last_status >= CLOUD_STATUS_EVERY_MS) {
		c->last_status = now;
		queue_stats_t st;
		queue_get_stats(b->queue, &st);
		if(st.messages > 0) {
			blog(BLOG_INFO, "queue.status",
			     "messages=%lld bytes=%llu oldest_age_ms=%lld cloud=%s", (long long)st.messages,
			     (unsigned long long)st.bytes,
			     (long long)(st.oldest_rx_ms ? util_wall_ms() - st.oldest_rx_ms : 0),
			     c->link.state == LINK_UP ? "up" : "down");
		}
	}
}

void *cloud_run(void *arg)
{
	bridge_t *b = arg;
	const bconf_t *cfg = b->cfg;
	util_thread_name("pg-cloud");
	cloud_t c = {.b = b};
	c.max_window = c.window = (size_t)cfg->drain_inflight;
	c.max_qos = 1;
	c.retain_ok = true;
	c.inflight = calloc(c.window, sizeof(*c.inflight));
	c.q0 = calloc(c.window, sizeof(*c.q0));
	/* Room for a due batch plus one loop's worth of PUBACKs (at most the
	 * window) and refusals (at most a page). */
	c.cap_acks = CLOUD_ACK_BATCH + c.window + CLOUD_PAGE;
	c.acks = calloc(c.cap_acks, sizeof(*c.acks));
	if(!c.inflight || !c.q0 || !c.acks || tunnel_ctx_new(b, &c.tc)) {
		blog(BLOG_ERROR, "cloud.out_of_memory", NULL);
		atomic_store(&b->fatal, true);
		atomic_store(&b->stop, true);
		free(c.inflight);
		free(c.q0);
		free(c.acks);
		return NULL;
	}
	link_conf_t lc = {.name = "cloud",
	                  .peer = "cloud",
	                  .host = cfg->cloud_host,
	                  .port = (int)cfg->cloud_port,
	                  .keepalive_s = (int)(cfg->cloud_keepalive_ms / 1000),
	                  .protocol = cfg->cloud_protocol == 5 ? 5 : 4,
	                  .client_id = cfg->cloud_client_id,
	                  .persistent = false,
	                  /* through a tunnel, the relay does TLS with this context and
	                   * libmosquitto speaks plain MQTT to it on loopback */
	                  .tls = tunnel_lib_tls(c.tc) ? b->secrets.cloud_tls : NULL,
	                  .watch = tunnel_lib_tls(c.tc) ? &b->secrets.cloud_watch : NULL,
	                  .connect = c.tc ? cloud_connect_tunnel : NULL,
	                  .failed_note = "messages stay queued; ",
	                  .state_ctr = &b->ctr.cloud_state,
	                  .connects = &b->ctr.cloud_connects,
	                  .failures = &b->ctr.cloud_failures,
	                  .tls_failures = &b->ctr.cloud_tls_failures,
	                  .owner = &c,
	                  .setup = cloud_setup,
	                  .up = cloud_up,
	                  .packet = cloud_packet,
	                  .rx_max = LINK_RAW_RX,
	                  .down = cloud_down};
	link_init(&c.link, b, &lc);
	c.tokens_at = util_mono_ms();
	pace_init(&c.bytes, cfg->drain_byte_rate, c.tokens_at);
	int64_t stop_at = 0;
	for(;;) {
		int64_t now = util_mono_ms();
		if(atomic_load(&b->stop)) {
			if(!stop_at) {
				stop_at = now + CLOUD_STOP_GRACE_MS;
			}
			if(!c.link.mosq || c.link.state != LINK_UP || (c.n_inflight == 0 && c.n_q0 == 0) ||
			   now >= stop_at) {
				break;
			}
		}
		cloud_housekeeping(&c, now);
		if(!c.link.mosq) {
			link_idle(&c.link, true);
			continue;
		}
		int rc = MOSQ_ERR_SUCCESS;
		if(c.link.state == LINK_UP && !atomic_load(&b->stop) && cloud_send(&c)) {
			rc = MOSQ_ERR_UNKNOWN;
		}
		int timeout = 100;
		if(cfg->drain_rate && c.link.state == LINK_UP && c.n_inflight < c.window) {
			timeout = 1000 / (int)cfg->drain_rate + 1;
			if(timeout > 100) {
				timeout = 100;
			}
		}
		if(c.link.state == LINK_UP && c.n_inflight < c.window) {
			/* the byte rate only delays the next publish; reads go on */
			int64_t w = pace_wait_ms(&c.bytes, util_mono_ms());
			if(w > 0 && w < timeout) {
				timeout = (int)w;
			}
		}
		struct pollfd wake = {.fd = b->wake[0], .events = POLLIN};
		bool readable = false;
		if(!rc) {
			rc = link_poll(&c.link, true, &wake, (int64_t)timeout * 1000, &readable);
		}
		if(wake.revents & POLLIN) {
			char buf[64];
			if(read(b->wake[0], buf, sizeof(buf)) < 0) {
				/* nonblocking; nothing to drain */
			}
		}
		if(!rc && readable) {
			rc = link_read(&c.link, 512, NULL, 0);
		}
		rc = link_write(&c.link, rc);
		cloud_q0_done(&c);
		flush_acks_due(&c);
		retry_deletes(&c);
		if(!rc && !c.link.lost && c.link.state == LINK_UP && c.n_inflight > 0) {
			int64_t stall_ms = 2 * cfg->cloud_keepalive_ms;
			int64_t waited = util_mono_ms() - c.progress_at;
			if(stall_ms < CLOUD_STALL_MIN_MS) {
				stall_ms = CLOUD_STALL_MIN_MS;
			}
			if(waited > stall_ms) {
				blog(BLOG_WARN, "cloud.stalled",
				     "unacked=%zu waited_ms=%lld action=\"reconnecting; the unacknowledged "
				     "messages are sent again\" hint=\"the cloud broker accepts the connection "
				     "but does not acknowledge publishes: check its logs and quotas\"",
				     c.n_inflight, (long long)waited);
				util_snprintf(c.link.cb_reason, sizeof(c.link.cb_reason),
				              "no PUBACK for %lld ms with %zu messages in flight",
				              (long long)waited, c.n_inflight);
				c.link.lost = true;
			}
		}
		link_settle(&c.link, rc);
	}
	link_close(&c.link);
	tunnel_close(c.tun);
	tunnel_ctx_free(c.tc);
	flush_acks(&c);
	if(c.n_inflight) {
		blog(BLOG_INFO, "cloud.stopped",
		     "unacked=%zu note=\"kept in the queue; resent at next start\"", c.n_inflight);
	} else {
		blog(BLOG_INFO, "cloud.stopped", NULL);
	}
	c.retry_at = 0;
	retry_deletes(&c);
	free(c.inflight);
	free(c.q0);
	free(c.acks);
	free(c.retry);
	/* OpenSSL keeps per-thread state (the error queue) until told. */
	OPENSSL_thread_stop();
	return NULL;
}
