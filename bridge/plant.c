/*
 * plant.c — the plant link: subscribes to the whitelisted filters on the plant
 * broker and stores what arrives in the durable queue before acknowledging it.
 *
 * Once connected the link is in raw mode (link.h): libmosquitto made the
 * connection, and this file reads the plant broker's packets itself
 * (plant_packet) and encodes its SUBSCRIBEs and PUBACKs into the link's send
 * buffer.  Persist-before-acknowledge (docs/bridge.md, "Nothing acknowledged
 * is lost"): the PUBACK of a QoS 1 message is put into the send buffer when
 * the message is read, and the buffer is not written while the batch it
 * belongs to is uncommitted (link_t.defer).  A batch's commit runs on its own
 * thread (the commit thread, pg-commit) while this one reads the next batch:
 *
 *     link_poll → link_read()     plant_publish copies matches into a batch
 *     commit thread free:
 *       link_hold()               the batch's PUBACKs go, in one TLS record,
 *                                 into the gate below TLS (gate.h) and stay
 *       hand the batch over       queue_push(): one SQLite transaction, fsync
 *     ... read on; the new batch's PUBACKs stay in the send buffer ...
 *     commit returned:
 *       link_release()            that batch's PUBACKs leave, no others
 *
 * If a commit fails the connection is dropped, and with it whatever the
 * gate and libmosquitto held: the broker keeps the messages and sends them
 * again.  Backpressure is simply not reading: the broker holds the messages
 * in our persistent session.  Without a gate (no TLS yet, out of memory)
 * the batch is committed in line, before anything is written.
 *
 * One TLS record for a batch's PUBACKs matters to the plant broker: it reads
 * one record per connection per pass of its event loop (issue 14).
 *
 * The connection itself (connect, backoff, failure reasons, TLS buffering,
 * keepalive) is link.c's; this file is the plant's protocol only.
 */
#define _GNU_SOURCE /* pipe2 */
#include <fcntl.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blog.h"
#include "bridge.h"
#include "link.h"
#include "mqttwire.h"
#include "topic.h"
#include "util.h"

/* Unacknowledged messages the plant broker may have in flight to us (MQTT 5
 * Receive Maximum): the bound of what is read but not yet committed (the
 * batch in its commit and the one read meanwhile), and so of how far the
 * queue can overshoot queue_max_messages under backpressure (QoS 0 aside,
 * documented in docs/bridge.md).  The plant broker's max_inflight_messages
 * may bound it further.  mosquitto 2.0.11 does not hold to it (its in-flight
 * quota was fixed in 2.0.13): it sends on whatever we acknowledged, and the
 * bridge reads at most a batch (this many) per commit anyway.  It also reads
 * one packet per connection per pass of its event loop, so while many
 * devices publish it could send us PUBLISHes faster than it read our
 * PUBACKs when each was its own TLS record (libmosquitto's way; now a batch
 * is one record); reading stops while such a backlog fills half the gate
 * (link_backlogged), or the unread PUBACKs would pile up in the send buffer
 * without a bound (in libmosquitto's queue, 80 bytes each, issue 14 saw
 * 200,000 of them, 15 MiB, in a 40 s fill). */
#define PLANT_RECEIVE_MAXIMUM 256
/* One commit holds at most about this many bytes, so a burst of large
 * messages never needs a huge WAL (and disk) at once. */
#define PLANT_BATCH_BYTES (64 * 1024)
/* Group commit: a batch is committed as soon as the commit thread is free,
 * unless queue_commit_interval asks for a pause between the starts of two
 * commits: then it waits for that, or for PLANT_BATCH_MIN messages.  An
 * fsync costs about the same for 1 message as for 60 (a commit costs the
 * bridge ~300 µs of CPU, a message ~10 µs more), so the pause trades up to
 * that much latency for fewer commits (less CPU, less disk wear). */
#define PLANT_BATCH_MIN 64
/* queue_commit_interval auto (the default): a pause of PLANT_AUTO_PAUSE_US,
 * but only while the plant broker sends at least PLANT_AUTO_RATE messages a
 * second, measured over windows of PLANT_RATE_WINDOW_MS.  Below that rate
 * every message is committed at once: latency first, and the commits are
 * few anyway.  Above it, commits of a message or a few each would cost a
 * third of a core (docs/benchmarks.md, issue 14, fourth round). */
#define PLANT_AUTO_RATE 2000
#define PLANT_AUTO_PAUSE_US 2000
#define PLANT_RATE_WINDOW_MS 100
/* A commit this slow holds every acknowledgement to the plant broker back:
 * the disk under queue_path is slow or failing.  Logged (queue.slow_commit)
 * at once, then at most once per PLANT_SLOW_LOG_MS while it goes on, with how
 * many and the longest since the last line. */
#define PLANT_SLOW_COMMIT_MS 1000
#define PLANT_SLOW_LOG_MS 60000
/* Backpressure on the queue's limits ends when the queue is back at this
 * percentage of them, so reading does not flap on and off (with a log line
 * each time) while the cloud drains one batch at a time. */
#define PLANT_RESUME_PCT 90
/* While a backlog drains through a full queue, reading stops and resumes
 * with every batch; the log says queue.full once, when it starts, and
 * queue.accepting once the queue has had room for this long. */
#define PLANT_CALM_MS 3000
/* Messages evicted by drop-oldest are logged as a summary: at once when the
 * eviction starts, then at most once per this many ms. */
#define PLANT_DROP_LOG_MS 5000

/* Messages taken from one link_read(); bounded by what the broker
 * may send before it needs PUBACKs (its max_inflight_messages) plus QoS 0. */
typedef struct plant_batch {
	queue_msg_t *msgs;
	size_t n, cap;
	size_t bytes; /* payload and topic bytes in the batch */
	bool oom;
} plant_batch_t;

/* The commit thread: takes one batch at a time from the plant thread and
 * commits it, while the plant thread reads the next one (see the head of
 * this file).  mu guards everything below it. */
typedef struct plant_committer {
	pthread_t thread;
	bool started;
	int done[2]; /* pipe: a commit returned (wakes the plant thread's poll) */
	bridge_t *b;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool busy;     /* a batch is handed over and its result not yet taken */
	bool finished; /* ... and its commit has returned */
	plant_batch_t batch; /* the batch handed over */
	queue_rc_t rc;
	int64_t dropped;
	char err[256];
	/* Slow commits (PLANT_SLOW_COMMIT_MS) since the last queue.slow_commit
	 * line, and when that was; touched by whichever thread commits (one
	 * at a time: an in-line commit waits for the commit thread's). */
	uint64_t slow_n;
	int64_t slow_max_us, slow_logged_ms;
} plant_committer_t;

/* Backpressure that switches on and off while a backlog drains (a full
 * queue, a low disk) is logged as an episode: when reading first stops, and
 * once reading has been possible for PLANT_CALM_MS, however often it
 * stopped in between (episode_step). */
typedef struct plant_episode {
	bool on;           /* reading stopped for this reason, now */
	bool open;         /* its start logged, its end not yet */
	unsigned stops;    /* times reading stopped in this episode */
	int64_t off_since; /* when reading last became possible again */
} plant_episode_t;

typedef struct plant {
	bridge_t *b;
	link_t link;
	whitelist_t wl;
	bool ingest_down; /* a commit failed: hold off until the retry */
	bool oom_down;    /* a batch could not be held: reconnecting */
	plant_episode_t full; /* backpressure on the queue's limits */
	plant_episode_t disk; /* below queue_min_free_disk */
	int64_t dropped_pending; /* drop-oldest evictions not logged yet */
	int64_t dropped_logged_at;
	int64_t disk_checked;
	uint64_t disk_free; /* at the last check */
	plant_batch_t batch; /* being read */
	plant_committer_t com;
	int64_t commit_started_us; /* when the last batch was handed over */
	/* The rate the plant broker sends at, for queue_commit_interval auto:
	 * messages read since rate_at (ms), and whether the last window was at
	 * PLANT_AUTO_RATE or more. */
	int64_t rate_at;
	uint64_t rate_n;
	bool fast;
	int64_t disk_checkpointed; /* last WAL checkpoint taken for the disk guard */
	/* Redeliveries (see plant_redelivery): the connection resumed a session,
	 * how many QoS 1 messages it has brought so far, and those recognised as
	 * stored already since the last commit (logged there, once). */
	bool session_present;
	/* Per rule: the SUBSCRIBE's packet id, 0 when not subscribed (another
	 * rule's filter covers it), -1 when the broker refused it. */
	int *sub_mid;
	/* SUBACKs still awaited for this connection's (or reload's)
	 * subscriptions, and how many came back refused: plant.subscribed is
	 * logged when the last one arrives. */
	unsigned subs_pending, subs_refused;
	uint16_t last_mid; /* the last SUBSCRIBE's or UNSUBSCRIBE's packet id */
	uint64_t redelivered;
	int64_t redelivered_first, redelivered_last;
} plant_t;

static void batch_clear(plant_batch_t *bt)
{
	for(size_t i = 0; i < bt->n; i++) {
		free(bt->msgs[i].local_topic);
		free(bt->msgs[i].remote_topic);
		free(bt->msgs[i].device);
		free(bt->msgs[i].payload);
	}
	bt->n = 0;
	bt->bytes = 0;
	bt->oom = false;
}

/* Queue a SUBSCRIBE (QoS 1, retained messages only on a new subscription,
 * the retain flag as published) or an UNSUBSCRIBE for filter f; returns its
 * packet id, or 0 when out of memory (the batch is marked: reconnect). */
static int plant_send_sub(plant_t *p, bool unsubscribe, const char *f)
{
	size_t fl = strlen(f), n = mqw_subscribe_size(p->link.conf.protocol, unsubscribe, fl);
	uint8_t *o = n ? link_raw_reserve(&p->link, n) : NULL;
	if(!o) {
		p->batch.oom = true;
		return 0;
	}
	if(++p->last_mid == 0) {
		p->last_mid = 1;
	}
	link_raw_commit(&p->link,
	                mqw_subscribe_encode(p->link.conf.protocol, unsubscribe, p->last_mid, f, fl,
	                                     1 | MQTT_SUB_OPT_SEND_RETAIN_NEW |
	                                         MQTT_SUB_OPT_RETAIN_AS_PUBLISHED,
	                                     o));
	return p->last_mid;
}

/* Subscribe to filter i of the whitelist; records the packet id. */
static void subscribe_one(plant_t *p, size_t i)
{
	int mid = plant_send_sub(p, false, p->wl.rules[i].filter);
	p->sub_mid[i] = mid ? mid : -1;
	p->subs_pending += mid ? 1u : 0u;
}

/* Subscribe to the rules' filters, except those another rule's filter
 * covers (whitelist_subscriptions): the broker would send such a message
 * once per matching subscription, and it would be queued twice.  Covered
 * filters are unsubscribed too, as a persistent session may still hold them
 * from an earlier configuration.  Should the broker refuse a covering filter,
 * on_subscribe subscribes to what it covered instead. */
static void subscribe_all(plant_t *p)
{
	bool *sub = calloc(p->wl.count ? p->wl.count : 1, sizeof(*sub));
	int *mids = calloc(p->wl.count ? p->wl.count : 1, sizeof(*mids));
	if(!sub || !mids) {
		free(sub);
		free(mids);
		p->batch.oom = true; /* reconnect and try again */
		return;
	}
	free(p->sub_mid);
	p->sub_mid = mids;
	p->subs_pending = p->subs_refused = 0;
	whitelist_subscriptions(&p->wl, sub);
	for(size_t i = 0; i < p->wl.count; i++) {
		if(sub[i]) {
			subscribe_one(p, i);
		} else {
			plant_send_sub(p, true, p->wl.rules[i].filter);
		}
	}
	free(sub);
}

/* The broker refused rule i's filter: logged (the plant policy does not let
 * the bridge read it); the filters it was to stand for (covered, so not
 * subscribed) are subscribed themselves, unless another live subscription
 * covers them. */
static void plant_sub_refused(plant_t *p, size_t i, uint8_t code)
{
	const wl_rule_t *r = &p->wl.rules[i];
	p->sub_mid[i] = -1;
	blog(BLOG_ERROR, "plant.subscribe_refused",
	     "filter=%s rule_line=%d reason=\"%s\" action=\"nothing matching only this rule is "
	     "forwarded\" hint=\"grant the bridge's role subscribe and read for it in the plant "
	     "policy\"",
	     r->filter, r->line, mosquitto_reason_string(code));
	/* The candidates: filters r stood for that no live subscription covers.
	 * Of those, only the ones no other candidate covers are subscribed (of
	 * two equal filters, the first): subscribing a candidate and one it
	 * covers would bring such messages twice. */
	bool *cand = calloc(p->wl.count, sizeof(*cand));
	if(!cand) {
		p->batch.oom = true; /* reconnect and subscribe again */
		return;
	}
	for(size_t j = 0; j < p->wl.count; j++) {
		const char *fj = p->wl.rules[j].filter;
		cand[j] = p->sub_mid[j] == 0 && topic_filter_covers(r->filter, fj);
		for(size_t k = 0; k < p->wl.count && cand[j]; k++) {
			cand[j] = k == j || p->sub_mid[k] <= 0 || !topic_filter_covers(p->wl.rules[k].filter, fj);
		}
	}
	for(size_t j = 0; j < p->wl.count; j++) {
		const char *fj = p->wl.rules[j].filter;
		bool covered = false;
		for(size_t k = 0; k < p->wl.count && cand[j] && !covered; k++) {
			const char *fk = p->wl.rules[k].filter;
			covered = k != j && cand[k] && topic_filter_covers(fk, fj) &&
			          (k < j || !topic_filter_covers(fj, fk));
		}
		if(cand[j] && !covered) {
			subscribe_one(p, j);
		}
	}
	free(cand);
}

/* SUBACK: a refusal (plant_sub_refused), and plant.subscribed once the last
 * awaited SUBACK of this connection or reload is in. */
static void plant_suback(plant_t *p, int mid, uint8_t code)
{
	size_t i = 0;
	while(p->sub_mid && i < p->wl.count && p->sub_mid[i] != mid) {
		i++;
	}
	if(!p->sub_mid || i == p->wl.count) {
		return;
	}
	if(code >= 0x80) {
		p->subs_refused++;
		plant_sub_refused(p, i, code); /* may subscribe to what it covered: more SUBACKs */
	}
	if(p->subs_pending > 0 && --p->subs_pending == 0) {
		/* What to look for when nothing arrives: until this line, the plant
		 * broker may drop messages the bridge is not yet subscribed to. */
		blog(p->link.quiet ? BLOG_DEBUG : BLOG_INFO, "plant.subscribed", "rules=%zu refused=%u",
		     p->wl.count, p->subs_refused);
	}
}

/* link_conf_t.up: connected (link.c counted it). */
static void plant_up(void *owner, int flags, const mosquitto_property *props)
{
	plant_t *p = owner;
	/* While the queue cannot be written we reconnect only to retry: the link
	 * keeps the backoff growing and the log quiet (queue.write_failed said it). */
	blog(p->link.quiet ? BLOG_DEBUG : BLOG_INFO, "plant.connected",
	     "host=%s port=%lld session_present=%d after_failures=%u down_ms=%lld",
	     p->b->cfg->plant_host, (long long)p->b->cfg->plant_port, flags & 1,
	     p->link.failures_since_up, (long long)(util_mono_ms() - p->link.down_since));
	p->session_present = (flags & 1) != 0;
	p->oom_down = false;
	link_lib_log_off(&p->link);
	if(link_raw_start(&p->link)) {
		p->batch.oom = true; /* reconnect and try again */
		return;
	}
	subscribe_all(p);
}

/* Is q (built from a plant QoS 1 delivery, plant_mid set) a redelivery of a
 * message stored already?  After the bridge was killed, or the connection
 * lost, between a commit and the PUBACKs leaving, the plant broker sends the
 * unacknowledged messages again when the session resumes, with their packet
 * ids and the DUP flag.  A match of packet id and content (queue_ingest_seen)
 * counts only for DUP=1; a first delivery (DUP=0) is always new, even with
 * the same content as one before (a device may well send the same value
 * twice).  QoS 0 is never redelivered. */
static int64_t plant_redelivery(plant_t *p, const queue_msg_t *q, bool dup)
{
	int64_t seq = 0;
	if(!dup || queue_ingest_seen(p->b->queue, q, &seq) != QUEUE_OK) {
		return 0; /* stored again at worst: a duplicate, never a loss */
	}
	return seq;
}

/* The verified sender of a plant message: the one `plantgate-device` user
 * property the plant broker's plugin stamps on every accepted PUBLISH
 * (plugin/provenance.c removes any the client sent).  Returns a fresh copy,
 * "" when there is none or more than one (then the plugin did not run on
 * that broker and no value can be trusted); NULL when out of memory. */
static const char plant_device_prop[] = "plantgate-device";

/* The plantgate-device properties of one PUBLISH: how many, and the first's
 * value (mqw_user_prop_find). */
typedef struct plant_device_ref {
	unsigned count;
	const uint8_t *v;
	uint16_t len;
} plant_device_ref_t;

static char *plant_device(const plant_device_ref_t *d)
{
	unsigned n = d->count;
	if(n > 1) {
		blog(BLOG_DEBUG, "plant.device_ambiguous",
		     "count=%u note=\"several plantgate-device properties: signed as none\"", n);
	}
	return n == 1 ? strndup((const char *)d->v, d->len) : strdup("");
}

/* A PUBLISH from the plant broker, its topic checked and copied (topic, a
 * fresh string this takes) and its plantgate-device properties found (dev):
 * filtered, remapped and added to the batch. */
static void plant_publish(plant_t *p, const mqw_rx_publish_t *m, char *topic,
                          const plant_device_ref_t *dev)
{
	bridge_t *b = p->b;
	char q1[300], q2[300];
	atomic_fetch_add(&b->ctr.in_received, 1);
	const wl_rule_t *r = whitelist_match(&p->wl, topic);
	if(!r) {
		/* A subscription left over from an older configuration, or a filter
		 * overlap: the whitelist decides, not the subscription. */
		atomic_fetch_add(&b->ctr.in_unmatched, 1);
		blog(BLOG_DEBUG, "plant.unmatched", "topic=%s",
		     util_log_quote(topic, q1, sizeof(q1)));
		free(topic);
		return;
	}
	if((uint64_t)m->payload_len > r->max_payload) {
		atomic_fetch_add(&b->ctr.in_rejected, 1);
		blog(BLOG_WARN, "plant.rejected",
		     "reason=payload-too-large topic=%s size=%lu max=%llu rule_line=%d",
		     util_log_quote(topic, q1, sizeof(q1)), (unsigned long)m->payload_len,
		     (unsigned long long)r->max_payload, r->line);
		free(topic);
		return;
	}
	char *remote = NULL;
	const char *why = NULL;
	if(whitelist_remap(r, topic, &remote, &why) == 0 &&
	   !bconf_cloud_topic_ok(b->cfg, remote, &why)) {
		/* why set */
	}
	if(why) {
		/* Acknowledged and not forwarded: the cloud could never take it. */
		atomic_fetch_add(&b->ctr.in_rejected, 1);
		blog(BLOG_WARN, "plant.rejected", "reason=%s topic=%s cloud_topic=%s rule_line=%d", why,
		     util_log_quote(topic, q1, sizeof(q1)), util_log_quote(remote ? remote : "", q2, sizeof(q2)),
		     r->line);
		free(remote);
		free(topic);
		return;
	}
	plant_batch_t *bt = &p->batch;
	if(bt->n == bt->cap) {
		size_t ncap = bt->cap ? bt->cap * 2 : 64;
		queue_msg_t *n = realloc(bt->msgs, ncap * sizeof(*n));
		if(!n) {
			free(remote);
			free(topic);
			bt->oom = true;
			return;
		}
		bt->msgs = n;
		bt->cap = ncap;
	}
	queue_msg_t *q = &bt->msgs[bt->n];
	memset(q, 0, sizeof(*q));
	q->rx_ms = util_wall_ms();
	q->expires_ms = r->ttl_ms ? q->rx_ms + r->ttl_ms : 0;
	q->qos = r->qos;
	q->retain = r->retain && m->retain;
	q->local_topic = topic;
	q->remote_topic = remote;
	q->device = plant_device(dev);
	q->len = m->payload_len;
	q->payload = malloc(q->len ? q->len : 1);
	if(!q->local_topic || !q->remote_topic || !q->device || !q->payload) {
		free(q->local_topic);
		free(q->remote_topic);
		free(q->device);
		free(q->payload);
		bt->oom = true;
		return;
	}
	if(q->len) {
		memcpy(q->payload, m->payload, q->len);
	}
	/* MQTT 3.1.1 with a signing key: the message leaves as the envelope's JSON
	 * wrapper (base64 payload and the signed fields), which must fit the
	 * cloud's payload limit too. */
	uint64_t cloud_max = bconf_profile(b->cfg->cloud_profile)->max_payload;
	size_t wrapped = b->sign_key && b->cfg->cloud_protocol != 5
	                     ? envelope_json_max_len(b->cfg->site_id, q->device, q->local_topic, q->len)
	                     : 0;
	if(wrapped > cloud_max) {
		atomic_fetch_add(&b->ctr.in_rejected, 1);
		blog(BLOG_WARN, "plant.rejected",
		     "reason=signed-too-large topic=%s size=%zu wrapped=%zu max=%llu rule_line=%d "
		     "note=\"signed for MQTT 3.1.1, the payload travels base64-encoded in the envelope's "
		     "JSON wrapper, which the cloud would refuse\"",
		     util_log_quote(topic, q1, sizeof(q1)), q->len, wrapped,
		     (unsigned long long)cloud_max, r->line);
		queue_msg_clear(q);
		return;
	}
	q->plant_mid = m->qos > 0 ? m->mid : 0;
	int64_t seq = q->plant_mid ? plant_redelivery(p, q, m->dup) : 0;
	if(seq) {
		/* Stored already (as seq): acknowledge it, do not store it twice. */
		atomic_fetch_add(&b->ctr.in_redelivered, 1);
		blog(BLOG_DEBUG, "plant.redelivered_one", "mid=%d dup=%d seq=%lld topic=%s", m->mid, (int)m->dup,
		     (long long)seq, util_log_quote(topic, q1, sizeof(q1)));
		if(!p->redelivered++) {
			p->redelivered_first = seq;
		}
		p->redelivered_last = seq;
		queue_msg_clear(q);
		return;
	}
	bt->n++;
	bt->bytes += q->len + strlen(q->local_topic) + strlen(q->remote_topic);
}

/* link_conf_t.packet: what the plant broker sent (link.c handles PINGRESP
 * and DISCONNECT).  A QoS 1 PUBLISH gets its PUBACK queued at once, before
 * anything can fail, as libmosquitto did: it leaves only with its batch's
 * commit (see the head of this file), or is thrown away with the
 * connection. */
static int plant_packet(void *owner, uint8_t header, const uint8_t *body, uint32_t len)
{
	plant_t *p = owner;
	link_t *l = &p->link;
	unsigned type = header >> 4;
	if(type == MQW_SUBACK || type == MQW_UNSUBACK) {
		uint16_t mid;
		uint8_t code;
		if(mqw_suback_parse(l->conf.protocol, header, body, len, &mid, &code) == MQW_OK) {
			if(type == MQW_SUBACK) {
				plant_suback(p, mid, code);
			}
			return MOSQ_ERR_SUCCESS;
		}
	} else if(type == MQW_PUBLISH) {
		mqw_rx_publish_t m;
		if(mqw_publish_decode(l->conf.protocol, header, body, len, &m) != MQW_OK) {
			goto malformed;
		}
		if(m.qos == 2 || m.topic_alias || m.topic_len == 0) {
			/* We subscribe at QoS 1 and allow no topic aliases. */
			util_snprintf(l->cb_reason, sizeof(l->cb_reason),
			              "protocol error: the plant broker sent a PUBLISH with %s",
			              m.qos == 2 ? "QoS 2 (the bridge subscribes at QoS 1)"
			                         : "a topic alias or no topic (the bridge allows none)");
			return MOSQ_ERR_PROTOCOL;
		}
		if(m.qos == 1) {
			uint8_t ack[MQW_ACK_LEN];
			mqw_ack_encode(MQW_PUBACK, m.mid, ack);
			int rc = link_raw_put(l, ack, sizeof(ack));
			if(rc) {
				return rc;
			}
		}
		/* libmosquitto's own check of what it reads (NUL, other control
		 * characters and non-characters are refused too), and no wildcards. */
		plant_device_ref_t dev;
		dev.count = mqw_user_prop_find(m.props, m.props_len, plant_device_prop,
		                               sizeof(plant_device_prop) - 1, &dev.v, &dev.len);
		if(mosquitto_validate_utf8((const char *)m.topic, m.topic_len) ||
		   memchr(m.topic, '+', m.topic_len) || memchr(m.topic, '#', m.topic_len) ||
		   (dev.count && mosquitto_validate_utf8((const char *)dev.v, dev.len))) {
			util_snprintf(l->cb_reason, sizeof(l->cb_reason),
			              "protocol error: the plant broker sent a PUBLISH whose topic or "
			              "plantgate-device property is not a valid UTF-8 topic or value");
			return MOSQ_ERR_PROTOCOL;
		}
		char *topic = strndup((const char *)m.topic, m.topic_len);
		if(!topic) {
			p->batch.oom = true;
			return MOSQ_ERR_SUCCESS;
		}
		plant_publish(p, &m, topic, &dev);
		return MOSQ_ERR_SUCCESS;
	}
malformed:
	util_snprintf(l->cb_reason, sizeof(l->cb_reason),
	              "protocol error: the plant broker sent a malformed or unexpected %s packet",
	              mqw_type_name(type));
	return MOSQ_ERR_PROTOCOL;
}

/* link_conf_t.down: what was read on the lost connection was not
 * acknowledged; the broker sends it again. */
static void plant_down(void *owner, char *detail, size_t detail_len)
{
	plant_t *p = owner;
	batch_clear(&p->batch);
}

/* libmosquitto options and callbacks of the plant's protocol. */
static int plant_setup(void *owner, struct mosquitto *mosq)
{
	/* MQTT 5 Receive Maximum: how many unacknowledged QoS 1 messages the plant
	 * broker may send us at once.  libmosquitto's default of 20 would cap each
	 * group commit at 20 messages; one fsync per several hundred is what makes
	 * persist-before-acknowledge cheap.  Nothing is acknowledged before its
	 * commit either way. */
	mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, PLANT_RECEIVE_MAXIMUM);
	return MOSQ_ERR_SUCCESS;
}

/* Take a whitelist installed by SIGHUP and fix the subscriptions. */
static void plant_take_whitelist(plant_t *p)
{
	bridge_t *b = p->b;
	pthread_mutex_lock(&b->mu);
	whitelist_t *nw = b->pending_whitelist;
	b->pending_whitelist = NULL;
	pthread_mutex_unlock(&b->mu);
	if(!nw) {
		return;
	}
	/* Connected means raw mode (plant_up), unless starting it failed and the
	 * connection is about to be dropped. */
	bool live = p->link.mosq && p->link.state == LINK_UP && p->link.raw;
	if(live) {
		for(size_t i = 0; i < p->wl.count; i++) {
			bool kept = false;
			for(size_t j = 0; j < nw->count && !kept; j++) {
				kept = strcmp(p->wl.rules[i].filter, nw->rules[j].filter) == 0;
			}
			if(!kept) {
				plant_send_sub(p, true, p->wl.rules[i].filter);
			}
		}
	}
	whitelist_clear(&p->wl);
	p->wl = *nw;
	free(nw);
	free(p->sub_mid); /* indexed by the old rules */
	p->sub_mid = NULL;
	if(live) {
		subscribe_all(p);
	}
	blog(BLOG_INFO, "plant.whitelist_applied", "rules=%zu", p->wl.count);
}

/* Say why the plant thread is not reading, for /healthz, /metrics and the
 * status page (enum bridge_block); 0 when it reads. */
static void plant_show_blocked(plant_t *p)
{
	unsigned why = (p->full.on ? BRIDGE_BLOCK_QUEUE_FULL : 0u) |
	               (p->disk.on ? BRIDGE_BLOCK_DISK_LOW : 0u) |
	               (p->ingest_down ? BRIDGE_BLOCK_WRITE_FAILED : 0u) |
	               (p->oom_down ? BRIDGE_BLOCK_OUT_OF_MEMORY : 0u);
	atomic_store(&p->b->ctr.ingest_blocked, why);
}

/* Log the drop-oldest evictions not logged yet: at once when eviction
 * starts, then at most every PLANT_DROP_LOG_MS (or now, when `flush`). */
static void plant_log_dropped(plant_t *p, bool flush)
{
	int64_t now = util_mono_ms();
	if(!p->dropped_pending ||
	   (!flush && p->dropped_logged_at && now - p->dropped_logged_at < PLANT_DROP_LOG_MS)) {
		return;
	}
	blog(BLOG_WARN, "queue.dropped_oldest",
	     "count=%lld total=%llu reason=queue-full policy=drop-oldest note=\"the oldest queued "
	     "messages were deleted to make room; summarised at most every %d s\"",
	     (long long)p->dropped_pending,
	     (unsigned long long)atomic_load(&p->b->ctr.dropped_oldest), PLANT_DROP_LOG_MS / 1000);
	p->dropped_pending = 0;
	p->dropped_logged_at = now;
}

/* Before a batch is committed: a batch that could not be held in full
 * drops the connection (false); redeliveries recognised while reading it are
 * logged once. */
static bool plant_commit_prepare(plant_t *p)
{
	if(p->batch.oom) {
		blog(BLOG_ERROR, "plant.out_of_memory", "action=reconnect");
		p->oom_down = true;
		plant_show_blocked(p);
		link_drop(&p->link, "out of memory");
		return false;
	}
	if(p->redelivered) {
		blog(BLOG_INFO, "plant.redelivered",
		     "count=%llu seq_first=%lld seq_last=%lld action=\"acknowledged, not stored again\" "
		     "note=\"stored before a restart or a lost connection whose acknowledgement never "
		     "reached the plant broker\"",
		     (unsigned long long)p->redelivered, (long long)p->redelivered_first,
		     (long long)p->redelivered_last);
		p->redelivered = 0;
	}
	return true;
}

/* A commit of n messages returned qrc.  On failure the connection is
 * dropped, and with it every acknowledgement not sent yet: the plant broker
 * keeps the messages.  On success the held acknowledgements leave. */
static int plant_commit_done(plant_t *p, size_t n, queue_rc_t qrc, int64_t dropped,
                             const char *err)
{
	bridge_t *b = p->b;
	if(qrc != QUEUE_OK) {
		if(!p->ingest_down) {
			blog(BLOG_ERROR, "queue.write_failed",
			     "reason=\"%s: %s\" path=%s action=\"not acknowledging; the plant broker keeps "
			     "the messages; retrying\"%s",
			     queue_strerror(qrc), err, b->cfg->queue_path,
			     qrc == QUEUE_ERR_FULL ? " hint=\"free disk space on the queue's file system\""
			                           : "");
		}
		p->ingest_down = p->link.quiet = true;
		plant_show_blocked(p);
		link_drop(&p->link, qrc == QUEUE_ERR_FULL ? "queue disk full" : "queue write failed");
		return -1;
	}
	if(p->ingest_down) {
		blog(BLOG_INFO, "queue.write_resumed", "path=%s", b->cfg->queue_path);
		p->ingest_down = p->link.quiet = false;
		plant_show_blocked(p);
	}
	atomic_fetch_add(&b->ctr.in_queued, n);
	if(dropped) {
		atomic_fetch_add(&b->ctr.dropped_oldest, (uint64_t)dropped);
		p->dropped_pending += dropped;
		plant_log_dropped(p, false);
	}
	char c = 1;
	if(write(b->wake[1], &c, 1) < 0) {
		/* the pipe is full: the cloud thread is already awake */
	}
	if(p->link.holding && link_settle(&p->link, link_release(&p->link))) {
		return -1;
	}
	return 0;
}

/* A commit took us µs: log it when slow (see PLANT_SLOW_COMMIT_MS). */
static void plant_slow_commit(plant_committer_t *c, int64_t us, size_t n)
{
	if(us < PLANT_SLOW_COMMIT_MS * 1000) {
		return;
	}
	c->slow_n++;
	if(us > c->slow_max_us) {
		c->slow_max_us = us;
	}
	int64_t now = util_mono_ms();
	if(c->slow_logged_ms && now - c->slow_logged_ms < PLANT_SLOW_LOG_MS) {
		return;
	}
	blog(BLOG_WARN, "queue.slow_commit",
	     "duration_ms=%lld messages=%zu slow_commits=%llu max_ms=%lld path=%s "
	     "action=\"acknowledgements to the plant broker wait for each commit; nothing is lost\" "
	     "hint=\"the disk under queue_path is slow or failing: check its I/O load and health "
	     "(iostat -x 1, dmesg); the counts cover the time since the last such line\"",
	     (long long)(us / 1000), n, (unsigned long long)c->slow_n,
	     (long long)(c->slow_max_us / 1000), c->b->cfg->queue_path);
	c->slow_logged_ms = now;
	c->slow_n = 0;
	c->slow_max_us = 0;
}

/* Store batch bt in the queue (one transaction, fsync) and time it for the
 * commit histogram; in line or on the commit thread. */
static queue_rc_t plant_push(plant_committer_t *c, const plant_batch_t *bt, int64_t *dropped,
                             char *err, size_t errlen)
{
	bridge_t *b = c->b;
	int64_t t0 = util_mono_us();
	if(b->test_commit_delay_ms) {
		usleep((useconds_t)b->test_commit_delay_ms * 1000); /* tests: a slow disk */
	}
	queue_rc_t qrc = queue_push(b->queue, bt->msgs, bt->n, dropped, err, errlen);
	int64_t us = util_mono_us() - t0;
	bridge_commit_observe(&b->ctr, us);
	plant_slow_commit(c, us, bt->n);
	return qrc;
}

/* Commit the batch in line (no commit thread, no gate, or stopping). */
static int plant_commit(plant_t *p)
{
	plant_batch_t *bt = &p->batch;
	if(!plant_commit_prepare(p)) {
		return -1;
	}
	if(bt->n == 0) {
		return 0;
	}
	char err[256] = "";
	int64_t dropped = 0;
	queue_rc_t qrc = plant_push(&p->com, bt, &dropped, err, sizeof(err));
	size_t n = bt->n;
	batch_clear(bt);
	return plant_commit_done(p, n, qrc, dropped, err);
}

static void *committer_run(void *arg)
{
	plant_committer_t *c = arg;
	util_thread_name("pg-commit");
	pthread_mutex_lock(&c->mu);
	while(!c->stop) {
		if(!c->busy || c->finished) {
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		pthread_mutex_unlock(&c->mu);
		char err[sizeof(c->err)] = "";
		int64_t dropped = 0;
		queue_rc_t qrc = plant_push(c, &c->batch, &dropped, err, sizeof(err));
		pthread_mutex_lock(&c->mu);
		c->rc = qrc;
		c->dropped = dropped;
		memcpy(c->err, err, sizeof(err));
		c->finished = true;
		pthread_cond_broadcast(&c->cv);
		char one = 1;
		if(write(c->done[1], &one, 1) < 0) {
			/* full: the plant thread has a wake-up pending already */
		}
	}
	pthread_mutex_unlock(&c->mu);
	OPENSSL_thread_stop(); /* the ingest hash's per-thread state */
	return NULL;
}

/* Start the commit thread; without it (no pipe, no thread) every batch is
 * committed in line. */
static void committer_start(plant_t *p)
{
	plant_committer_t *c = &p->com;
	c->b = p->b;
	c->done[0] = c->done[1] = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if(pipe2(c->done, O_NONBLOCK | O_CLOEXEC) != 0) {
		c->done[0] = c->done[1] = -1;
		return;
	}
	c->started = pthread_create(&c->thread, NULL, committer_run, c) == 0;
}

/* Take the result of the batch handed over, waiting for it when `wait`.
 * 0 when nothing was handed over or it is still being committed (and not
 * `wait`), 1 when done and a success, -1 when the commit failed (the
 * connection was dropped). */
static int committer_collect(plant_t *p, bool wait)
{
	plant_committer_t *c = &p->com;
	if(!c->busy) {
		return 0;
	}
	pthread_mutex_lock(&c->mu);
	while(wait && !c->finished) {
		pthread_cond_wait(&c->cv, &c->mu);
	}
	bool finished = c->finished;
	queue_rc_t qrc = c->rc;
	int64_t dropped = c->dropped;
	char err[sizeof(c->err)];
	memcpy(err, c->err, sizeof(err));
	if(finished) {
		c->busy = false;
	}
	pthread_mutex_unlock(&c->mu);
	if(!finished) {
		return 0;
	}
	char buf[64];
	while(read(c->done[0], buf, sizeof(buf)) > 0) {
	}
	size_t n = c->batch.n;
	batch_clear(&c->batch);
	return plant_commit_done(p, n, qrc, dropped, err) ? -1 : 1;
}

/* The pause between two commits' starts now, in µs (queue_commit_interval). */
static int64_t plant_commit_interval_us(const plant_t *p)
{
	int64_t ms = p->b->cfg->queue_commit_interval_ms;
	if(ms == BCONF_COMMIT_AUTO) {
		return p->fast ? PLANT_AUTO_PAUSE_US : 0;
	}
	return ms * 1000;
}

/* n messages were just read (0: none): keep the rate up to date (see
 * PLANT_AUTO_RATE). */
static void plant_rate(plant_t *p, size_t n)
{
	int64_t now = util_mono_ms();
	p->rate_n += n;
	if(now - p->rate_at >= PLANT_RATE_WINDOW_MS) {
		p->fast = p->rate_n * 1000 >= (uint64_t)PLANT_AUTO_RATE * (uint64_t)(now - p->rate_at);
		p->rate_at = now;
		p->rate_n = 0;
		atomic_store(&p->b->ctr.commit_pause_us, plant_commit_interval_us(p));
	}
}

/* How long the batch read so far waits before its commit may start (0:
 * now); see PLANT_BATCH_MIN.  -1 when there is nothing to commit. */
static int64_t plant_commit_wait_us(const plant_t *p)
{
	if(p->batch.n == 0) {
		return p->redelivered || p->batch.oom ? 0 : -1;
	}
	if(p->batch.n >= PLANT_BATCH_MIN || p->batch.bytes >= PLANT_BATCH_BYTES || !p->com.started) {
		return 0;
	}
	int64_t left = p->commit_started_us + plant_commit_interval_us(p) - util_mono_us();
	return left > 0 ? left : 0;
}

/* The commit thread is idle: commit what was read.  Its PUBACKs go into the
 * gate, held, and the batch to the commit thread; the plant thread reads on.
 * Without a gate or thread, in line.  -1 when the connection was dropped. */
static int plant_commit_begin(plant_t *p)
{
	plant_committer_t *c = &p->com;
	if(!c->started || p->batch.n == 0 || p->batch.oom) {
		return plant_commit(p);
	}
	if(!plant_commit_prepare(p)) {
		return -1;
	}
	if(!link_hold(&p->link)) {
		return plant_commit(p);
	}
	p->commit_started_us = util_mono_us();
	plant_batch_t spare = c->batch; /* empty: cleared when collected */
	pthread_mutex_lock(&c->mu);
	c->batch = p->batch;
	c->busy = true;
	c->finished = false;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	p->batch = spare;
	return 0;
}

static void committer_stop(plant_t *p)
{
	plant_committer_t *c = &p->com;
	if(c->started) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->thread, NULL);
	}
	batch_clear(&c->batch);
	free(c->batch.msgs);
	for(int i = 0; i < 2; i++) {
		if(c->done[i] >= 0) {
			close(c->done[i]);
		}
	}
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
}

enum episode_step { EPISODE_SAME, EPISODE_BEGINS, EPISODE_ENDS };

/* e is on (reading stopped) or not, now: what that means for its episode. */
static enum episode_step episode_step(plant_episode_t *e, bool on, int64_t now)
{
	if(on && !e->on) {
		e->stops++;
	} else if(!on && e->on) {
		e->off_since = now;
	}
	e->on = on;
	if(on && !e->open) {
		e->open = true;
		e->stops = 1;
		return EPISODE_BEGINS;
	}
	if(!on && e->open && now - e->off_since >= PLANT_CALM_MS) {
		e->open = false;
		return EPISODE_ENDS;
	}
	return EPISODE_SAME;
}

/* Backpressure on the queue's limits, with hysteresis: reading stops at the
 * limit and resumes at PLANT_RESUME_PCT percent of it.  Logged once per
 * episode (PLANT_CALM_MS), however often reading stops within it. */
static bool plant_queue_full(plant_t *p)
{
	bridge_t *b = p->b;
	if(b->cfg->queue_when_full != BCONF_FULL_BACKPRESSURE) {
		return false;
	}
	bool full = p->full.on ? !queue_has_room(b->queue, PLANT_RESUME_PCT)
	                       : queue_is_full(b->queue);
	enum episode_step step = episode_step(&p->full, full, util_mono_ms());
	if(step == EPISODE_BEGINS) {
		queue_stats_t st;
		queue_get_stats(b->queue, &st);
		blog(BLOG_WARN, "queue.full",
		     "policy=backpressure messages=%lld bytes=%llu max_messages=%lld max_bytes=%llu "
		     "action=\"not reading from the plant broker; it holds the messages\"",
		     (long long)st.messages, (unsigned long long)st.bytes,
		     (long long)b->cfg->queue_max_messages,
		     (unsigned long long)b->cfg->queue_max_bytes);
	} else if(step == EPISODE_ENDS) {
		blog(BLOG_INFO, "queue.accepting",
		     "stops=%u resume_at_pct=%d action=\"reading from the plant broker again\" "
		     "note=\"reading stopped %u times while the backlog drained\"",
		     p->full.stops, PLANT_RESUME_PCT, p->full.stops);
	}
	return full;
}

/* The end of a disk_low episode (see plant_disk_low). */
static void plant_log_disk_ok(plant_t *p, uint64_t free_bytes)
{
	blog(BLOG_INFO, "queue.disk_ok",
	     "path=%s free=%llu stops=%u action=\"reading again\" note=\"reading stopped %u times "
	     "while the disk was low\"",
	     p->b->cfg->queue_path, (unsigned long long)free_bytes, p->disk.stops, p->disk.stops);
}

/* Is the queue's disk too full to take more?  Checked at most every 20 ms. */
static bool plant_disk_low(plant_t *p)
{
	bridge_t *b = p->b;
	uint64_t min = b->cfg->queue_min_free_disk;
	int64_t now = util_mono_ms();
	/* Every 20 ms, and before every commit when near the edge: at tens of
	 * MB/s a 20 ms gap could cross a small margin in between. */
	if(min == 0 || (now - p->disk_checked < 20 && p->disk_free >= 4 * min)) {
		return p->disk.on;
	}
	p->disk_checked = now;
	uint64_t free_bytes = 0;
	if(queue_space_free(b->queue, &free_bytes) != QUEUE_OK) {
		return p->disk.on;
	}
	p->disk_free = free_bytes;
	/* Hysteresis: once low, reading resumes only with a quarter of min to
	 * spare, so the state (and its log line) does not flap at the edge. */
	uint64_t need = p->disk.on ? min + min / 4 : min;
	bool low = free_bytes < need;
	if(low && now - p->disk_checkpointed >= 1000) {
		/* Part of what is used may be the WAL, which only shrinks at a
		 * checkpoint: take back that space before deciding. */
		p->disk_checkpointed = now;
		if(queue_checkpoint(b->queue) == QUEUE_OK &&
		   queue_space_free(b->queue, &free_bytes) == QUEUE_OK) {
			low = free_bytes < need;
		}
	}
	/* Logged as an episode, as queue.full is: space a checkpoint takes back
	 * from the WAL lets reading resume, and the next commits can take it
	 * again at once; the log says queue.disk_low when reading first stops
	 * and queue.disk_ok once the disk has had room for PLANT_CALM_MS. */
	enum episode_step step = episode_step(&p->disk, low, now);
	if(step == EPISODE_BEGINS) {
		blog(BLOG_ERROR, "queue.disk_low",
		     "path=%s free=%llu min_free=%llu action=\"backpressure: not reading from the plant "
		     "broker, which holds the messages\" hint=\"free disk space on the queue's file "
		     "system\"",
		     b->cfg->queue_path, (unsigned long long)free_bytes, (unsigned long long)min);
	} else if(step == EPISODE_ENDS) {
		plant_log_disk_ok(p, free_bytes);
	}
	return low;
}

void *plant_run(void *arg)
{
	bridge_t *b = arg;
	const bconf_t *c = b->cfg;
	plant_t p = {.b = b};
	util_thread_name("pg-plant");
	if(whitelist_copy(&p.wl, &c->whitelist)) {
		blog(BLOG_ERROR, "plant.out_of_memory", NULL);
		atomic_store(&b->fatal, true);
		atomic_store(&b->stop, true);
		return NULL;
	}
	link_conf_t lc = {.name = "plant",
	                  .peer = "plant broker",
	                  .host = c->plant_host,
	                  .port = (int)c->plant_port,
	                  .keepalive_s = (int)(c->plant_keepalive_ms / 1000),
	                  .protocol = 5,
	                  .client_id = c->plant_client_id,
	                  .persistent = true,
	                  .gated = true, /* PUBACKs leave after their commit */
	                  .tls = b->secrets.plant_tls,
	                  .watch = &b->secrets.plant_watch,
	                  .failed_note = "",
	                  .state_ctr = &b->ctr.plant_state,
	                  .connects = &b->ctr.plant_connects,
	                  .failures = &b->ctr.plant_failures,
	                  .tls_failures = &b->ctr.plant_tls_failures,
	                  .owner = &p,
	                  .setup = plant_setup,
	                  .up = plant_up,
	                  .packet = plant_packet,
	                  .down = plant_down};
	link_init(&p.link, b, &lc);
	committer_start(&p);
	while(!atomic_load(&b->stop)) {
		plant_take_whitelist(&p);
		bool full = plant_queue_full(&p);
		full = plant_disk_low(&p) || full;
		plant_show_blocked(&p);
		plant_log_dropped(&p, false);
		if(!p.link.mosq) {
			/* A commit still running ends before the next connection, whose
			 * redeliveries are recognised against what it stored. */
			committer_collect(&p, true);
			link_idle(&p.link, !full);
			plant_rate(&p, 0); /* nothing comes: no pause once connected again */
			continue;
		}
		/* Read while the previous batch is being committed, up to a batch,
		 * and not while the plant broker lags behind in reading our PUBACKs
		 * (see PLANT_RECEIVE_MAXIMUM): what it has not read waits in the
		 * gate, and beyond the gate in the link's send buffer, unbounded. */
		bool want = !full && p.batch.n < PLANT_RECEIVE_MAXIMUM &&
		            p.batch.bytes < PLANT_BATCH_BYTES && !link_backlogged(&p.link);
		struct pollfd done = {.fd = p.com.done[0], .events = POLLIN};
		int64_t gap_left = plant_commit_wait_us(&p);
		/* while a pause may hold a batch, not while a commit runs (flat out:
		 * measured, more reads and 15 % more CPU for no gain) */
		p.link.quickack = !p.com.busy && plant_commit_interval_us(&p) > 0;
		bool readable;
		/* their PUBACKs wait for the commit (or, out of memory, the drop) */
		p.link.defer = p.batch.n > 0 || p.batch.oom;
		int rc = link_poll(&p.link, want, p.com.busy ? &done : NULL,
		                   gap_left > 0 ? gap_left : 100 * 1000, &readable);
		size_t before = p.batch.n;
		if(!rc && readable) {
			rc = link_read(&p.link, PLANT_RECEIVE_MAXIMUM, &p.batch.bytes, PLANT_BATCH_BYTES);
		}
		plant_rate(&p, p.batch.n > before ? p.batch.n - before : 0);
		if(rc) {
			/* Commit what was read, even though the read then failed: the
			 * broker resends what it did not see acknowledged, at worst a
			 * duplicate. */
			if(committer_collect(&p, true) >= 0 && p.link.mosq && plant_commit(&p) == 0 &&
			   p.link.mosq) {
				link_settle(&p.link, rc);
			}
			continue;
		}
		if(committer_collect(&p, false) < 0 ||
		   (!p.com.busy && plant_commit_wait_us(&p) == 0 && plant_commit_begin(&p))) {
			continue;
		}
		p.link.defer = p.batch.n > 0 || p.batch.oom;
		link_settle(&p.link, link_write(&p.link, rc));
	}
	p.link.defer = false;
	committer_collect(&p, true);
	if(p.link.mosq) {
		plant_commit(&p);
	}
	plant_log_dropped(&p, true);
	if(p.disk.open && !p.disk.on) {
		p.disk.open = false;
		plant_log_disk_ok(&p, p.disk_free);
	}
	link_close(&p.link);
	committer_stop(&p);
	batch_clear(&p.batch);
	free(p.batch.msgs);
	whitelist_clear(&p.wl);
	free(p.sub_mid);
	blog(BLOG_INFO, "plant.stopped", NULL);
	/* OpenSSL keeps per-thread state (the error queue) until told. */
	OPENSSL_thread_stop();
	return NULL;
}
