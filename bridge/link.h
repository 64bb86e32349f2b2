/*
 * link.h — one MQTT connection of the bridge, as the plant and cloud threads
 * both use it: the libmosquitto lifecycle (a fresh client per attempt,
 * threaded mode, the TLS context loaded at start), reconnect backoff, the
 * reason a connection failed (logged once per distinct reason), the write
 * buffer below TLS, and the pieces of one turn of the thread's loop:
 *
 *     link_idle()  when there is no connection: connect when the backoff
 *                  allows, else sleep a little
 *     link_poll()  wait for the socket (and one extra fd), not at all when
 *                  TLS holds decrypted data that poll() cannot see
 *     link_read()  read what has arrived, up to a bound (group commit)
 *     ...          the protocol's own work (plant: commit; cloud: send)
 *     link_write() let out what libmosquitto queued, then keepalive
 *     link_settle() if the turn or a callback found the connection gone,
 *                  drop it (or count a failed attempt) and schedule the next
 *
 * plant.c and cloud.c keep only their protocol: what to set on a new client
 * (link_conf_t.setup), what to do once connected (.up) and what to forget
 * when the connection goes (.down).  Log events are "<name>.connected"
 * (written by .up), "<name>.disconnected", "<name>.connect_failed" and
 * "<name>.lib" (libmosquitto's own debug lines).
 *
 * A link belongs to one thread; only the counters it points at are shared.
 */
#ifndef PG_LINK_H
#define PG_LINK_H

#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backoff.h"
#include "bridge.h"

struct mosquitto;
struct mqtt5__property;
struct ssl_ctx_st;

/* Bytes of the write buffer put below TLS once the handshake is done, so
 * the PUBACKs of a batch (plant) or the publishes of a page (cloud) leave in
 * one write() instead of one each. */
#define LINK_TLS_WBUF (64 * 1024)
/* At most this many bytes in a gate (link_conf_t.gated) before a write has
 * to wait for the socket, as it would on a full socket. */
#define LINK_GATE_MAX (1024 * 1024)
/* Raw mode: the read buffer's usual size; it grows for a larger packet up
 * to link_conf_t.rx_max. */
#define LINK_RAW_RX (64 * 1024)
/* A gated link is backlogged (link_backlogged) while its gate holds at least
 * this many bytes the socket has not taken yet: the peer reads our writes
 * more slowly than it sends.  Half the gate, so that what libmosquitto
 * queues meanwhile still fits in the gate instead of its own queue. */
#define LINK_GATE_BACKLOG (LINK_GATE_MAX / 2)

typedef struct link_conf {
	const char *name;  /* "plant" or "cloud": the log events' prefix and the config keys' */
	const char *peer;  /* "plant broker", "cloud": who refused, in reasons */
	const char *host;
	int port;
	int keepalive_s;
	int protocol;      /* 5 or 4 (MQTT 3.1.1) */
	const char *client_id;
	bool persistent;   /* clean start off and a session that never expires */
	/* The write buffer below TLS is a gate (gate.h): link_hold() and
	 * link_release() hold acknowledgements back until their commit. */
	bool gated;
	/* Raw mode: the largest packet taken from the peer, announced in an MQTT
	 * 5 CONNECT as Maximum Packet Size; 0: MQTT's own limit, not announced
	 * (the plant: a broker drops, unseen, what exceeds the announcement,
	 * where the bridge logs and counts what it refuses). */
	size_t rx_max;
	/* Borrowed; loaded before the privilege drop.  NULL only with .connect,
	 * whose relay does TLS itself (cloud through a tunnel, tunnel.h). */
	struct ssl_ctx_st *tls;
	/* What the handshakes on `tls` said (secrets.h); borrowed; NULL when
	 * the link does no TLS itself. */
	secrets_tls_watch_t *watch;
	const char *failed_note; /* said first in connect_failed's note ("" or "...; ") */
	/* Counters for /metrics, borrowed from bridge_t. */
	atomic_int *state_ctr;
	atomic_uint_fast64_t *connects, *failures, *tls_failures;
	/* The protocol.  The libmosquitto callbacks it sets get the link_t as
	 * their obj: link_owner(obj) is `owner`. */
	void *owner;
	/* Options, callbacks and credentials of a new client; a libmosquitto
	 * error code (then the attempt counts as failed).  May be NULL. */
	int (*setup)(void *owner, struct mosquitto *mosq);
	/* Instead of connecting to host:port: open the way out and connect the
	 * client (the cloud's tunnel, tunnel.h).  A libmosquitto error code, and
	 * then a one-line reason in reason[0..len) (empty: use libmosquitto's).
	 * It connects without properties: not for a persistent link.  May be
	 * NULL. */
	int (*connect)(void *owner, struct mosquitto *mosq, char *reason, size_t len);
	/* CONNACK accepted: log "<name>.connected", subscribe.  failures_since_up
	 * and down_since still describe the outage; props are the CONNACK's
	 * (MQTT 5; NULL otherwise).  May be NULL. */
	void (*up)(void *owner, int flags, const struct mqtt5__property *props);
	/* Raw mode (link_raw_start): a packet the link does not handle itself
	 * (it handles PINGRESP and DISCONNECT): header is the fixed header's
	 * first byte, body[0..len) the rest.  Returns MOSQ_ERR_SUCCESS, or an
	 * error with l->cb_reason set (the connection is then dropped).  May be
	 * NULL when the protocol never starts raw mode. */
	int (*packet)(void *owner, uint8_t header, const uint8_t *body, uint32_t len);
	/* The client was destroyed: forget what belonged to the connection.
	 * May write key=value fields for the "<name>.disconnected" line into
	 * detail (empty by default).  May be NULL. */
	void (*down)(void *owner, char *detail, size_t detail_len);
} link_conf_t;

typedef struct link {
	link_conf_t conf;
	bridge_t *b;
	struct mosquitto *mosq; /* NULL while down */
	int state;              /* enum link_state */
	bool lost;              /* a callback or the protocol says: connection gone */
	/* Connected only to retry (the plant's queue cannot be written): keep the
	 * backoff growing and the connect/disconnect lines at debug level. */
	bool quiet;
	backoff_t bo;
	int64_t next_attempt; /* monotonic ms */
	int64_t down_since;   /* monotonic ms */
	unsigned failures_since_up;
	bool warned_no_client_cert; /* "<name>.no_client_certificate" said once */
	char cb_reason[512];     /* why, as told by a callback (CONNACK, DISCONNECT) or the protocol */
	uint8_t peer_reason;     /* the peer's DISCONNECT reason code (MQTT 5); 0: none */
	char logged_reason[512]; /* the last connect failure logged */
	char lib_error[256];     /* the last error libmosquitto logged */
	/* link_hold() took effect: libmosquitto's queue (raw mode: the send
	 * buffer) is not written and the gate holds what was, until
	 * link_release(). */
	bool holding;
	/* Set by the protocol: libmosquitto's queue, or raw mode's send buffer,
	 * is not written for now (the plant's PUBACKs of a batch whose commit has
	 * not started yet). */
	bool defer;
	/* Ask the kernel to acknowledge each read at once (TCP_QUICKACK) while
	 * our PUBACKs are held for a pause: the peer's Nagle would otherwise keep
	 * its next message until they leave (set by the owner). */
	bool quickack;
	/* Raw mode (link_raw_start): after the CONNACK the protocol encodes its
	 * packets itself into tx and the link reads and frames what arrives in
	 * rx; libmosquitto only holds the socket and the TLS session. */
	bool raw;
	uint8_t *rx;
	size_t rx_len, rx_cap;
	uint8_t *tx;
	size_t tx_off, tx_len, tx_cap;
	/* Bytes ever put into tx / handed to TLS (or the socket): a packet whose
	 * end is at most tx_pushed has left our hands. */
	uint64_t tx_queued, tx_pushed;
	int64_t last_in, last_out, ping_at; /* monotonic ms; ping_at 0: no PINGREQ outstanding */
} link_t;

/* libmosquitto formats a line for every packet it sends or receives once a
 * log callback is set (a malloc and a printf each: ~10 % of the bridge's CPU
 * in the relay benchmark).  Every new client starts with the callback on:
 * the connect's errors come from those lines.  The protocol turns it off
 * once connected; off, libmosquitto's own
 * error text is missing from a later disconnect reason.  At log_level
 * debug it stays on (the lines are logged as "<name>.lib"). */
void link_lib_log_off(link_t *l);

/* Set up *l (down, first attempt due now) with a copy of conf; backoff from
 * b's configuration.  Nothing to free until link_close. */
void link_init(link_t *l, bridge_t *b, const link_conf_t *conf);

/* The owner of the link_t that libmosquitto passes as obj. */
void *link_owner(void *obj);

/* No connection: start one when the backoff allows and `may_connect`, else
 * sleep until then (at most 100 ms). */
void link_idle(link_t *l, bool may_connect);

/* Wait up to timeout_us (µs) for the socket: readable (when `want_read`),
 * writable (when anything is queued), or `extra` (may be NULL; its revents
 * are set).  *readable says whether to call link_read.  Returns a
 * libmosquitto error code. */
int link_poll(link_t *l, bool want_read, struct pollfd *extra, int64_t timeout_us, bool *readable);

/* mosquitto_loop_read() reads one packet per call (plus what TLS already
 * decrypted).  This keeps reading while the socket or TLS has data, up to
 * max_reads packets, so one commit (plant) or one delete transaction (cloud)
 * covers everything that arrived together.  With `bytes` non-NULL (updated
 * by the message callback), also stops once *bytes reaches max_bytes.
 * Returns the first error, or MOSQ_ERR_SUCCESS. */
int link_read(link_t *l, int max_reads, const size_t *bytes, size_t max_bytes);

/* Unless rc is already an error: write what libmosquitto queued (through the
 * TLS write buffer), then its keepalive work.  Returns the first error. */
int link_write(link_t *l, int rc);

/* On a gated link: write what libmosquitto has queued now, or in raw mode
 * the send buffer (the PUBACKs of the batch about to be committed), into the
 * gate and hold it there; until link_release(), nothing queued later is
 * written (link_write and link_poll leave it queued).  False when the link has no gate (no TLS
 * yet, or out of memory): then nothing changed and the caller commits in
 * line.  A failed write marks the link lost. */
bool link_hold(link_t *l);

/* The commit returned: let what link_hold() held leave, now.  Returns a
 * libmosquitto error code. */
int link_release(link_t *l);

/* True while a gated link's gate holds LINK_GATE_BACKLOG bytes or more that
 * the socket has not taken (held or not): the peer is not reading what we
 * write as fast as we produce it.  Whatever libmosquitto cannot put into a
 * full gate waits in its own queue, ~80 bytes of heap per PUBACK and without
 * a bound, so the caller stops reading until this is false again. */
bool link_backlogged(const link_t *l);

/* When rc is an error or l->lost is set, drop the connection (it was up) or
 * count a failed attempt (it was not), with the most specific reason known,
 * and schedule the next attempt.  Returns true when the link went down. */
bool link_settle(link_t *l, int rc);

/* Destroy the client without writing anything more (queued PUBACKs are
 * thrown away: the plant broker redelivers), log "<name>.disconnected" if it
 * was up, call .down, and schedule the next attempt with backoff. */
void link_drop(link_t *l, const char *reason);

/* Graceful end: write what is queued, send DISCONNECT, destroy the client,
 * free the raw mode's buffers. */
void link_close(link_t *l);

/* --- raw mode ---------------------------------------------------------------
 * libmosquitto writes one TLS record per packet and reads every packet in
 * three SSL_read calls.  A protocol that sends many packets at a time (the
 * cloud: a page of publishes; the plant: a batch's PUBACKs) calls
 * link_raw_start() once connected (from .up); from then on libmosquitto's loop is no longer run on this client:
 * the protocol encodes its packets into the link's buffer
 * (link_raw_reserve / link_raw_commit), link_write() hands the whole buffer
 * to TLS in one SSL_write (a few records for many packets) and does the
 * keepalive, and link_read() reads as much as has arrived, frames it and
 * passes each packet to conf.packet.  The connect, its TLS handshake, its
 * failure reasons and the client's destruction stay libmosquitto's. */

/* Switch to raw mode; MOSQ_ERR_NOMEM when the buffers cannot be had (the
 * caller then drops the connection). */
int link_raw_start(link_t *l);

/* Room for n bytes at the end of the send buffer (NULL: out of memory);
 * link_raw_commit(l, n) then adds what was written there. */
uint8_t *link_raw_reserve(link_t *l, size_t n);
void link_raw_commit(link_t *l, size_t n);
/* Queue a packet of a few bytes (a copy of p[0..n)); MOSQ_ERR_NOMEM, with
 * the reason set, when there is no room. */
int link_raw_put(link_t *l, const uint8_t *p, size_t n);

#endif
