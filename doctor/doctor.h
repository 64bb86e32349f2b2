/*
 * doctor.h — plantgate-doctor, the security self-assessment of a deployment.
 *
 * The doctor reads what the plant actually runs (mosquitto.conf, the plugin's
 * policy, revocation list and audit trail, the PKI directory, the bridge
 * configuration and, where reachable on loopback, the running broker and
 * bridge) and reports findings in the terms of the JPCERT/CC guide "Security
 * First Step for introducing industrial IoT in factories": one of its five
 * components (IoT devices, plant LAN, server, WAN, cloud), a lifecycle step
 * (introduction, operation, maintenance) and the IEC 62443-3-3 foundational
 * requirement (FR1..FR7) the finding relates to.  Every finding carries its
 * evidence (file:line or certificate) and the fix as a command or config line.
 *
 * Files, one concern each:
 *   doctor_checks.c  the table of checks (id, component, step, FR, guide text)
 *   doctor_report.c  the list of findings, text and JSON output
 *   doctor_html.c    the one-page printable HTML report with the component map
 *   doctor_mosq.c    mosquitto.conf: parser and checks
 *   doctor_policy.c  the device policy, questioned through the policy engine
 *                    (it walks the engine's rules and entries: policy.h's
 *                    iterators; it never parses the file itself)
 *   doctor_pki.c     certificates, CA key, CRL (one step function each, run
 *                    from a table)
 *   doctor_renewal.c certificates that will lapse without a renewal path
 *   doctor_audit.c   the audit trail
 *   doctor_bridge.c  the bridge configuration and the bridge's privileges
 *   doctor_live.c    the running broker ($SYS) and bridge (/healthz) on loopback
 *   doctor.c         command line, discovery of files, exit code
 * Everything but doctor.c and doctor_live.c is the library pg_doctor_core,
 * which the unit tests and the fuzz target link.
 */
#ifndef PG_DOCTOR_H
#define PG_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

/* ---- checks and findings (doctor_checks.c, doctor_report.c) ---------------- */

typedef enum doctor_sev {
	DOCTOR_PASS = 0,
	DOCTOR_INFO = 1,
	DOCTOR_WARNING = 2,
	DOCTOR_CRITICAL = 3,
} doctor_sev_t;
#define DOCTOR_SEV_COUNT 4

/* The guide's five components, in the order data flows out of the plant. */
typedef enum doctor_comp {
	DOCTOR_DEVICE = 0,
	DOCTOR_LAN,
	DOCTOR_SERVER,
	DOCTOR_WAN,
	DOCTOR_CLOUD,
} doctor_comp_t;
#define DOCTOR_COMP_COUNT 5

/* Lifecycle steps: setting a component up, running it, keeping it fit. */
typedef enum doctor_step {
	DOCTOR_INTRODUCTION = 0,
	DOCTOR_OPERATION,
	DOCTOR_MAINTENANCE,
} doctor_step_t;
#define DOCTOR_STEP_COUNT 3

typedef struct doctor_check {
	const char *id;     /* e.g. "MQ-ANONYMOUS" */
	doctor_comp_t comp; /* guide component */
	doctor_step_t step; /* lifecycle step */
	int fr;             /* IEC 62443-3-3 foundational requirement 1..7 */
	const char *sr;     /* the system requirement, e.g. "SR 1.2" */
	const char *what;   /* what is checked, one line */
	const char *guide;  /* the guide's measure, in plain words */
} doctor_check_t;

/* The check with this id, or NULL. */
const doctor_check_t *doctor_checks_find(const char *id);
/* The i-th check of the table (NULL past the end). */
const doctor_check_t *doctor_checks_at(size_t i);
const char *doctor_checks_sev_name(doctor_sev_t s);   /* "critical", "warning", "info", "pass" */
const char *doctor_checks_comp_name(doctor_comp_t c); /* "IoT devices", "Plant LAN", ... */
const char *doctor_checks_comp_key(doctor_comp_t c);  /* "device", "lan", "server", "wan", "cloud" */
const char *doctor_checks_step_name(doctor_step_t s); /* "introduction", "operation", "maintenance" */
const char *doctor_checks_fr_name(int fr);            /* "FR1 Identification and authentication control" */

typedef struct doctor_finding {
	const doctor_check_t *check; /* borrowed from the table */
	doctor_sev_t sev;
	char *title;    /* what was found, in plain words; owned */
	char *evidence; /* "file:line: text" or a certificate; owned, may be NULL */
	char *fix;      /* a command or config line; owned, may be NULL */
} doctor_finding_t;

typedef struct doctor_report {
	doctor_finding_t *items; /* owned */
	size_t count;
	size_t cap;
	bool failed; /* an allocation failed or a check id was unknown */
} doctor_report_t;

/* Append a finding of check `id`.  evidence and fix are copied (NULL is
 * fine); the title is printf-formatted.  Returns 0, or -1 (and sets
 * r->failed) on ENOMEM or an unknown id. */
int doctor_report_add(doctor_report_t *r, const char *id, doctor_sev_t sev, const char *evidence,
                      const char *fix, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Free the findings; r is left empty and reusable.  NULL is fine. */
void doctor_report_free(doctor_report_t *r);
/* The worst severity (DOCTOR_PASS for an empty report). */
doctor_sev_t doctor_report_worst(const doctor_report_t *r);
/* counts[sev] = number of findings of that severity. */
void doctor_report_counts(const doctor_report_t *r, size_t counts[DOCTOR_SEV_COUNT]);
/* Number of findings of check `id` with severity `sev`. */
size_t doctor_report_count(const doctor_report_t *r, const char *id, doctor_sev_t sev);
/* The worst finding of check `id`, or NULL.  Borrowed. */
const doctor_finding_t *doctor_report_get(const doctor_report_t *r, const char *id);
/* The worst severity among findings of one component; -1 when none. */
int doctor_report_comp_worst(const doctor_report_t *r, doctor_comp_t c);

/* What was examined, for the report's header (all borrowed). */
typedef struct doctor_inputs {
	const char *mosq_conf;
	const char *policy;
	const char *revocation;
	const char *crl;
	const char *audit;
	const char *pki_dir;
	const char *bridge_conf;
	const char *bridge_url;
	const char *broker;
	time_t now;
} doctor_inputs_t;

/* The readable report, grouped by component and lifecycle step, ending with
 * the summary line.  verbose: also list every passed check. */
void doctor_report_text(const doctor_report_t *r, const doctor_inputs_t *in, bool verbose, FILE *out);
/* The same as one JSON object. */
void doctor_report_json(const doctor_report_t *r, const doctor_inputs_t *in, FILE *out);
/* "3 critical, 2 warnings, 1 info, 24 checks passed" into buf. */
void doctor_report_summary(const doctor_report_t *r, char *buf, size_t len);
/* Write `s` as a JSON string (with quotes). */
void doctor_report_json_string(FILE *out, const char *s);

/* ---- HTML (doctor_html.c) --------------------------------------------------- */

/* One self-contained printable page: the five-component map coloured by the
 * worst finding of each component, the summary, and every finding. */
void doctor_html_write(const doctor_report_t *r, const doctor_inputs_t *in, FILE *out);

/* ---- mosquitto.conf (doctor_mosq.c) -------------------------------------------- */

/* A directive's value and where it was written; value NULL = not set. */
typedef struct doctor_setting {
	char *value;      /* owned; for multi-word directives the words joined by ' ' */
	const char *file; /* borrowed from doctor_mosq_t.files */
	int line;
} doctor_setting_t;

/* One listener with the settings mosquitto applies to it. */
typedef struct doctor_listener {
	doctor_setting_t decl; /* "listener PORT [ADDR]" or "port N" for the default one */
	char *port;            /* owned */
	char *bind;            /* owned; NULL = every interface */
	bool implicit;         /* the default listener (no `listener` line) */
	doctor_setting_t bind_interface, cafile, capath, certfile, keyfile, crlfile, tls_version,
	    require_certificate, use_identity_as_username, use_subject_as_username, protocol,
	    psk_hint, allow_anonymous, disable_client_cert_date_checks;
} doctor_listener_t;

typedef struct doctor_plugin_opt {
	char *key; /* without "plugin_opt_" */
	doctor_setting_t set;
} doctor_plugin_opt_t;

typedef struct doctor_mosq {
	char **files; /* every file read (main file, then include_dir files); owned */
	size_t nfiles;
	doctor_listener_t deflt; /* settings before the first `listener` line */
	bool deflt_used;         /* `port`/`bind_address` given */
	doctor_listener_t *listeners;
	size_t nlisteners;
	doctor_setting_t per_listener_settings, allow_anonymous, user;
	doctor_setting_t persistence, autosave_interval, autosave_on_changes;
	doctor_setting_t *plugins; /* `plugin` / `auth_plugin` lines */
	size_t nplugins;
	doctor_plugin_opt_t *opts; /* plugin_opt_* of every plugin */
	size_t nopts;
	doctor_setting_t *include_dirs; /* include_dir lines (followed only by _load_file) */
	size_t ninclude_dirs;
} doctor_mosq_t;

/* Parse a mosquitto.conf (and the *.conf files of its include_dir lines, in
 * name order, as mosquitto does).  Returns 0, or -1 with "file:line: ..." in
 * err; *m is filled either way with what was read and must be freed. */
int doctor_mosq_load_file(const char *path, doctor_mosq_t *m, char *err, size_t errlen);
/* Same from memory; include_dir lines are recorded, not followed. */
int doctor_mosq_load_buffer(const char *name, const char *buf, size_t len, doctor_mosq_t *m,
                            char *err, size_t errlen);
void doctor_mosq_free(doctor_mosq_t *m);
/* The value of plugin_opt_KEY (the last one), or NULL.  Borrowed. */
const doctor_setting_t *doctor_mosq_opt(const doctor_mosq_t *m, const char *key);
/* The listeners mosquitto will open: the explicit ones, plus the default
 * listener when it is used.  *n is set; the array is borrowed from m (the
 * default one is at index 0 when used, so the pointer is to a small array
 * the caller frees with free()).  Returns NULL with *n = 0 when none. */
doctor_listener_t **doctor_mosq_listeners(const doctor_mosq_t *m, size_t *n);
/* Checks on the configuration alone (no file system): listeners, TLS,
 * anonymous access, identity-as-username, the plugin, revocation and audit
 * options, privileges. */
void doctor_mosq_check(const doctor_mosq_t *m, doctor_report_t *r);
/* Checks that need the file system: the plugin file exists. */
void doctor_mosq_check_files(const doctor_mosq_t *m, doctor_report_t *r);

/* ---- the device policy (doctor_policy.c) --------------------------------------- */

/* Load the policy as the plugin would and ask it the dangerous questions.
 * device_roles: comma-separated role names to treat as device roles, or NULL
 * to decide from the rules (a role that publishes under its own %{id}).
 * from: "file:line" of the plugin_opt_policy line, or NULL. */
void doctor_policy_check(const char *path, const char *device_roles, const char *from,
                         doctor_report_t *r);
/* May `identity` (as a client of the policy) publish anything into the
 * plant?  Used for the bridge's identity.  Returns 1 and an example topic in
 * topic, 0 if not, -1 if the policy does not load. */
int doctor_policy_can_publish(const char *path, const char *identity, char *topic, size_t len,
                              char *rule, size_t rulelen);

/* ---- PKI (doctor_pki.c) -------------------------------------------------------- */

typedef struct doctor_pki_in {
	const char *dir;        /* scripts/pki directory, or NULL */
	const char *cafile;     /* the CA certificate (default DIR/ca.crt) */
	const char *crlfile;    /* the CRL (default DIR/crl.pem) */
	const char *revocation; /* revoked.txt (default DIR/revoked.txt) */
	const char *certs[8];   /* more certificates in use (broker, bridge); NULL-terminated */
	const char *cert_from[8]; /* "file:line" naming each, or NULL */
	time_t now;
} doctor_pki_in_t;

void doctor_pki_check(const doctor_pki_in_t *in, doctor_report_t *r);
/* PKI-RENEWAL (doctor_renewal.c): device and bridge certificates in force in
 * the scripts/pki directory `dir` that will lapse without a renewal path —
 * issued by hand and due within 30 days, or issued by plantgate-est and not
 * renewed with 7 days left.  Also PKI-CRL for plantgate-est's intermediate
 * CRL (DIR/crl-est.pem: current, and in DIR/crl.pem).  rev (borrowed, may be
 * NULL) is the revocation list and CRL. */
struct revocation;
void doctor_renewal_check(const char *dir, const struct revocation *rev, time_t now, doctor_report_t *r);
/* Permissions of a private key file: the CA key must be readable by its owner
 * only; other keys not by everyone.  is_ca selects the rule. */
void doctor_pki_check_key(const char *path, bool is_ca, doctor_report_t *r);

/* ---- audit trail (doctor_audit.c) ----------------------------------------------- */

/* path: plugin_opt_audit_log (NULL = not configured); from: where it is set;
 * run_user: the user the broker runs as (mosquitto.conf `user`, default
 * "mosquitto"), used to decide whether it can write the file. */
void doctor_audit_check(const char *path, const char *from, const char *run_user,
                        doctor_report_t *r);

/* ---- bridge (doctor_bridge.c) --------------------------------------------------- */

/* The bridge configuration: whitelist, cloud trust, queue limits.
 * policy: the plant policy (or NULL), to ask whether the bridge's identity
 * could publish into the plant. */
void doctor_bridge_check(const char *path, const char *policy, doctor_report_t *r);
/* Is the bridge running as root?  Best effort, from (in this order) a pid,
 * a pid file, or a systemd unit's User=.  All may be absent (info). */
void doctor_bridge_check_user(long pid, const char *pidfile, const char *unit, doctor_report_t *r);

/* ---- the running hub (doctor_live.c) -------------------------------------------- */

typedef struct doctor_live_in {
	const char *broker; /* "HOST:PORT", loopback only; NULL = skip */
	const char *cert, *key, *cafile, *clientid;
	const char *bridge_url; /* "http://127.0.0.1:PORT"; NULL = skip */
	int timeout_ms;
} doctor_live_in_t;

/* Returns the pid of the process serving bridge_url (0 if unknown). */
long doctor_live_check(const doctor_live_in_t *in, doctor_report_t *r);

#endif
