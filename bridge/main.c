/*
 * main.c — plantgate-bridge: option parsing, configuration check (-n), start
 * of the plant and cloud threads, and signal handling (SIGTERM/SIGINT: stop
 * gracefully; SIGHUP: re-read the forward rules).
 *
 *   plantgate-bridge -c FILE            run
 *   plantgate-bridge -n -c FILE         check the configuration and exit
 *   plantgate-bridge -n -p -c FILE      ... and print the effective configuration
 *   plantgate-bridge deadletter ...     dead letters (deadletter.c)
 *   --no-file-checks                    with -n: skip checking that the
 *                                       certificate, key and queue paths exist
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blog.h"
#include "bridge.h"
#include "deadletter.h"
#include "pg_version.h"
#include "http.h"
#include "priv.h"
#include "sign.h"
#include "util.h"

/* Forward rules whose filters overlap without one covering the other: the
 * plant broker sends a message matching both twice (one copy per
 * subscription), and both copies are queued.  Covered filters are simply not
 * subscribed (whitelist_subscriptions); these cannot be collapsed, so -n and
 * every start warn.  Returns how many such pairs. */
typedef struct overlap_ctx {
	const char *path; /* NULL: log instead of stderr */
} overlap_ctx_t;

static void overlap_warn(void *arg, const wl_rule_t *a, const wl_rule_t *b)
{
	const overlap_ctx_t *o = arg;
	if(o->path) {
		fprintf(stderr,
		        "%s:%d: warning: forward '%s' overlaps the rule at line %d ('%s') and neither "
		        "covers the other: a plant message matching both arrives twice and is queued "
		        "twice, under two sequence ids; make the filters disjoint, or replace them with "
		        "one that covers both\n",
		        o->path, b->line, b->filter, a->line, a->filter);
	} else {
		blog(BLOG_WARN, "config.overlap",
		     "rule_line=%d filter=%s other_line=%d other_filter=%s note=\"a plant message "
		     "matching both is forwarded twice, under two sequence ids; make the filters "
		     "disjoint\"",
		     b->line, b->filter, a->line, a->filter);
	}
}

static size_t warn_overlaps(const whitelist_t *w, const char *path)
{
	bool *sub = calloc(w->count ? w->count : 1, sizeof(*sub));
	if(!sub) {
		return 0;
	}
	whitelist_subscriptions(w, sub);
	overlap_ctx_t o = {.path = path};
	size_t n = whitelist_overlaps(w, sub, overlap_warn, &o);
	free(sub);
	return n;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: plantgate-bridge -c FILE [-n [-p] [--no-file-checks]]\n"
	           "       plantgate-bridge deadletter list|show|replay|purge ... -c FILE\n"
	           "       plantgate-bridge --version | --help\n"
	           "  -c FILE            configuration file (see docs/bridge.md)\n"
	           "  -n                 check the configuration, print \"configuration OK\" "
	           "or the errors, exit\n"
	           "  -p                 with -n: print the effective configuration\n"
	           "  --no-file-checks   with -n: do not check that certificate, key and queue "
	           "paths exist\n"
	           "                     (for checking a configuration on another machine)\n"
	           "  --version          print the version and exit\n");
}

/* Re-read the configuration; on success hand the new whitelist to the plant
 * thread.  Other settings take effect at the next start. */
static void reload(bridge_t *b, const char *path)
{
	static char err[16384];
	bconf_t ncfg;
	int n = bconf_load(path, &ncfg, err, sizeof(err));
	if(n) {
		for(char *line = err; *line;) {
			char *nl = strchr(line, '\n');
			if(nl) {
				*nl = '\0';
			}
			blog(BLOG_ERROR, "config.reload_failed",
			     "error=\"%s\" action=\"keeping the current rules\"", line);
			if(!nl) {
				break;
			}
			line = nl + 1;
		}
		return;
	}
	whitelist_t *wl = malloc(sizeof(*wl));
	if(!wl) {
		bconf_free(&ncfg);
		blog(BLOG_ERROR, "config.reload_failed", "error=\"out of memory\"");
		return;
	}
	*wl = ncfg.whitelist;
	warn_overlaps(wl, NULL);
	ncfg.whitelist.rules = NULL;
	ncfg.whitelist.count = 0;
	bconf_free(&ncfg);
	pthread_mutex_lock(&b->mu);
	if(b->pending_whitelist) {
		whitelist_clear(b->pending_whitelist);
		free(b->pending_whitelist);
	}
	b->pending_whitelist = wl;
	pthread_mutex_unlock(&b->mu);
	blog(BLOG_INFO, "config.reloaded",
	     "path=%s rules=%zu note=\"forward rules applied; other settings take effect at the "
	     "next start\"",
	     path, wl->count);
}

/* The command line.  Returns -1 to go on, else the exit code (0 after
 * --help or --version, 2 for a usage error). */
typedef struct main_opts {
	const char *path;
	bool check_only, print, file_checks;
} main_opts_t;

static int main_options(int argc, char **argv, main_opts_t *o)
{
	static const struct option longopts[] = {{"no-file-checks", no_argument, NULL, 'F'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {"version", no_argument, NULL, 'V'},
	                                         {NULL, 0, NULL, 0}};
	*o = (main_opts_t){.file_checks = true};
	int opt;
	while((opt = getopt_long(argc, argv, "c:nph", longopts, NULL)) != -1) {
		switch(opt) {
		case 'c':
			o->path = optarg;
			break;
		case 'n':
			o->check_only = true;
			break;
		case 'p':
			o->print = true;
			break;
		case 'F':
			o->file_checks = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("plantgate-bridge %s\n", PG_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if(!o->path || optind != argc || (!o->check_only && (o->print || !o->file_checks))) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* What the operator should know before the bridge connects: signing on or
 * off, overlapping rules, the test-only hostname switch. */
static void main_announce(bridge_t *b)
{
	const bconf_t *cfg = b->cfg;
	if(b->sign_key) {
		blog(BLOG_INFO, "bridge.signing", "site=%s kid=%s algorithm=%s", cfg->site_id,
		     envelope_key_kid(b->sign_key), envelope_alg_name(envelope_key_alg(b->sign_key)));
	} else {
		blog(BLOG_WARN, "bridge.unsigned",
		     "reason=\"no sign_key\" note=\"messages leave without the integrity envelope: "
		     "cloud consumers cannot prove that data came from this plant unchanged and in "
		     "sequence (docs/integrity.md)\" fix=\"scripts/pki signing-key NAME, then set "
		     "site_id and sign_key\"");
	}
	warn_overlaps(&cfg->whitelist, NULL);
	const char *insecure = getenv("PLANTGATE_TEST_INSECURE_HOSTNAME");
	if(insecure && strcmp(insecure, "1") == 0) {
		b->insecure_hostname = true;
		blog(BLOG_WARN, "bridge.INSECURE",
		     "reason=\"PLANTGATE_TEST_INSECURE_HOSTNAME=1 disables host name verification of "
		     "both brokers; this is for tests only and must never be set in production\"");
	}
	const char *delay = getenv("PLANTGATE_TEST_COMMIT_DELAY_MS");
	int64_t delay_ms = 0;
	if(delay && util_parse_i64(delay, 0, 60000, &delay_ms) != 0) {
		blog(BLOG_WARN, "bridge.TEST_COMMIT_DELAY",
		     "value=\"%.32s\" reason=\"PLANTGATE_TEST_COMMIT_DELAY_MS is not a whole number of "
		     "milliseconds from 0 to 60000; ignored\"",
		     delay);
		delay_ms = 0;
	}
	if(delay_ms > 0) {
		b->test_commit_delay_ms = (int)delay_ms;
		blog(BLOG_WARN, "bridge.TEST_COMMIT_DELAY",
		     "delay_ms=%d reason=\"PLANTGATE_TEST_COMMIT_DELAY_MS slows every queue commit down; "
		     "for tests only, never in production\"",
		     b->test_commit_delay_ms);
	}
}

/* Privileged phase: read every secret and bind the HTTP port, then drop
 * root (priv.h).  Nothing here reads network input.  Non-zero with err set
 * when the bridge cannot start. */
static int main_privileged(bridge_t *b, priv_t *priv, http_t **http, char *err, size_t errlen)
{
	const bconf_t *cfg = b->cfg;
	int prc = priv_prepare(cfg, priv, err, errlen);
	if(!prc) {
		prc = secrets_load(&b->secrets, cfg, b->insecure_hostname, err, errlen);
	}
	if(!prc && cfg->http_port && http_create(b, http, err, errlen)) {
		if(cfg->line[BK_HTTP_LISTEN]) {
			prc = -1; /* asked for in the file: it must work */
		} else {
			/* The default port is taken: relaying matters more. */
			blog(BLOG_ERROR, "http.unavailable",
			     "reason=\"%s\" note=\"relaying without the status page, /metrics and "
			     "/healthz; set http_listen\"",
			     err);
		}
	}
	if(!prc) {
		prc = priv_drop(priv, err, errlen);
	}
	if(prc) {
		blog(BLOG_ERROR, "bridge.start_failed", "reason=\"%s\"", err);
		fprintf(stderr, "plantgate-bridge: %s\n", err);
		return prc;
	}
	if(priv->drop) {
		blog(BLOG_INFO, "bridge.privileges_dropped",
		     "user=%s uid=%u gid=%u no_new_privs=1 note=\"keys and configuration were read as "
		     "root; root cannot be regained\"",
		     priv->user, (unsigned)priv->uid, (unsigned)priv->gid);
	} else if(priv->stay_root) {
		blog(BLOG_WARN, "bridge.running_as_root",
		     "reason=\"user root with allow_root yes\" note=\"a flaw in the bridge would give "
		     "root to whoever exploits it; prefer an unprivileged user\"");
	}
	return 0;
}

/* The queue, as the user the bridge now runs as.  Non-zero when it cannot
 * be opened (logged, and printed on stderr). */
static int main_open_queue(bridge_t *b, const priv_t *priv, char *err, size_t errlen)
{
	const bconf_t *cfg = b->cfg;
	queue_limits_t lim = {.max_bytes = cfg->queue_max_bytes,
	                      .max_messages = cfg->queue_max_messages,
	                      .when_full = cfg->queue_when_full == BCONF_FULL_DROP_OLDEST
	                                       ? QUEUE_DROP_OLDEST
	                                       : QUEUE_BACKPRESSURE};
	queue_rc_t qrc = queue_open(cfg->queue_path, &lim, &b->queue, err, errlen);
	if(qrc != QUEUE_OK) {
		blog(BLOG_ERROR, "queue.open_failed", "reason=\"%s\" detail=\"%s\"", queue_strerror(qrc),
		     err);
		fprintf(stderr, "plantgate-bridge: %s\n", err);
		if(priv->drop) {
			fprintf(stderr,
			        "plantgate-bridge: running as user %s: the queue's directory must be "
			        "writable by it (chown %s: DIR)\n",
			        priv->user, priv->user);
		}
		return -1;
	}
	queue_stats_t st;
	queue_get_stats(b->queue, &st);
	blog(BLOG_INFO, "bridge.starting",
	     "version=%s config=%s queue=%s backlog=%lld backlog_bytes=%llu rules=%zu profile=%s",
	     PG_VERSION, b->cfg_path, cfg->queue_path, (long long)st.messages,
	     (unsigned long long)st.bytes, cfg->whitelist.count, bconf_profile_name(cfg->cloud_profile));
	return 0;
}

/* Until SIGTERM or SIGINT (or a thread sets b->stop): SIGHUP re-reads the
 * forward rules. */
static void main_wait(bridge_t *b, const sigset_t *set)
{
	while(!atomic_load(&b->stop)) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
		int sig = sigtimedwait(set, NULL, &ts);
		if(sig == SIGTERM || sig == SIGINT) {
			blog(BLOG_INFO, "bridge.stopping",
			     "signal=%s action=\"committing, acknowledging and waiting for in-flight "
			     "messages\"",
			     sig == SIGTERM ? "TERM" : "INT");
			atomic_store(&b->stop, true);
		} else if(sig == SIGHUP) {
			reload(b, b->cfg_path);
		}
	}
}

static void main_stopped(bridge_t *b)
{
	queue_stats_t st;
	queue_get_stats(b->queue, &st);
	blog(BLOG_INFO, "bridge.stopped",
	     "received=%llu queued=%llu acked=%llu backlog=%lld dropped_oldest=%llu expired=%llu",
	     (unsigned long long)atomic_load(&b->ctr.in_received),
	     (unsigned long long)atomic_load(&b->ctr.in_queued),
	     (unsigned long long)atomic_load(&b->ctr.out_acked), (long long)st.messages,
	     (unsigned long long)atomic_load(&b->ctr.dropped_oldest),
	     (unsigned long long)atomic_load(&b->ctr.expired));
}

/* One exit path: every step below that fails goes to `out`, which releases
 * whatever was acquired (each _free/_close/_stop accepts what was never
 * made).  Exit codes: 0, 1 (configuration NOT OK, cannot start, or a thread
 * ended the bridge on a fatal error), 2 (usage). */
int main(int argc, char **argv)
{
	static char err[16384];
	static bconf_t cfg;
	static bridge_t b = {.wake = {-1, -1}};
	/* The signing key is read before any privilege drop, as the user that
	 * starts the bridge, and checked by -n too.  Static: reachable until exit
	 * on every path. */
	static envelope_key_t *sign_key;
	http_t *http = NULL;
	bool lib = false, plant_started = false, cloud_started = false;
	pthread_t tp = 0, tc = 0;
	main_opts_t o;
	int rc;

	if(argc > 1 && strcmp(argv[1], "deadletter") == 0) {
		rc = deadletter_main(argc - 1, argv + 1);
		goto out;
	}
	rc = main_options(argc, argv, &o);
	if(rc >= 0) {
		goto out;
	}
	rc = 1;
	int nerr = bconf_load(o.path, &cfg, err, sizeof(err));
	if(!nerr && o.file_checks) {
		nerr = bconf_check_files(&cfg, err, sizeof(err));
	}
	if(!nerr && o.file_checks && sign_load(&cfg, &sign_key, err, sizeof(err))) {
		nerr = 1;
	}
	if(nerr) {
		fputs(err, stderr);
		fprintf(stderr, "%s: %d error%s: configuration NOT OK\n", o.path, nerr, nerr == 1 ? "" : "s");
		goto out;
	}
	if(o.check_only) {
		if(o.print) {
			bconf_print(&cfg, stdout);
		}
		warn_overlaps(&cfg.whitelist, o.path);
		printf("configuration OK\n");
		rc = 0;
		goto out;
	}

	blog_set_level((int)cfg.log_level);
	b.cfg = &cfg;
	b.cfg_path = o.path;
	b.sign_key = sign_key;
	pthread_mutex_init(&b.mu, NULL);
	pthread_mutex_init(&b.connect_mu, NULL);
	main_announce(&b);
	priv_t priv;
	if(main_privileged(&b, &priv, &http, err, sizeof(err)) ||
	   main_open_queue(&b, &priv, err, sizeof(err))) {
		goto out;
	}
	if(pipe(b.wake) || fcntl(b.wake[0], F_SETFL, O_NONBLOCK) ||
	   fcntl(b.wake[1], F_SETFL, O_NONBLOCK)) {
		blog(BLOG_ERROR, "bridge.pipe_failed", "reason=\"%s\"", strerror(errno));
		goto out;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	mosquitto_lib_init();
	lib = true;

	plant_started = pthread_create(&tp, NULL, plant_run, &b) == 0;
	cloud_started = plant_started && pthread_create(&tc, NULL, cloud_run, &b) == 0;
	if(!cloud_started) {
		blog(BLOG_ERROR, "bridge.thread_failed", NULL);
		atomic_store(&b.stop, true);
		goto out;
	}
	if(http && http_start(http)) {
		blog(BLOG_ERROR, "http.thread_failed", "note=\"relaying without the status page\"");
	}
	main_wait(&b, &set);
out:
	if(plant_started) {
		pthread_join(tp, NULL);
	}
	if(cloud_started) {
		pthread_join(tc, NULL);
	}
	http_stop(http);
	if(cloud_started) {
		main_stopped(&b);
		rc = atomic_load(&b.fatal) ? 1 : 0;
	}
	queue_close(b.queue);
	if(b.pending_whitelist) {
		whitelist_clear(b.pending_whitelist);
		free(b.pending_whitelist);
	}
	for(int i = 0; i < 2; i++) {
		if(b.wake[i] >= 0) {
			close(b.wake[i]);
		}
	}
	if(lib) {
		mosquitto_lib_cleanup();
	}
	secrets_free(&b.secrets);
	envelope_key_free(sign_key);
	bconf_free(&cfg);
	return rc;
}
