/*
 * topic.h — MQTT topic names and topic filters, as the MQTT 3.1.1/5 specs define
 * them.  Pure functions: no allocation, no I/O.  Used by the plugin's policy
 * engine and the bridge's whitelist, so both agree on what a topic means.
 */
#ifndef PG_TOPIC_H
#define PG_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

/* Longest topic we accept anywhere (MQTT allows 65535 bytes). */
#define TOPIC_MAX_LEN 65535

/* True when `topic` is a valid topic *name* (for PUBLISH): non-empty, valid
 * UTF-8, no NUL/U+0000, no '+' or '#'. */
bool topic_valid_name(const char *topic);

/* True when `filter` is a valid topic *filter* (for SUBSCRIBE): non-empty, valid
 * UTF-8, '+' only as a whole level, '#' only as the whole last level. */
bool topic_valid_filter(const char *filter);

/* True when topic name `topic` matches `filter` under MQTT rules, including the
 * rule that a filter starting with a wildcard never matches a topic starting
 * with '$'.  Both strings are borrowed; callers validate them first
 * (topic_valid_name / topic_valid_filter).  NULL or empty never matches. */
bool topic_matches(const char *filter, const char *topic);

/* True when every topic matched by filter `inner` is also matched by filter
 * `outer` (e.g. a/+/c ⊆ a/#).  Used to check that a subscription stays within a
 * grant.  Conservative: false when it cannot prove inclusion. */
bool topic_filter_covers(const char *outer, const char *inner);

/* True when some topic name matches both filters (e.g. a/+/c and a/b/#):
 * a client subscribed to both gets such a message twice.  Exact. */
bool topic_filters_overlap(const char *a, const char *b);

/* Number of levels ('/'-separated parts) in a topic or filter; 0 for NULL. */
size_t topic_levels(const char *topic);

/* If `filter` is `$share/<group>/<f>`, return a pointer to <f> inside it and set
 * *group and *group_len; otherwise return `filter` unchanged and set *group to NULL.
 * Returns NULL for a malformed shared subscription ($share/ without group or
 * filter, or a group containing '+' or '#'). */
const char *topic_strip_share(const char *filter, const char **group, size_t *group_len);

#endif
