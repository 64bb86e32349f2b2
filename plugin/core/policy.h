/*
 * policy.h — the compiled device policy: who may publish, subscribe to and
 * receive which topics.  Pure core: no mosquitto, no network, no clock.
 *
 * Contract used by the plugin glue (acl.c, auth.c), plantgate-policy and
 * plantgate-doctor (which reads the policy only through the iterators below).
 * Inside: policy_parse.c reads the file, policy.c decides, policy_opt.c holds
 * the rule options (docs/internals.md):
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
	/* Added by the policy engine (fields only appended): */
	const char *rule_text; /* the deciding rule as written, borrowed; NULL when none */
	long long limit;       /* the maximum a constraint denial exceeded (QoS or
	                          bytes); -1 otherwise */
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
	/* Added: */
	const char *unknown_role; /* role of unlisted identities; NULL = refused */
	int unknown_line;         /* where unknown-devices is written; 0 = not written */
} policy_stats_t;

void policy_get_stats(const policy_t *p, policy_stats_t *out);

/* ---- Additions: resolve once per client, explain decisions ------------------
 *
 * policy_check() finds the client's entry on every call: an hmap lookup for a
 * listed device, but a walk over the `devices matching` patterns otherwise.
 * The plugin should instead resolve once at connect and keep the pointer:
 *
 *     const policy_binding_t *b = policy_resolve(p, &who);   // at connect
 *     if(!b) refuse;                                          // = !policy_admit
 *     policy_check_resolved(p, b, &who, &req, &dec);          // per ACL check
 *
 * A binding belongs to the policy it came from: after a reload, resolve again
 * against the new policy before checking (never mix a binding with another
 * policy; policy_check_resolved denies a binding it does not own).
 */

/* The policy entry that applies to one identity (a device line, a pattern, or
 * the unknown-devices role) with its role and attributes.  Opaque. */
typedef struct policy_binding policy_binding_t;

/* Find the entry for who->identity: an exact `device` entry first, then the
 * first `devices matching` pattern in file order, then the unknown-devices
 * role.  Returns NULL when the identity is refused (unknown devices refused,
 * or identity NULL/empty).  The result is borrowed from p: valid until
 * policy_free(p).  Only who->identity is used. */
const policy_binding_t *policy_resolve(const policy_t *p, const policy_subject_t *who);

/* policy_check() for an already resolved binding: O(topic levels).  `who`
 * still supplies the identity, client id and certificate attributes for
 * substitution.  A NULL binding is a deny. */
void policy_check_resolved(const policy_t *p, const policy_binding_t *b,
                           const policy_subject_t *who, const policy_request_t *req,
                           policy_decision_t *out);

/* ---- Per-client memo of topic decisions (issue 14) ---------------------
 *
 * A device publishes to the same few topics, and a subscriber receives the
 * same topics, message after message; policy_check_resolved() splits the
 * topic and walks the role's tries every time.  A memo remembers, per topic,
 * what the walks found — the earliest matching deny rule, or the allow rules
 * that matched — so that a repeated PUBLISH or READ check costs one hash and
 * one comparison of the topic.  The rules' options (QoS, retain, payload
 * size) are still applied to every request, and the topic's bytes are
 * compared in full: the decision is exactly policy_check_resolved()'s.
 *
 * A memo belongs to one subject (identity, client id and certificate
 * attributes, as in policy_subject_t): the caller clears it whenever those
 * change.  It empties itself when asked with another policy or binding than
 * the one it was filled for — a policy is told apart by a serial number
 * given at load, not only by its address, which a freed policy may pass on
 * to the next one — so a reload can never leave a stale decision behind.
 *
 * Bounded: at most POLICY_MEMO_MAX topics (POLICY_MEMO_PUB_MAX grown by
 * publishes, which the client chooses), each at most POLICY_MEMO_TOPIC
 * bytes; longer topics, SUBSCRIBE checks and topics matching more than a few
 * allow rules are decided without it.  Not thread-safe (one memo per client,
 * used from the broker's one thread). */
typedef struct policy_memo policy_memo_t;
#define POLICY_MEMO_MAX 256
#define POLICY_MEMO_PUB_MAX 8
#define POLICY_MEMO_TOPIC 78

/* A new, empty memo (no table until first used), or NULL on ENOMEM.  The
 * caller frees it with policy_memo_free (NULL is fine). */
policy_memo_t *policy_memo_new(void);
void policy_memo_free(policy_memo_t *m);
/* Forget every decision (the subject changed).  NULL is fine. */
void policy_memo_clear(policy_memo_t *m);
/* Topics remembered (for tests and statistics). */
size_t policy_memo_count(const policy_memo_t *m);

/* policy_check_resolved() through memo m (NULL: no memo).  Same answer. */
void policy_check_memo(const policy_t *p, const policy_binding_t *b, const policy_subject_t *who,
                       const policy_request_t *req, policy_memo_t *m, policy_decision_t *out);

typedef enum policy_binding_kind {
	POLICY_BINDING_DEVICE = 1,  /* `device ID role R` */
	POLICY_BINDING_PATTERN = 2, /* `devices matching GLOB role R` */
	POLICY_BINDING_UNKNOWN = 3, /* `unknown-devices role R` */
} policy_binding_kind_t;

typedef struct policy_binding_info {
	policy_binding_kind_t kind;
	const char *entry; /* the identity or glob; NULL for UNKNOWN */
	const char *role;  /* role name */
	const char *file;  /* where the entry is written */
	int line;
	/* Added: the entry's key=value attributes as written in the policy
	 * (not the certificate's); borrowed. */
	const policy_attr_t *attrs;
	size_t nattrs;
} policy_binding_info_t;

/* Do binding a (of policy pa) and binding b (of policy pb) grant the same
 * rights: the same role name, the same rules in that role (compared by a
 * SHA-256 of their text, in order), and the same policy-file attributes?
 * A reload disconnects connected clients for which this is false.  NULL
 * bindings never have the same rights. */
bool policy_binding_same_rights(const policy_t *pa, const policy_binding_t *a, const policy_t *pb,
                                const policy_binding_t *b);

/* The flood limits for a binding: the device line's `rate<=N/s` and
 * `bytes<=SIZE/s` if given, else its role's `limit` line, else -1 (use the
 * plugin's defaults).  0 means unlimited. */
void policy_binding_limits(const policy_binding_t *b, double *rate, double *bytes);

/* Describe a binding (all strings borrowed from the policy). */
void policy_binding_get_info(const policy_binding_t *b, policy_binding_info_t *out);

typedef struct policy_role_info {
	const char *name;
	const char *file;
	int line;
	size_t allow_rules;
	size_t deny_rules;
} policy_role_info_t;

/* ---- Iterators: what the policy says, in file order ------------------------
 *
 * For tools that reason about a policy (plantgate-policy, plantgate-doctor):
 * they read what the engine parsed instead of parsing the file again.  Each
 * takes an index from 0 and answers false (or NULL) past the end:
 *
 *     policy_rule_info_t ri;
 *     for(size_t i = 0; policy_rule_at(p, i, &ri); i++) ...
 *
 * All strings are borrowed from the policy: valid until policy_free(p).
 */

/* The i-th role in file order; false when i is out of range. */
bool policy_role_at(const policy_t *p, size_t i, policy_role_info_t *out);

/* The i-th entry that binds identities to a role, in file order: `device`,
 * `devices matching` and `unknown-devices role` lines (not `unknown-devices
 * refuse`, which binds nothing).  Describe it with policy_binding_get_info;
 * check with it like with policy_resolve's result.  NULL past the end. */
const policy_binding_t *policy_binding_at(const policy_t *p, size_t i);

typedef struct policy_rule_info {
	const char *role; /* the role the rule belongs to */
	bool deny;
	policy_access_t access;
	const char *filter; /* the topic filter as written (may hold %{name} levels) */
	const char *text;   /* the whole rule as written */
	const char *file;
	int line;
} policy_rule_info_t;

/* The i-th allow or deny rule of any role, in file order; false when i is out
 * of range. */
bool policy_rule_at(const policy_t *p, size_t i, policy_rule_info_t *out);

/* Name of an access: "publish", "subscribe", "read" (or "?"). */
const char *policy_access_name(policy_access_t a);

/* One line for logs and the CLI, e.g.
 *   "qos 2 above max 1 (policy.conf:12: publish plant/+/x qos<=1)"
 *   "denied by rule (policy.conf:30: deny read plant/+/+/+/command/#)"
 *   "no rule grants it"
 * Returns the length written, or -1 when truncated (still NUL-terminated). */
int policy_decision_format(const policy_decision_t *d, const policy_request_t *req, char *buf,
                           size_t len);

#endif
