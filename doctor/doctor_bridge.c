/*
 * doctor_bridge.c — plantgate-doctor's look at the bridge, the plant's only
 * way out to the WAN and the cloud: what its whitelist lets leave the plant,
 * how it trusts the cloud, whether its queue is bounded, whether its plant
 * identity could write into the plant, how it goes through the plant's proxy,
 * and whether it runs as root.
 *
 * The configuration is read with bconf_load(), the bridge's own parser, so
 * the doctor sees exactly what the bridge would run with.  The process check
 * is best effort and says what it looked at: /proc/PID/status of a given pid
 * (or pid file, or the process that serves --bridge-url), else the User= of a
 * systemd unit file.
 */
#include <ctype.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "bconf.h"
#include "conf.h"
#include "doctor.h"
#include "topic.h"
#include "tunproto.h"
#include "util.h"

static const char *const doctor_bridge_command_words[] = {"command", "commands", "cmd", NULL};

static bool doctor_bridge_has_command_level(const char *filter)
{
	for(const char *p = filter; p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		for(size_t i = 0; doctor_bridge_command_words[i]; i++) {
			if(strlen(doctor_bridge_command_words[i]) == n && strncmp(p, doctor_bridge_command_words[i], n) == 0) {
				return true;
			}
		}
		p = e ? e + 1 : NULL;
	}
	return false;
}

static void doctor_bridge_ev(const bconf_t *cfg, enum bconf_key k, const char *value, char *buf, size_t len)
{
	if(cfg->line[k]) {
		util_snprintf(buf, len, "%s:%d: %s %s", cfg->path, cfg->line[k], bconf_key_name(k), value);
	} else {
		util_snprintf(buf, len, "%s: %s %s (default)", cfg->path, bconf_key_name(k), value);
	}
}

static void doctor_bridge_whitelist(const bconf_t *cfg, doctor_report_t *r)
{
	char ev[2048], rule[1024];
	int bad = 0;
	for(size_t i = 0; i < cfg->whitelist.count; i++) {
		const wl_rule_t *w = &cfg->whitelist.rules[i];
		whitelist_rule_format(w, rule, sizeof(rule));
		util_snprintf(ev, sizeof(ev), "%s:%d: forward %s", cfg->path, w->line, rule);
		if(strcmp(w->filter, "#") == 0 || topic_filter_covers(w->filter, "#")) {
			doctor_report_add(r, "BR-WHITELIST", DOCTOR_CRITICAL, ev,
			                  "forward plant/+/+/+/telemetry/# (name the data to share)",
			                  "the bridge forwards every plant topic (%s) to the cloud: commands, "
			                  "configuration and all data leave the plant",
			                  w->filter);
			bad++;
		} else if(strncmp(w->filter, "$CONTROL", 8) == 0) {
			doctor_report_add(r, "BR-WHITELIST", DOCTOR_CRITICAL, ev, "remove the rule",
			                  "the bridge forwards broker control topics (%s) out of the plant", w->filter);
			bad++;
		} else if(strncmp(w->filter, "$SYS", 4) == 0 || w->filter[0] == '$') {
			doctor_report_add(r, "BR-WHITELIST", DOCTOR_WARNING, ev, "remove the rule",
			                  "the bridge forwards the broker's internal topics (%s): they describe the "
			                  "plant's clients and load to anyone who reads the cloud side",
			                  w->filter);
			bad++;
		} else if(doctor_bridge_has_command_level(w->filter)) {
			doctor_report_add(r, "BR-WHITELIST", DOCTOR_WARNING, ev, "remove the rule (forward telemetry only)",
			                  "the bridge forwards command topics (%s): how machines are steered leaves the plant",
			                  w->filter);
			bad++;
		}
	}
	if(!bad) {
		util_snprintf(ev, sizeof(ev), "%s: %zu forward rules", cfg->path, cfg->whitelist.count);
		doctor_report_add(r, "BR-WHITELIST", DOCTOR_PASS, ev, NULL,
		                  "only chosen topics leave the plant: no #, $SYS, $CONTROL or command topics");
	}
}

static void doctor_bridge_cloud(const bconf_t *cfg, doctor_report_t *r)
{
	char ev[2048];
	if(cfg->cloud_use_system_trust) {
		doctor_bridge_ev(cfg, BK_CLOUD_USE_SYSTEM_TRUST, "yes", ev, sizeof(ev));
		doctor_report_add(r, "BR-CLOUD-TRUST", DOCTOR_WARNING, ev,
		                  "cloud_cafile /etc/plantgate/cloud/ca.crt + cloud_use_system_trust no",
		                  "the cloud's certificate is trusted if any of the system's CAs signed it: pin "
		                  "the cloud provider's CA");
	} else {
		doctor_bridge_ev(cfg, BK_CLOUD_CAFILE, cfg->cloud_cafile ? cfg->cloud_cafile : "?", ev, sizeof(ev));
		doctor_report_add(r, "BR-CLOUD-TRUST", DOCTOR_PASS, ev, NULL,
		                  "the cloud's CA is pinned: only its certificates are accepted");
	}
	doctor_bridge_ev(cfg, BK_CLOUD_HOST, cfg->cloud_host ? cfg->cloud_host : "?", ev, sizeof(ev));
	doctor_report_add(r, "BR-HOSTNAME", DOCTOR_PASS, ev, NULL,
	                  "plantgate-bridge always verifies the cloud host name against its certificate (it "
	                  "cannot be configured off)");
	doctor_bridge_ev(cfg, BK_CLOUD_TLS_VERSION, cfg->cloud_tls_version == 13 ? "1.3" : "1.2", ev, sizeof(ev));
	doctor_report_add(r, "BR-CLOUD-TLS", DOCTOR_PASS, ev, NULL,
	                  "the cloud link requires TLS %s or newer and authenticates with the client "
	                  "certificate %s",
	                  cfg->cloud_tls_version == 13 ? "1.3" : "1.2", cfg->cloud_certfile ? cfg->cloud_certfile : "?");
}

/* BR-PROXY: how the cloud is reached through cloud_proxy (issue 16).  The
 * URL and no_proxy syntax are the bridge's own checks (bconf_load), so here:
 * the credentials file as the bridge will read it, credentials sent in clear
 * text, and whether no_proxy (file or environment) takes the proxy away. */
static void doctor_bridge_proxy(const bconf_t *cfg, doctor_report_t *r)
{
	char ev[2048], bad[128];
	int issues = 0;
	const char *env_np = getenv("NO_PROXY") ? getenv("NO_PROXY") : getenv("no_proxy");
	if(!cfg->cloud_proxy) {
		const char *env_proxy = getenv("HTTPS_PROXY") ? getenv("HTTPS_PROXY") : getenv("https_proxy");
		if(env_proxy) {
			util_snprintf(ev, sizeof(ev), "%s: no cloud_proxy; environment HTTPS_PROXY=%s", cfg->path,
			              env_proxy);
			doctor_report_add(r, "BR-PROXY", DOCTOR_INFO, ev, "cloud_proxy http://HOST:PORT",
			                  "this host names an HTTPS proxy but the bridge uses a proxy only when "
			                  "its file says so: if the plant lets HTTPS out only through it, set "
			                  "cloud_proxy");
		} else {
			util_snprintf(ev, sizeof(ev), "%s: cloud_transport %s, no cloud_proxy", cfg->path,
			              cfg->cloud_transport == BCONF_TRANSPORT_WSS ? "wss" : "tls");
			doctor_report_add(r, "BR-PROXY", DOCTOR_PASS, ev, NULL,
			                  "the bridge reaches the cloud directly");
		}
		return;
	}
	tunproto_url_t url;
	const char *why = NULL;
	if(tunproto_url_parse(cfg->cloud_proxy, &url, &why)) {
		return; /* bconf_load refused it already */
	}
	const char *auth = cfg->cloud_proxy_auth_file;
	if(auth) {
		doctor_bridge_ev(cfg, BK_CLOUD_PROXY_AUTH_FILE, auth, ev, sizeof(ev));
		FILE *f = fopen(auth, "r");
		struct stat st;
		char text[1024];
		size_t n = 0;
		if(f) {
			n = fread(text, 1, sizeof(text), f);
		}
		char b64[1400];
		if(!f || fstat(fileno(f), &st) != 0) {
			doctor_report_add(r, "BR-PROXY", DOCTOR_CRITICAL, ev,
			                  "put user:password in that file, mode 0600, owned by the bridge's "
			                  "starting user",
			                  "the proxy credentials file cannot be read: the bridge refuses to start");
			issues++;
		} else if(st.st_mode & (S_IRGRP | S_IROTH)) {
			doctor_report_add(r, "BR-PROXY", DOCTOR_CRITICAL, ev, "chmod 600 the file",
			                  "the proxy credentials are readable by %s (mode %04o): the bridge "
			                  "refuses to start, and anyone who reads them can use the plant's proxy "
			                  "account",
			                  (st.st_mode & S_IROTH) ? "every user" : "its group",
			                  (unsigned)(st.st_mode & 07777));
			issues++;
		} else if(n == sizeof(text) || tunproto_basic_auth(text, n, b64, sizeof(b64), &why)) {
			doctor_report_add(r, "BR-PROXY", DOCTOR_CRITICAL, ev, "one line user:password",
			                  "the proxy credentials file is not usable (%s): the bridge refuses to "
			                  "start",
			                  n == sizeof(text) ? "longer than 1 KiB" : why);
			issues++;
		}
		explicit_bzero(text, sizeof(text));
		explicit_bzero(b64, sizeof(b64));
		if(f) {
			fclose(f);
		}
		if(!url.tls) {
			doctor_bridge_ev(cfg, BK_CLOUD_PROXY, cfg->cloud_proxy, ev, sizeof(ev));
			doctor_report_add(r, "BR-PROXY", DOCTOR_WARNING, ev,
			                  "cloud_proxy https://HOST:PORT if the proxy offers TLS",
			                  "the proxy password goes to an http:// proxy in clear text (Basic): "
			                  "anyone on the plant network between the bridge and the proxy can read "
			                  "it (the cloud traffic itself stays inside TLS)");
			issues++;
		}
	}
	const char *np = cfg->cloud_no_proxy, *np_key = "cloud_no_proxy";
	if(!np && env_np) {
		np = env_np;
		np_key = "NO_PROXY (environment)";
		if(tunproto_no_proxy_check(env_np, bad, sizeof(bad))) {
			util_snprintf(ev, sizeof(ev), "environment NO_PROXY=%s", env_np);
			doctor_report_add(r, "BR-PROXY", DOCTOR_WARNING, ev, "fix NO_PROXY or set cloud_no_proxy",
			                  "NO_PROXY has an entry the bridge ignores: '%s'", bad);
			issues++;
		}
	}
	if(np && tunproto_no_proxy_match(np, cfg->cloud_host)) {
		util_snprintf(ev, sizeof(ev), "%s: %s %s matches cloud_host %s", cfg->path, np_key, np,
		              cfg->cloud_host);
		doctor_report_add(r, "BR-PROXY", DOCTOR_WARNING, ev,
		                  "remove cloud_host from the no_proxy list, or remove cloud_proxy",
		                  "cloud_proxy is configured but never used: the no_proxy list sends the "
		                  "bridge straight to the cloud, which a plant that allows only its proxy "
		                  "will block");
		issues++;
	}
	if(!issues) {
		util_snprintf(ev, sizeof(ev), "%s: cloud_proxy %s, cloud_transport %s%s", cfg->path,
		              cfg->cloud_proxy, cfg->cloud_transport == BCONF_TRANSPORT_WSS ? "wss" : "tls",
		              auth ? ", credentials from a 0600 file" : "");
		doctor_report_add(r, "BR-PROXY", DOCTOR_PASS, ev, NULL,
		                  "the bridge reaches the cloud through the plant's proxy, with TLS to the "
		                  "cloud end to end");
	}
}

static void doctor_bridge_queue(const bconf_t *cfg, doctor_report_t *r)
{
	char ev[2048], dir[4096], sz[64];
	struct statvfs vfs;
	int issues = 0;
	util_snprintf(sz, sizeof(sz), "%llu", (unsigned long long)cfg->queue_max_bytes);
	doctor_bridge_ev(cfg, BK_QUEUE_MAX_BYTES, sz, ev, sizeof(ev));
	util_strlcpy(dir, cfg->queue_path ? cfg->queue_path : ".", sizeof(dir));
	char *slash = strrchr(dir, '/');
	if(slash && slash != dir) {
		*slash = '\0';
	} else if(slash) {
		dir[1] = '\0';
	} else {
		util_strlcpy(dir, ".", sizeof(dir));
	}
	if(statvfs(dir, &vfs) == 0) {
		unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
		if(cfg->queue_max_bytes > avail && cfg->queue_min_free_disk == 0) {
			doctor_report_add(r, "BR-QUEUE", DOCTOR_WARNING, ev,
			                  "queue_max_bytes below the free space, and queue_min_free_disk 64M",
			                  "the queue may grow to %llu bytes but %s has only %llu bytes free and the disk "
			                  "guard is off: a long cloud outage fills the disk",
			                  (unsigned long long)cfg->queue_max_bytes, dir, avail);
			issues++;
		}
	}
	if(cfg->queue_min_free_disk == 0) {
		doctor_bridge_ev(cfg, BK_QUEUE_MIN_FREE_DISK, "0", ev, sizeof(ev));
		doctor_report_add(r, "BR-QUEUE", DOCTOR_WARNING, ev, "queue_min_free_disk 64M",
		                  "the disk guard is off: the queue can fill the disk of the gateway during an outage");
		issues++;
	}
	if(cfg->queue_when_full == BCONF_FULL_DROP_OLDEST) {
		doctor_bridge_ev(cfg, BK_QUEUE_WHEN_FULL, "drop-oldest", ev, sizeof(ev));
		doctor_report_add(r, "BR-QUEUE", DOCTOR_INFO, ev, "queue_when_full backpressure",
		                  "when the queue is full the oldest messages are dropped (logged and counted); "
		                  "make sure the plant accepts that loss");
	}
	if(!issues) {
		util_snprintf(ev, sizeof(ev), "%s: queue_max_bytes %llu, queue_max_messages %lld, queue_min_free_disk %llu",
		              cfg->path, (unsigned long long)cfg->queue_max_bytes, (long long)cfg->queue_max_messages,
		              (unsigned long long)cfg->queue_min_free_disk);
		doctor_report_add(r, "BR-QUEUE", DOCTOR_PASS, ev, NULL,
		                  "the queue is bounded and stops before the disk is full");
	}
}

/* The CN of the certificate at path into out ("" if none). */
static void doctor_bridge_cert_cn(const char *path, char *out, size_t len)
{
	out[0] = '\0';
	FILE *f = path ? fopen(path, "r") : NULL;
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if(f) {
		fclose(f);
	}
	if(!x) {
		return;
	}
	char buf[256];
	if(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf)) > 0) {
		util_strlcpy(out, buf, len);
	}
	X509_free(x);
}

/* BR-CLOUD-LIMITS: the cloud profile's published per-connection byte rate
 * (bconf_profile_desc_t), which the bridge paces (drain_byte_rate, a token
 * bucket with one second's burst; the config check keeps it within the
 * profile's limit).  A message larger than one second's worth still goes in
 * one piece: the rate then holds only on average. */
static void doctor_bridge_limits(const bconf_t *cfg, doctor_report_t *r)
{
	const bconf_profile_desc_t *p = bconf_profile(cfg->cloud_profile);
	char ev[512];
	uint64_t largest = 0;
	for(size_t i = 0; i < cfg->whitelist.count; i++) {
		if(cfg->whitelist.rules[i].max_payload > largest) {
			largest = cfg->whitelist.rules[i].max_payload;
		}
	}
	util_snprintf(ev, sizeof(ev),
	              "%s: cloud_profile %s, drain_byte_rate %llu, largest max-payload %llu", cfg->path,
	              p->name, (unsigned long long)cfg->drain_byte_rate, (unsigned long long)largest);
	if(cfg->drain_byte_rate && largest > cfg->drain_byte_rate) {
		doctor_report_add(r, "BR-CLOUD-LIMITS", DOCTOR_WARNING, ev,
		                  "raise drain_byte_rate to at least the largest max-payload, or lower "
		                  "max-payload",
		                  "a message of up to %llu bytes exceeds one second of drain_byte_rate "
		                  "(%llu bytes/s): it leaves in one burst and the rate holds only on "
		                  "average",
		                  (unsigned long long)largest, (unsigned long long)cfg->drain_byte_rate);
	} else if(p->max_bytes_per_s) {
		doctor_report_add(r, "BR-CLOUD-LIMITS", DOCTOR_PASS, ev, NULL,
		                  "the bridge paces the cloud link to %llu KiB/s, within %s's %llu KiB/s "
		                  "per connection",
		                  (unsigned long long)(cfg->drain_byte_rate / 1024), p->cloud,
		                  (unsigned long long)(p->max_bytes_per_s / 1024));
	} else {
		doctor_report_add(r, "BR-CLOUD-LIMITS", DOCTOR_PASS, ev, NULL,
		                  "the configuration keeps within %s's published limits", p->cloud);
	}
}

void doctor_bridge_check(const char *path, const char *policy, doctor_report_t *r)
{
	char err[8192], ev[2048], ident[256], topic[1024], rule[1024];
	bconf_t cfg;
	memset(&cfg, 0, sizeof(cfg));
	int n = bconf_load(path, &cfg, err, sizeof(err));
	if(n) {
		char *nl = strchr(err, '\n');
		if(nl && nl[1] == '\0') {
			*nl = '\0';
		}
		doctor_report_add(r, "BR-CONFIG", DOCTOR_CRITICAL, err, "fix the lines, then: plantgate-bridge -n -c FILE",
		                  "the bridge configuration does not load (%d error%s): the bridge refuses to start",
		                  n, n == 1 ? "" : "s");
		return;
	}
	util_snprintf(ev, sizeof(ev), "%s: plant %s:%lld -> cloud %s:%lld (%s)", path, cfg.plant_host,
	              (long long)cfg.plant_port, cfg.cloud_host, (long long)cfg.cloud_port,
	              bconf_profile_name(cfg.cloud_profile));
	doctor_report_add(r, "BR-CONFIG", DOCTOR_PASS, ev, NULL, "the bridge configuration loads");
	doctor_bridge_whitelist(&cfg, r);
	doctor_bridge_cloud(&cfg, r);
	doctor_bridge_proxy(&cfg, r);
	doctor_bridge_queue(&cfg, r);
	doctor_bridge_limits(&cfg, r);

	if(policy) {
		doctor_bridge_cert_cn(cfg.plant_certfile, ident, sizeof(ident));
		if(!ident[0]) {
			util_strlcpy(ident, cfg.plant_client_id, sizeof(ident));
		}
		int can = doctor_policy_can_publish(policy, ident, topic, sizeof(topic), rule, sizeof(rule));
		if(can == 1) {
			doctor_report_add(r, "BR-PLANT-WRITE", DOCTOR_WARNING, rule,
			                  "give the bridge's role subscribe and read rules only",
			                  "the bridge's identity %s may publish into the plant (e.g. %s): a compromised "
			                  "gateway could inject messages towards machines",
			                  ident, topic);
		} else if(can == 0) {
			util_snprintf(ev, sizeof(ev), "%s: identity %s", policy, ident);
			doctor_report_add(r, "BR-PLANT-WRITE", DOCTOR_PASS, ev, NULL,
			                  "the bridge's identity cannot publish into the plant");
		}
	}
	bconf_free(&cfg);
}

/* Effective uid of a process, or -1. */
static long doctor_bridge_proc_uid(long pid)
{
	char path[64], line[256];
	long uid = -1;
	util_snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	FILE *f = fopen(path, "r");
	if(!f) {
		return -1;
	}
	while(fgets(line, sizeof(line), f)) {
		if(strncmp(line, "Uid:", 4) == 0) {
			char *p = line + 4, *end;
			strtol(p, &end, 10); /* real */
			long e = strtol(end, &end, 10);
			uid = e;
			break;
		}
	}
	fclose(f);
	return uid;
}

/* Does the process's environment disable host name verification? */
static int doctor_bridge_proc_insecure(long pid)
{
	char path[64], buf[65536];
	util_snprintf(path, sizeof(path), "/proc/%ld/environ", pid);
	FILE *f = fopen(path, "r");
	if(!f) {
		return -1;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for(size_t i = 0; i < n; i += strlen(buf + i) + 1) {
		if(strcmp(buf + i, "PLANTGATE_TEST_INSECURE_HOSTNAME=1") == 0) {
			return 1;
		}
	}
	return 0;
}

typedef struct doctor_bridge_unit {
	bool in_service;
	char user[128];
	int user_line;
	bool dynamic;
	bool insecure;
	int insecure_line;
} doctor_bridge_unit_t;

static int doctor_bridge_unit_line(void *ud, const conf_line_t *l, char *err, size_t errlen)
{
	doctor_bridge_unit_t *u = ud;
	const char *w = l->argv[0];
	if(w[0] == '[') {
		u->in_service = strcmp(w, "[Service]") == 0;
		return 0;
	}
	if(!u->in_service) {
		return 0;
	}
	if(strncmp(w, "User=", 5) == 0) {
		util_strlcpy(u->user, w + 5, sizeof(u->user));
		u->user_line = l->line;
	} else if(strncmp(w, "DynamicUser=", 12) == 0) {
		u->dynamic = strcmp(w + 12, "yes") == 0 || strcmp(w + 12, "true") == 0;
	}
	for(int i = 0; i < l->argc; i++) {
		if(strstr(l->argv[i], "PLANTGATE_TEST_INSECURE_HOSTNAME=1")) {
			u->insecure = true;
			u->insecure_line = l->line;
		}
	}
	return 0;
}

void doctor_bridge_check_user(long pid, const char *pidfile, const char *unit, doctor_report_t *r)
{
	char ev[2048], err[1024];
	doctor_bridge_unit_t u;
	bool unit_ok = false;
	if(unit) {
		memset(&u, 0, sizeof(u));
		unit_ok = conf_parse_file(unit, doctor_bridge_unit_line, &u, err, sizeof(err)) == 0;
		if(!unit_ok) {
			doctor_report_add(r, "BR-USER", DOCTOR_INFO, err, NULL, "the bridge's systemd unit could not be read");
		} else if(u.insecure) {
			util_snprintf(ev, sizeof(ev), "%s:%d: PLANTGATE_TEST_INSECURE_HOSTNAME=1", unit, u.insecure_line);
			doctor_report_add(r, "BR-HOSTNAME", DOCTOR_CRITICAL, ev, "remove the Environment= line",
			                  "the unit switches host name verification off (a test-only setting)");
		}
	}
	if(pid <= 0 && pidfile) {
		FILE *f = fopen(pidfile, "r");
		char line[64] = "";
		int64_t v = 0;
		if(f) {
			if(!fgets(line, sizeof(line), f)) {
				line[0] = '\0';
			}
			fclose(f);
		}
		line[strcspn(line, " \t\r\n")] = '\0';
		if(util_parse_i64(line, 1, 4194304, &v) == 0) {
			pid = (long)v;
		} else {
			util_snprintf(ev, sizeof(ev), "%s: no pid in it", pidfile);
			doctor_report_add(r, "BR-USER", DOCTOR_INFO, ev, NULL, "the bridge's pid file could not be read");
		}
	}
	if(pid > 0) {
		long uid = doctor_bridge_proc_uid(pid);
		if(uid < 0) {
			util_snprintf(ev, sizeof(ev), "/proc/%ld/status: not readable", pid);
			doctor_report_add(r, "BR-USER", DOCTOR_INFO, ev, NULL, "the bridge process %ld is not running", pid);
		} else {
			struct passwd *pw = getpwuid((uid_t)uid);
			util_snprintf(ev, sizeof(ev), "/proc/%ld/status: effective uid %ld (%s)", pid, uid,
			              pw ? pw->pw_name : "?");
			if(uid == 0) {
				doctor_report_add(r, "BR-USER", DOCTOR_WARNING, ev,
				                  "User=plantgate in the bridge's systemd unit (and restart it)",
				                  "the bridge runs as root: a flaw reachable from the cloud side would give "
				                  "away the gateway");
			} else {
				doctor_report_add(r, "BR-USER", DOCTOR_PASS, ev, NULL, "the bridge runs as %s, not root",
				                  pw ? pw->pw_name : "an unprivileged user");
			}
			if(doctor_bridge_proc_insecure(pid) == 1) {
				util_snprintf(ev, sizeof(ev), "/proc/%ld/environ: PLANTGATE_TEST_INSECURE_HOSTNAME=1", pid);
				doctor_report_add(r, "BR-HOSTNAME", DOCTOR_CRITICAL, ev,
				                  "remove PLANTGATE_TEST_INSECURE_HOSTNAME from the environment and restart",
				                  "the running bridge has host name verification switched off (a test-only "
				                  "setting): anyone with any valid certificate can pose as the cloud");
			}
		}
		return;
	}
	if(unit_ok) {
		if(u.dynamic || (u.user[0] && strcmp(u.user, "root") != 0 && strcmp(u.user, "0") != 0)) {
			util_snprintf(ev, sizeof(ev), "%s:%d: %s%s", unit, u.user_line, u.dynamic ? "DynamicUser=yes" : "User=",
			              u.dynamic ? "" : u.user);
			doctor_report_add(r, "BR-USER", DOCTOR_PASS, ev, NULL, "the bridge's unit runs it as %s, not root",
			                  u.dynamic ? "a dynamic user" : u.user);
		} else {
			if(u.user_line) {
				util_snprintf(ev, sizeof(ev), "%s:%d: User=%s", unit, u.user_line, u.user);
			} else {
				util_snprintf(ev, sizeof(ev), "%s: [Service] has no User=", unit);
			}
			doctor_report_add(r, "BR-USER", DOCTOR_WARNING, ev, "User=plantgate (in [Service])",
			                  "the bridge's systemd unit runs it as root");
		}
		return;
	}
	if(unit) {
		return;
	}
	doctor_report_add(r, "BR-USER", DOCTOR_INFO, NULL,
	                  "--bridge-pidfile FILE, --bridge-unit FILE or --bridge-url http://127.0.0.1:PORT",
	                  "not checked whether the bridge runs as root (no pid, pid file or unit given)");
}
