/*
 * doctor_live.c — plantgate-doctor's look at the running hub, on loopback
 * only: the plant broker (connect with a certificate given on the command
 * line, read the plugin's retained counters under $SYS/plantgate/, and check
 * that a client without a certificate is turned away) and the bridge's
 * /healthz (a plain HTTP/1.0 GET over a socket with a short timeout).
 *
 * Anything unreachable is reported as info, never as a failure: the doctor
 * also runs on a machine where the hub is stopped.  It also finds which
 * process listens on the bridge's HTTP port (/proc/net/tcp{,6} and
 * /proc/PID/fd), so the bridge's privileges can be checked.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "doctor.h"
#include "util.h"

#define DOCTOR_LIVE_COUNTERS 32

typedef struct doctor_live_state {
	int connack; /* -1 none yet */
	bool subscribed;
	bool disconnected;
	struct timespec last_msg;
	size_t ncounters;
	char names[DOCTOR_LIVE_COUNTERS][64];
	long long values[DOCTOR_LIVE_COUNTERS];
} doctor_live_state_t;

static long long doctor_live_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void doctor_live_on_connect(struct mosquitto *mosq, void *ud, int rc)
{
	doctor_live_state_t *st = ud;
	st->connack = rc;
	if(rc == 0 && mosquitto_subscribe(mosq, NULL, "$SYS/plantgate/#", 0) == MOSQ_ERR_SUCCESS) {
		st->subscribed = true;
	}
}

static void doctor_live_on_disconnect(struct mosquitto *mosq, void *ud, int rc)
{
	doctor_live_state_t *st = ud;
	st->disconnected = true;
}

static void doctor_live_on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *m)
{
	doctor_live_state_t *st = ud;
	const char *prefix = "$SYS/plantgate/";
	char payload[32];
	int64_t v;
	clock_gettime(CLOCK_MONOTONIC, &st->last_msg);
	if(!m->topic || strncmp(m->topic, prefix, strlen(prefix)) != 0 || st->ncounters >= DOCTOR_LIVE_COUNTERS ||
	   m->payloadlen <= 0 || (size_t)m->payloadlen >= sizeof(payload)) {
		return;
	}
	memcpy(payload, m->payload, (size_t)m->payloadlen);
	payload[m->payloadlen] = '\0';
	if(util_parse_i64(payload, 0, INT64_MAX, &v) != 0) {
		return;
	}
	char name[64];
	util_log_safe(m->topic + strlen(prefix), name, sizeof(name));
	for(size_t i = 0; i < st->ncounters; i++) {
		if(strcmp(st->names[i], name) == 0) {
			st->values[i] = v; /* a newer value of the same counter */
			return;
		}
	}
	util_strlcpy(st->names[st->ncounters], name, sizeof(st->names[0]));
	st->values[st->ncounters++] = v;
}

/* Split "HOST:PORT" (HOST may be [::1]); loopback only. */
static int doctor_live_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(s, ':');
	int64_t p;
	if(!colon || util_parse_i64(colon + 1, 1, 65535, &p) != 0) {
		return -1;
	}
	size_t n = (size_t)(colon - s);
	if(n >= hostlen) {
		return -1;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	if(host[0] == '[' && n > 2 && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	if(strcmp(host, "127.0.0.1") != 0 && strcmp(host, "localhost") != 0 && strcmp(host, "::1") != 0) {
		return -1;
	}
	*port = (int)p;
	return 0;
}

/* Run the loop until done() or the deadline. */
static void doctor_live_run(struct mosquitto *mosq, doctor_live_state_t *st, long long deadline, bool want_counters)
{
	while(doctor_live_ms() < deadline && !st->disconnected) {
		if(mosquitto_loop(mosq, 50, 1) != MOSQ_ERR_SUCCESS) {
			break;
		}
		if(st->connack > 0) {
			break;
		}
		if(st->connack == 0 && !want_counters) {
			break;
		}
		if(want_counters && st->ncounters > 0) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			long long quiet = (now.tv_sec - st->last_msg.tv_sec) * 1000LL +
			                  (now.tv_nsec - st->last_msg.tv_nsec) / 1000000;
			if(quiet > 500) {
				break;
			}
		}
	}
}

static void doctor_live_broker(const doctor_live_in_t *in, doctor_report_t *r)
{
	char host[256], ev[4096];
	int port;
	struct mosquitto *mosq = NULL;
	doctor_live_state_t *st = calloc(1, sizeof(*st));
	if(!st) {
		r->failed = true;
		return;
	}
	st->connack = -1;
	if(doctor_live_hostport(in->broker, host, sizeof(host), &port) != 0) {
		util_snprintf(ev, sizeof(ev), "--broker %s", in->broker);
		doctor_report_add(r, "LIVE-BROKER", DOCTOR_INFO, ev, "--broker 127.0.0.1:8883",
		                  "the broker is only examined on this host (127.0.0.1, ::1 or localhost)");
		goto out;
	}
	mosquitto_lib_init();
	mosq = mosquitto_new(in->clientid, true, st);
	if(!mosq || mosquitto_tls_set(mosq, in->cafile, NULL, in->cert, in->key, NULL) != MOSQ_ERR_SUCCESS) {
		util_snprintf(ev, sizeof(ev), "--cert %s --key %s --cafile %s", in->cert ? in->cert : "?",
		              in->key ? in->key : "?", in->cafile ? in->cafile : "?");
		doctor_report_add(r, "LIVE-BROKER", DOCTOR_INFO, ev, "give --cert, --key and --cafile of a client that may read $SYS",
		                  "the doctor's client certificate could not be set up");
		goto out;
	}
	mosquitto_tls_opts_set(mosq, 1, "tlsv1.2", NULL);
	mosquitto_connect_callback_set(mosq, doctor_live_on_connect);
	mosquitto_disconnect_callback_set(mosq, doctor_live_on_disconnect);
	mosquitto_message_callback_set(mosq, doctor_live_on_message);
	util_snprintf(ev, sizeof(ev), "%s:%d as %s", host, port, in->clientid ? in->clientid : "?");
	if(mosquitto_connect(mosq, host, port, 30) != MOSQ_ERR_SUCCESS) {
		doctor_report_add(r, "LIVE-BROKER", DOCTOR_INFO, ev, "systemctl status mosquitto",
		                  "the broker is not reachable on %s:%d", host, port);
		goto out;
	}
	doctor_live_run(mosq, st, doctor_live_ms() + in->timeout_ms, true);
	if(st->connack != 0) {
		doctor_report_add(r, "LIVE-BROKER", DOCTOR_INFO, ev,
		                  "use the certificate of a client the policy lets read $SYS (e.g. ops-console)",
		                  "the broker did not accept the doctor's client (%s)",
		                  st->connack > 0 ? mosquitto_connack_string(st->connack) : "TLS handshake failed or no answer");
	} else if(st->ncounters == 0) {
		doctor_report_add(r, "LIVE-BROKER", DOCTOR_INFO, ev,
		                  "role ops: subscribe $SYS/# + read $SYS/# for the doctor's identity",
		                  "connected, but no $SYS/plantgate counters arrived: the identity may not read $SYS, "
		                  "or the plugin has not published them yet (sys_interval)");
	} else {
		size_t at = strlen(ev);
		long long audit_errors = 0, reload_failures = 0;
		for(size_t i = 0; i < st->ncounters; i++) {
			if(at < sizeof(ev)) {
				util_snprintf(ev + at, sizeof(ev) - at, "%s %s=%lld", i ? "," : ":", st->names[i], st->values[i]);
				at += strlen(ev + at);
			}
			if(strcmp(st->names[i], "audit/errors") == 0) {
				audit_errors = st->values[i];
			} else if(strcmp(st->names[i], "reload-failures") == 0) {
				reload_failures = st->values[i];
			}
		}
		if(audit_errors > 0) {
			doctor_report_add(r, "LIVE-BROKER", DOCTOR_WARNING, ev,
			                  "check the disk and the permissions of plugin_opt_audit_log; see the broker log",
			                  "the plugin failed to write %lld audit records", audit_errors);
		}
		if(reload_failures > 0) {
			doctor_report_add(r, "LIVE-BROKER", DOCTOR_WARNING, ev,
			                  "plantgate-policy check FILE; then systemctl reload mosquitto",
			                  "%lld policy reloads failed: the broker may run an older policy than the file says",
			                  reload_failures);
		}
		if(!audit_errors && !reload_failures) {
			doctor_report_add(r, "LIVE-BROKER", DOCTOR_PASS, ev, NULL,
			                  "the broker answers and its counters show no audit or reload failures");
		}
	}
	if(st->connack == 0) {
		mosquitto_disconnect(mosq);
	}
	mosquitto_destroy(mosq);
	mosq = NULL;

	/* A client without a certificate must be turned away. */
	if(st->connack == 0) {
		doctor_live_state_t anon;
		memset(&anon, 0, sizeof(anon));
		anon.connack = -1;
		mosq = mosquitto_new("plantgate-doctor-nocert", true, &anon);
		if(mosq && mosquitto_tls_set(mosq, in->cafile, NULL, NULL, NULL, NULL) == MOSQ_ERR_SUCCESS) {
			mosquitto_connect_callback_set(mosq, doctor_live_on_connect);
			mosquitto_disconnect_callback_set(mosq, doctor_live_on_disconnect);
			util_snprintf(ev, sizeof(ev), "%s:%d: TLS client without a certificate", host, port);
			if(mosquitto_connect(mosq, host, port, 30) == MOSQ_ERR_SUCCESS) {
				doctor_live_run(mosq, &anon, doctor_live_ms() + in->timeout_ms, false);
			}
			if(anon.connack == 0) {
				doctor_report_add(r, "LIVE-NOCERT", DOCTOR_CRITICAL, ev, "require_certificate true; allow_anonymous false",
				                  "the running broker accepted a client without a certificate");
				mosquitto_disconnect(mosq);
			} else {
				doctor_report_add(r, "LIVE-NOCERT", DOCTOR_PASS, ev, NULL,
				                  "the running broker turned away a client without a certificate");
			}
		}
	}
out:
	if(mosq) {
		mosquitto_destroy(mosq);
	}
	mosquitto_lib_cleanup();
	free(st);
}

/* GET url; *status = HTTP status or -1 when unreachable; body snippet into body. */
static void doctor_live_http_get(const char *url, int timeout_ms, int *status, char *body, size_t bodylen,
                                 char *what, size_t whatlen)
{
	char host[256], hostport[300], path[512], req[1024], buf[4096];
	int port, fd = -1;
	size_t got = 0;
	struct sockaddr_storage ss;
	socklen_t sslen;
	*status = -1;
	body[0] = '\0';
	if(strncmp(url, "http://", 7) != 0) {
		util_snprintf(what, whatlen, "only http:// URLs on loopback are examined");
		return;
	}
	const char *hp = url + 7;
	const char *slash = strchr(hp, '/');
	size_t hl = slash ? (size_t)(slash - hp) : strlen(hp);
	if(hl >= sizeof(hostport)) {
		util_snprintf(what, whatlen, "URL too long");
		return;
	}
	memcpy(hostport, hp, hl);
	hostport[hl] = '\0';
	util_strlcpy(path, slash && strcmp(slash, "/") != 0 ? slash : "/healthz", sizeof(path));
	if(doctor_live_hostport(hostport, host, sizeof(host), &port) != 0) {
		util_snprintf(what, whatlen, "only 127.0.0.1, ::1 or localhost with a port are examined");
		return;
	}
	memset(&ss, 0, sizeof(ss));
	if(strcmp(host, "::1") == 0) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		a6->sin6_addr = in6addr_loopback;
		sslen = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sslen = sizeof(*a4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if(fd < 0) {
		util_snprintf(what, whatlen, "socket: %s", strerror(errno));
		goto out;
	}
	if(connect(fd, (struct sockaddr *)&ss, sslen) != 0 && errno != EINPROGRESS) {
		util_snprintf(what, whatlen, "connect %s:%d: %s", host, port, strerror(errno));
		goto out;
	}
	struct pollfd pfd = {fd, POLLOUT, 0};
	int err = 0;
	socklen_t el = sizeof(err);
	if(poll(&pfd, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
		util_snprintf(what, whatlen, "connect %s:%d: %s", host, port, err ? strerror(err) : "timed out");
		goto out;
	}
	int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", path, hostport);
	if(rl < 0 || (size_t)rl >= sizeof(req) || write(fd, req, (size_t)rl) != rl) {
		util_snprintf(what, whatlen, "cannot send the request");
		goto out;
	}
	long long deadline = doctor_live_ms() + timeout_ms;
	while(got + 1 < sizeof(buf)) {
		long long left = deadline - doctor_live_ms();
		pfd.events = POLLIN;
		if(left <= 0 || poll(&pfd, 1, (int)left) != 1) {
			break;
		}
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if(n <= 0) {
			break;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	util_snprintf(what, whatlen, "GET http://%s%s", hostport, path);
	if(strncmp(buf, "HTTP/1.", 7) == 0 && got >= 12) {
		int64_t code;
		char c3[4] = {buf[9], buf[10], buf[11], '\0'};
		if(util_parse_i64(c3, 100, 599, &code) == 0) {
			*status = (int)code;
		}
		const char *b = strstr(buf, "\r\n\r\n");
		if(b) {
			/* Printable ASCII only, newlines as blanks, cut to fit. */
			size_t at = 0;
			for(const char *q = b + 4; *q && at + 1 < bodylen; q++) {
				unsigned char c = (unsigned char)*q;
				body[at++] = c == '\n' || c == '\r' || c == '\t' ? ' ' : (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
			}
			body[at] = '\0';
		}
	} else {
		*status = 0;
	}
out:
	if(fd >= 0) {
		close(fd);
	}
}

/* The pid of the process listening on 127.0.0.1/::1 port, or 0. */
static long doctor_live_listener_pid(int port)
{
	char line[512];
	unsigned long inode = 0;
	const char *files[2] = {"/proc/net/tcp", "/proc/net/tcp6"};
	for(int f = 0; f < 2 && !inode; f++) {
		FILE *fp = fopen(files[f], "r");
		if(!fp) {
			continue;
		}
		while(fgets(line, sizeof(line), fp)) {
			char local[64], remote[64];
			unsigned st;
			unsigned long ino;
			int n = sscanf(line, " %*d: %63s %63s %x %*s %*s %*s %*s %*s %lu", local, remote, &st, &ino);
			const char *colon = strrchr(local, ':');
			if(n == 4 && st == 0x0A && colon && strtol(colon + 1, NULL, 16) == port) {
				inode = ino;
				break;
			}
		}
		fclose(fp);
	}
	if(!inode) {
		return 0;
	}
	char want[64];
	long found = 0;
	util_snprintf(want, sizeof(want), "socket:[%lu]", inode);
	DIR *proc = opendir("/proc");
	struct dirent *de;
	while(proc && !found && (de = readdir(proc)) != NULL) {
		int64_t pid;
		char fddir[300];
		if(util_parse_i64(de->d_name, 1, 4194304, &pid) != 0) {
			continue;
		}
		util_snprintf(fddir, sizeof(fddir), "/proc/%s/fd", de->d_name);
		DIR *fds = opendir(fddir);
		struct dirent *fe;
		while(fds && !found && (fe = readdir(fds)) != NULL) {
			char lp[600], target[64];
			util_snprintf(lp, sizeof(lp), "%s/%s", fddir, fe->d_name);
			ssize_t n = readlink(lp, target, sizeof(target) - 1);
			if(n > 0) {
				target[n] = '\0';
				if(strcmp(target, want) == 0) {
					found = (long)pid;
				}
			}
		}
		if(fds) {
			closedir(fds);
		}
	}
	if(proc) {
		closedir(proc);
	}
	return found;
}

long doctor_live_check(const doctor_live_in_t *in, doctor_report_t *r)
{
	long pid = 0;
	if(in->broker) {
		doctor_live_broker(in, r);
	}
	if(in->bridge_url) {
		char body[256], what[512], ev[1024], host[256], hostport[300];
		int status, port = 0;
		doctor_live_http_get(in->bridge_url, in->timeout_ms, &status, body, sizeof(body), what, sizeof(what));
		util_snprintf(ev, sizeof(ev), "%s -> %d %s", what, status, body);
		if(status < 0) {
			util_snprintf(ev, sizeof(ev), "%s: %s", in->bridge_url, what);
			doctor_report_add(r, "LIVE-BRIDGE", DOCTOR_INFO, ev, "systemctl status plantgate-bridge",
			                  "the bridge's status endpoint is not reachable");
		} else if(status == 200) {
			doctor_report_add(r, "LIVE-BRIDGE", DOCTOR_PASS, ev, NULL, "the running bridge reports healthy");
		} else {
			doctor_report_add(r, "LIVE-BRIDGE", DOCTOR_WARNING, ev, "journalctl -u plantgate-bridge; see docs/bridge.md",
			                  "the running bridge reports a problem (HTTP %d)", status);
		}
		const char *hp = strncmp(in->bridge_url, "http://", 7) == 0 ? in->bridge_url + 7 : in->bridge_url;
		size_t hl = strcspn(hp, "/");
		if(status >= 0 && hl < sizeof(hostport)) {
			memcpy(hostport, hp, hl);
			hostport[hl] = '\0';
			if(doctor_live_hostport(hostport, host, sizeof(host), &port) == 0) {
				pid = doctor_live_listener_pid(port);
			}
		}
	}
	return pid;
}
