/*
 * http.h — the bridge's operator HTTP endpoints, served by libwebsockets on
 * a thread of their own:
 *
 *   /healthz  200 "ok" when both links are up and the queue is below its
 *             warning levels, else 503 and one line saying why
 *   /metrics  Prometheus text format 0.0.4
 *   /         a self-contained live status page (no external resources)
 *   /ws       WebSocket: the page's data, a history message on connect, then
 *             one sample per second
 *
 * The thread only reads: the counters atomically and the queue's statistics
 * through its internal lock, so it never blocks the plant or cloud threads.
 * A one-second sampler keeps the last ten minutes in a ring buffer, so a page
 * opened now shows history at once.
 */
#ifndef PG_HTTP_H
#define PG_HTTP_H

#include <stddef.h>

#include "bridge.h"

typedef struct http http_t;

/* Create the server and bind http_listen (with TLS files loaded), before any
 * privilege drop; nothing is served until http_start.  Borrows b, which must
 * outlive the server.  Returns 0 and *out (free with http_stop), or -1 with
 * the reason in err. */
int http_create(bridge_t *b, http_t **out, char *err, size_t errlen);

/* Start serving on a new thread.  Returns 0 or -1. */
int http_start(http_t *h);

/* Stop the thread (if started) and free everything.  NULL is fine. */
void http_stop(http_t *h);

#endif
