/*
 * whitelist.h — the bridge's forward rules: which plant topics may leave the
 * plant, at which QoS, under which cloud topic, up to which payload size and
 * for how long they may wait in the queue.  Nothing is forwarded that no rule
 * matches; the first matching rule (in file order) wins.
 *
 * Rule syntax (the arguments after the `forward` keyword):
 *
 *   forward <plant-filter> [qos=0|1] [strip=<plant prefix>] [prefix=<cloud prefix>]
 *           [to=<cloud topic>] [max-payload=<size>] [ttl=<duration>] [retain] [force]
 *
 * The cloud topic is prefix + (plant topic without strip), or exactly `to`.
 * Pure code: no I/O, no clock.
 */
#ifndef PG_WHITELIST_H
#define PG_WHITELIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wl_rule {
	char *filter;         /* plant-side MQTT filter, owned */
	int qos;              /* 0 or 1: QoS used towards the cloud */
	char *strip;          /* literal plant prefix removed, or NULL; owned */
	char *prefix;         /* literal cloud prefix prepended, or NULL; owned */
	char *to;             /* fixed cloud topic, or NULL; owned */
	uint64_t max_payload; /* bytes; 0 = the cloud profile's limit */
	int64_t ttl_ms;       /* 0 = no expiry */
	bool retain;          /* keep the plant message's retain flag */
	bool force;           /* accept a catch-all or $-filter */
	int line;             /* where the rule was written, for messages */
} wl_rule_t;

typedef struct whitelist {
	wl_rule_t *rules; /* owned array */
	size_t count;
} whitelist_t;

/* Parse the arguments of one `forward` line (argv[0] is the filter) into r.
 * Returns 0, or -1 with a message (without file:line) in why.  On failure r
 * holds nothing that needs freeing. */
int whitelist_rule_parse(wl_rule_t *r, int argc, char *const *argv, char *why, size_t whylen);

/* Append rule r to w, taking ownership of its strings.  -1 on ENOMEM or when a
 * rule with the same filter exists (why says so). */
int whitelist_add(whitelist_t *w, wl_rule_t *r, char *why, size_t whylen);

/* Free the rules and their strings; w is left empty.  NULL is fine. */
void whitelist_clear(whitelist_t *w);

/* Deep copy of src into dst (dst must be empty).  -1 on ENOMEM. */
int whitelist_copy(whitelist_t *dst, const whitelist_t *src);

/* The first rule whose filter matches topic name `topic`, or NULL.  Borrowed
 * pointer into w. */
const wl_rule_t *whitelist_match(const whitelist_t *w, const char *topic);

/* Build the cloud topic for `topic` under rule r into *out (allocated; the
 * caller frees it).  No fixed length limit below MQTT's 65,535 bytes.
 * Returns 0, or -1 with *out NULL and *why a reason for logs and counters:
 * "bad-cloud-topic" (empty or not a valid topic name), "cloud-topic-reserved"
 * (starts with '$' and the rule has no `force`: cloud brokers reserve $aws/,
 * $SYS/, ...), "cloud-topic-too-long", "out-of-memory". */
int whitelist_remap(const wl_rule_t *r, const char *topic, char **out, const char **why);

/* Which filters to subscribe to on the plant broker.  mosquitto delivers one
 * copy of a message per matching subscription, so a filter that another rule's
 * filter covers is left out (sub[i] false): that other subscription brings
 * its messages, and whitelist_match still picks the first matching rule.  sub
 * has w->count entries. */
void whitelist_subscriptions(const whitelist_t *w, bool *sub);

/* Pairs of subscribed rules (sub from whitelist_subscriptions) whose filters
 * overlap without one covering the other: a message matching both arrives
 * twice and is queued twice.  Calls cb (may be NULL) for each pair, earlier
 * rule first; returns how many. */
size_t whitelist_overlaps(const whitelist_t *w, const bool *sub,
                          void (*cb)(void *arg, const wl_rule_t *a, const wl_rule_t *b), void *arg);

/* Largest number of '/' a cloud topic produced by r can contain, or -1 when it
 * is unbounded (the filter ends in '#'). */
int whitelist_max_slashes(const wl_rule_t *r);

/* Format rule r back into its config syntax (without "forward "). */
int whitelist_rule_format(const wl_rule_t *r, char *out, size_t outlen);

#endif
