/*
 * policy.h — the compiled device policy: who may publish, subscribe to and
 * receive which topics.  Pure core: no mosquitto, no network, no clock.
 *
 * Contract used by the plugin glue (acl.c, auth.c) and plantgate-policy:
 *  - A policy is loaded once, validated completely, and is then immutable; the
 *    plugin swaps a whole new policy in on reload (never edits one in place).
 *  - Every check is keyed on the identity recorded at connect (the certificate
 *    identity the plugin set as username) and the MQTT client id, never on
 *    the live certificate, so queued deliveries of an offline session are
 *    checked exactly like live ones.
 *  - Substituted values (identity, client id, attributes) are only ever compared
 *    literally against topic levels: they can never act as wildcards.
 *  - Deny wins over allow; nothing matching is a deny.  Invalid input is a deny.
 */
#ifndef PG_POLICY_H
#define PG_POLICY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct policy policy_t;

typedef enum policy_access {
	POLICY_PUBLISH = 1,   /* client sends PUBLISH to topic */
	POLICY_SUBSCRIBE = 2, /* client sends SUBSCRIBE with filter (may be $share/g/f) */
	POLICY_READ = 3,      /* broker delivers a message on topic to the client */
} policy_access_t;

typedef struct policy_request {
	policy_access_t access;
	const char *topic; /* topic name (PUBLISH/READ) or filter (SUBSCRIBE); borrowed */
	int qos;           /* 0..2 */
	bool retain;
	size_t payloadlen;
} policy_request_t;

typedef struct policy_decision {
	bool allow;
	const char *reason;    /* static text, e.g. "no rule grants it", "denied by rule" */
	const char *rule_file; /* borrowed from the policy; NULL when no rule decided */
	int rule_line;         /* 0 when no rule decided */
} policy_decision_t;

/* Load and compile a policy file.  On error returns NULL and writes
 * "file:line: what is wrong" to err.  The caller owns the result. */
policy_t *policy_load_file(const char *path, char *err, size_t errlen);

/* Same from memory; `name` is used as the file name in messages. */
policy_t *policy_load_buffer(const char *name, const char *buf, size_t len, char *err,
                             size_t errlen);

/* Free a policy; NULL is fine. */
void policy_free(policy_t *p);

/* An attribute such as site=hq or line=line1. */
typedef struct policy_attr {
	const char *key;
	const char *value;
} policy_attr_t;

/* Who is asking: all borrowed.  attrs are those the certificate carries (site
 * from the subject's L, line from its OU); attributes the policy file sets for
 * the device take precedence over them. */
typedef struct policy_subject {
	const char *identity; /* the verified identity recorded at connect */
	const char *clientid; /* the MQTT client id */
	const policy_attr_t *attrs;
	size_t nattrs;
} policy_subject_t;

/* May this client connect at all?  Returns true, or false with *reason set to
 * static text (e.g. "identity not in policy and unknown devices are refused"). */
bool policy_admit(const policy_t *p, const policy_subject_t *who, const char **reason);

/* Decide one access; out is filled.  Cost is O(topic levels), independent of
 * the number of rules and devices. */
void policy_check(const policy_t *p, const policy_subject_t *who, const policy_request_t *req,
                  policy_decision_t *out);

typedef struct policy_stats {
	size_t roles;   /* role definitions */
	size_t devices; /* device entries (exact identities) */
	size_t matches; /* identity-pattern entries */
	size_t rules;   /* allow + deny rules over all roles */
} policy_stats_t;

void policy_get_stats(const policy_t *p, policy_stats_t *out);

#endif
