/*
 * tunnel.h — the cloud link's way out of plants that let only HTTPS through:
 * MQTT over WebSockets (cloud_transport wss) and/or an HTTP CONNECT proxy
 * (cloud_proxy).  libmosquitto 2.0.11 has neither, so the bridge opens the way
 * out itself and runs a small relay per connection that libmosquitto reaches
 * on 127.0.0.1, speaking plain MQTT to it:
 *
 *   libmosquitto --MQTT--> relay --TLS [+WebSocket] [via CONNECT]--> cloud
 *
 * The relay does TLS with the very SSL_CTX libmosquitto uses for a direct
 * connection (secrets.c: pinned CA, client certificate, host name check,
 * minimum version, ALPN) and sends the cloud's name as SNI.  (libmosquitto's
 * SOCKS5 support would have let it keep TLS for itself through a proxy, but
 * 2.0.11 leaks the SOCKS host string of every destroyed client, and the
 * cloud link makes a new client per connection.)
 *
 * The loopback listener accepts exactly one connection, and only the one
 * whose address is libmosquitto's own socket of this connection; anything
 * else is closed and logged.  The relay moves bytes in order and never
 * acknowledges anything: the queue's persist-before-ack and ordering are
 * exactly those of a direct connection (cloud.c is unchanged but for the
 * connect call).
 *
 * Owned by the cloud thread: tunnel_ctx_new at start, tunnel_connect instead
 * of bridge_connect, tunnel_close after mosquitto_destroy.
 */
#ifndef PG_TUNNEL_H
#define PG_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>

#include "bridge.h"

struct mosquitto;
typedef struct tunnel_ctx tunnel_ctx_t;
typedef struct tunnel tunnel_t;

/* What the cloud link needs from the configuration and secrets; logs how
 * the cloud is reached (transport, proxy, and where no_proxy came from).
 * *out stays NULL when the cloud is reached directly over tls, as before.
 * Returns 0, or -1 on out of memory.  Borrows b for its lifetime. */
int tunnel_ctx_new(bridge_t *b, tunnel_ctx_t **out);
void tunnel_ctx_free(tunnel_ctx_t *tc);

/* True when libmosquitto must do TLS itself (tls transport), false when the
 * relay does (wss: libmosquitto speaks plain MQTT to the relay).  NULL: true. */
bool tunnel_lib_tls(const tunnel_ctx_t *tc);

/* Open the way to the cloud (proxy, CONNECT, TLS and upgrade for wss), then
 * connect mosq to the relay (mosquitto_connect_bind_v5 through
 * bridge_connect) and start the relay's thread.  Bounded in time; gives up
 * early when the bridge stops.  Returns a MOSQ_ERR_* code (0 = connected,
 * waiting for CONNACK) and on failure a one-line reason; proxy failures are
 * also logged on their own line (once per change) and counted.  On success
 * *out is the tunnel; close it with tunnel_close after mosquitto_destroy. */
int tunnel_connect(tunnel_ctx_t *tc, struct mosquitto *mosq, int keepalive, tunnel_t **out,
                   char *reason, size_t reasonlen);

/* The metric label of an enum bridge_proxy_fail. */
const char *tunnel_proxy_fail_name(int f);

/* Stop the relay (what libmosquitto wrote before is sent first, for at most
 * a second), join its thread, free everything.  NULL is fine. */
void tunnel_close(tunnel_t *t);

#endif
