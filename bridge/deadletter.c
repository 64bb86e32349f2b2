/*
 * deadletter.c — `plantgate-bridge deadletter ...`: the operator's commands
 * for messages the bridge set aside because the cloud would never take them
 * (queue.h, "dead letters"; docs/bridge.md, "Dead letters").
 *
 *   plantgate-bridge deadletter list            -c FILE   one line each
 *   plantgate-bridge deadletter show SEQ        -c FILE   ... and the payload
 *   plantgate-bridge deadletter replay SEQ|all  -c FILE   back into the queue
 *   plantgate-bridge deadletter purge SEQ|all   -c FILE   delete for good
 *
 * list and show only read, and work beside a running bridge.  replay and
 * purge change the queue file, so they need the bridge stopped (the queue's
 * lock says so).  A replayed message gets a new sequence number: consumers
 * drop a seq at or below the highest they have seen, so the old one would be
 * thrown away as a duplicate.
 */
#include "deadletter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bconf.h"
#include "blog.h"
#include "queue.h"
#include "util.h"

static void dl_usage(FILE *f)
{
	fprintf(f, "usage: plantgate-bridge deadletter list|show SEQ|replay SEQ|all|purge SEQ|all "
	           "-c FILE\n"
	           "  list     the messages set aside because the cloud would not take them\n"
	           "  show     one of them, with its payload\n"
	           "  replay   put it (or all) back at the end of the queue, under a new sequence "
	           "number\n"
	           "           (stop the bridge first; it sends them when started)\n"
	           "  purge    delete it (or all) for good (stop the bridge first)\n");
}

static const char *dl_time(int64_t ms, char *out, size_t outlen)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if(!gmtime_r(&t, &tm) || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		snprintf(out, outlen, "%lld", (long long)ms);
	}
	return out;
}

typedef struct dl_print {
	bool payload;
	int64_t n;
} dl_print_t;

static void dl_print(void *arg, const queue_dead_t *d)
{
	dl_print_t *p = arg;
	char t1[32], t2[32], q1[600], q2[600], q3[300], q4[300];
	p->n++;
	printf("seq=%lld attempts=%d reason=%s first_failure=%s last_failure=%s topic=%s "
	       "cloud_topic=%s device=%s size=%zu qos=%d\n",
	       (long long)d->msg.seq, d->attempts, util_log_quote(d->reason, q3, sizeof(q3)),
	       dl_time(d->first_failure_ms, t1, sizeof(t1)), dl_time(d->last_failure_ms, t2, sizeof(t2)),
	       util_log_quote(d->msg.local_topic, q1, sizeof(q1)),
	       util_log_quote(d->msg.remote_topic, q2, sizeof(q2)),
	       util_log_quote(d->msg.device && d->msg.device[0] ? d->msg.device : "-", q4, sizeof(q4)),
	       d->msg.len, d->msg.qos);
	if(p->payload) {
		/* Printable ASCII as is, the rest as \xNN, so a terminal is safe. */
		fputs("payload=\"", stdout);
		const unsigned char *b = d->msg.payload;
		for(size_t i = 0; i < d->msg.len; i++) {
			if(b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' && b[i] != '\\') {
				putchar(b[i]);
			} else {
				printf("\\x%02x", b[i]);
			}
		}
		fputs("\"\n", stdout);
	}
}

int deadletter_main(int argc, char **argv)
{
	const char *path = NULL, *action = NULL, *which = NULL;
	for(int i = 1; i < argc; i++) {
		if(strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if(strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			dl_usage(stdout);
			return 0;
		} else if(!action) {
			action = argv[i];
		} else if(!which) {
			which = argv[i];
		} else {
			dl_usage(stderr);
			return 2;
		}
	}
	bool list = action && strcmp(action, "list") == 0;
	bool show = action && strcmp(action, "show") == 0;
	bool replay = action && strcmp(action, "replay") == 0;
	bool purge = action && strcmp(action, "purge") == 0;
	int64_t seq = 0;
	if(!path || !(list || show || replay || purge) || (list && which) || (!list && !which) ||
	   (which && !(strcmp(which, "all") == 0 && !show) &&
	    util_parse_i64(which, 1, INT64_MAX, &seq))) {
		dl_usage(stderr);
		return 2;
	}
	static char err[16384];
	static bconf_t cfg;
	if(bconf_load(path, &cfg, err, sizeof(err))) {
		fputs(err, stderr);
		return 1;
	}
	queue_t *q = NULL;
	queue_rc_t qrc;
	int rc = 1;
	if(list || show) {
		qrc = queue_open_readonly(cfg.queue_path, &q, err, sizeof(err));
	} else {
		queue_limits_t lim = {.max_bytes = cfg.queue_max_bytes,
		                      .max_messages = cfg.queue_max_messages};
		qrc = queue_open(cfg.queue_path, &lim, &q, err, sizeof(err));
	}
	if(qrc != QUEUE_OK) {
		fprintf(stderr, "plantgate-bridge deadletter: %s\n", err);
		goto out;
	}
	if(list || show) {
		dl_print_t p = {.payload = show};
		qrc = queue_dead_list(q, seq, 0, dl_print, &p);
		if(qrc == QUEUE_OK && show && p.n == 0) {
			fprintf(stderr, "plantgate-bridge deadletter: no dead letter with seq %lld\n",
			        (long long)seq);
			goto out;
		}
		if(qrc == QUEUE_OK && list) {
			printf("%lld dead letter%s in %s\n", (long long)p.n, p.n == 1 ? "" : "s",
			       cfg.queue_path);
		}
	} else {
		int64_t n = 0;
		qrc = replay ? queue_dead_replay(q, seq, &n) : queue_dead_purge(q, seq, &n);
		if(qrc == QUEUE_OK) {
			printf("%s %lld dead letter%s%s\n", replay ? "replayed" : "purged", (long long)n,
			       n == 1 ? "" : "s",
			       replay && n ? " (at the end of the queue, under new sequence numbers; "
			                     "sent when the bridge runs)"
			                   : "");
			if(n == 0 && seq) {
				fprintf(stderr, "plantgate-bridge deadletter: no dead letter with seq %lld\n",
				        (long long)seq);
				goto out;
			}
		}
	}
	if(qrc != QUEUE_OK) {
		fprintf(stderr, "plantgate-bridge deadletter: %s: %s\n", cfg.queue_path,
		        queue_strerror(qrc));
		goto out;
	}
	rc = 0;
out:
	queue_close(q);
	bconf_free(&cfg);
	return rc;
}
