/*
 * audit_cli.c — plantgate-audit, the operator's tool for the audit trail
 * written by the plugin (see plugin/core/audit.h, docs/audit.md).
 *
 *   plantgate-audit verify [-v] FILE      check the hash chain
 *   plantgate-audit tail [-n N] [-f] FILE  last lines, readable; -f follows
 *   plantgate-audit grep [filters] FILE    lines matching all filters
 *
 * Lines are shown as "ts event who topic "reason" rule" with every field made
 * safe for a terminal (control characters and quotes become '?'), so a hostile
 * client id cannot forge output; --raw prints the JSON lines unchanged.
 * Exit status: verify 0 intact / 1 broken; grep 0 match / 1 none; 2 on usage
 * or I/O errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "pg_version.h"
#include "util.h"

#define CLI_TAIL_MAX 1000000

static const char cli_usage[] =
    "usage: plantgate-audit verify [-v] FILE\n"
    "       plantgate-audit tail [-n N] [-f|--follow] [--raw] FILE\n"
    "       plantgate-audit grep [--identity ID] [--event EV] [--clientid ID] [--topic T]\n"
    "                            [--since TS] [--until TS] [--raw] FILE\n"
    "       plantgate-audit --version | --help\n"
    "\n"
    "  verify   check the SHA-256 hash chain of an audit log; prints\n"
    "           \"OK: N lines, chain intact (K restarts)\" and exits 0, or\n"
    "           \"FILE:LINE: chain broken: WHY\" and exits 1.  -v also prints the\n"
    "           chain head (hash of the last line) to compare with a copy kept\n"
    "           elsewhere, which is what detects lines cut from the end.\n"
    "  tail     print the last N lines (default 10); -f keeps printing new ones.\n"
    "  grep     print the lines matching every filter given.  TS is a UTC time\n"
    "           or its prefix: 2024-05-01, 2024-05-01T12:30, ...\n"
    "  --raw    print the JSON lines instead of the readable form.\n"
    "\n"
    "Events: connect connect-refused publish-denied subscribe-denied read-denied\n"
    "        kick revoke reload reload-failed rate-limited audit-suppressed\n"
    "        chain-restart start stop\n";

static int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("plantgate-audit: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	fputs(cli_usage, stderr);
	return 2;
}

/* ------------------------------------------------------------------------
 * Output
 * ---------------------------------------------------------------------- */

static const char *cli_or_dash(const char *s, char *buf, size_t buflen)
{
	if(!s || !*s) {
		return "-";
	}
	return util_log_safe(s, buf, buflen);
}

static void cli_print_record(const audit_record_t *r)
{
	char who[AUDIT_FIELD_MAX * 2], topic[AUDIT_FIELD_MAX * 2], reason[AUDIT_FIELD_MAX * 2],
	    rule[AUDIT_FIELD_MAX * 2], ev[64], sup[64];
	const char *w;
	if(r->identity && *r->identity) {
		w = cli_or_dash(r->identity, who, sizeof(who));
	} else if(r->address && *r->address) {
		char tmp[AUDIT_FIELD_MAX * 2];
		util_log_safe(r->address, tmp, sizeof(tmp));
		util_snprintf(who, sizeof(who), "address=%s", tmp);
		w = who;
	} else {
		w = "-";
	}
	printf("%s %s %s %s ", r->ts, cli_or_dash(r->event, ev, sizeof(ev)), w,
	       cli_or_dash(r->topic, topic, sizeof(topic)));
	if(r->reason && *r->reason) {
		printf("\"%s\" ", util_log_safe(r->reason, reason, sizeof(reason)));
	} else {
		fputs("- ", stdout);
	}
	fputs(cli_or_dash(r->rule, rule, sizeof(rule)), stdout);
	if(r->count > 0) {
		printf(" (%s x%lld)", r->suppressed ? util_log_safe(r->suppressed, sup, sizeof(sup)) : "count",
		       (long long)r->count);
	}
	putchar('\n');
}

/* Print one raw line; `raw` prints it unchanged (it is JSON: no controls). */
static void cli_print_line(const char *file, unsigned long long lineno, const char *line,
                           size_t len, bool raw)
{
	audit_record_t r;
	char err[160];
	if(audit_parse_line(line, len, &r, err, sizeof(err))) {
		if(lineno) {
			fprintf(stderr, "%s:%llu: unparseable line: %s\n", file, lineno, err);
		} else {
			fprintf(stderr, "%s: unparseable line: %s\n", file, err);
		}
		return;
	}
	if(raw) {
		fwrite(line, 1, len, stdout);
		putchar('\n');
	} else {
		cli_print_record(&r);
	}
	audit_record_free(&r);
}

/* ------------------------------------------------------------------------
 * Bounded line reader
 * ---------------------------------------------------------------------- */

typedef struct cli_reader {
	int fd;
	char *line;
	size_t len;
	bool overflow;
	char buf[16384];
	size_t bpos;
	size_t bend;
} cli_reader_t;

/* Next complete line into r->line/r->len (overflow set if it was longer than
 * AUDIT_LINE_MAX).  Returns 1 for a line, 0 at end of data (a partial line
 * stays buffered for the next call), -1 on error. */
static int cli_next_line(cli_reader_t *r)
{
	for(;;) {
		if(r->bpos == r->bend) {
			ssize_t n = read(r->fd, r->buf, sizeof(r->buf));
			if(n < 0 && errno == EINTR) {
				continue;
			}
			if(n <= 0) {
				return n < 0 ? -1 : 0;
			}
			r->bpos = 0;
			r->bend = (size_t)n;
		}
		char *start = r->buf + r->bpos;
		size_t avail = r->bend - r->bpos;
		char *nl = memchr(start, '\n', avail);
		size_t seg = nl ? (size_t)(nl - start) : avail;
		if(!r->overflow && seg <= AUDIT_LINE_MAX - r->len) {
			memcpy(r->line + r->len, start, seg);
			r->len += seg;
		} else {
			r->overflow = true;
		}
		r->bpos += seg + (nl ? 1 : 0);
		if(nl) {
			return 1;
		}
	}
}

static void cli_reset_line(cli_reader_t *r)
{
	r->len = 0;
	r->overflow = false;
}

static int cli_open_reader(cli_reader_t *r, const char *file)
{
	memset(r, 0, sizeof(*r));
	r->fd = open(file, O_RDONLY | O_CLOEXEC);
	if(r->fd < 0) {
		fprintf(stderr, "%s: cannot open: %s\n", file, strerror(errno));
		return -1;
	}
	r->line = malloc(AUDIT_LINE_MAX);
	if(!r->line) {
		fprintf(stderr, "plantgate-audit: out of memory\n");
		close(r->fd);
		return -1;
	}
	return 0;
}

static void cli_close_reader(cli_reader_t *r)
{
	if(r->fd >= 0) {
		close(r->fd);
	}
	free(r->line);
}

/* ------------------------------------------------------------------------
 * verify
 * ---------------------------------------------------------------------- */

static int cli_verify(int argc, char **argv)
{
	bool verbose = false;
	const char *file = NULL;
	for(int i = 0; i < argc; i++) {
		if(!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			verbose = true;
		} else if(argv[i][0] == '-' && argv[i][1]) {
			return cli_usage_error("verify: unknown option %s", argv[i]);
		} else if(file) {
			return cli_usage_error("verify: more than one FILE (%s)", argv[i]);
		} else {
			file = argv[i];
		}
	}
	if(!file) {
		return cli_usage_error("verify: FILE is missing");
	}
	audit_verify_result_t res;
	int rc = audit_verify_file(file, &res);
	if(rc < 0) {
		fprintf(stderr, "%s: cannot verify: %s\n", file, res.why);
		return 2;
	}
	if(rc > 0) {
		printf("%s:%llu: chain broken: %s\n", file, (unsigned long long)res.bad_line, res.why);
		return 1;
	}
	printf("OK: %llu lines, chain intact (%llu restarts)\n", (unsigned long long)res.lines,
	       (unsigned long long)res.restarts);
	if(verbose) {
		if(res.restarts) {
			printf("first chain-restart on line %llu\n",
			       (unsigned long long)res.first_restart_line);
		}
		printf("head %s\n", res.head);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * tail
 * ---------------------------------------------------------------------- */

static volatile sig_atomic_t cli_stop;

static void cli_on_signal(int sig)
{
	(void)sig;
	cli_stop = 1;
}

/* Offset where the last n lines of fd begin (a trailing partial line counts
 * as one). */
static off_t cli_tail_start(int fd, off_t size, long n)
{
	char buf[16384];
	off_t pos = size;
	long seen = 0;
	bool first = true;
	while(pos > 0) {
		size_t chunk = pos > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)pos;
		if(pread(fd, buf, chunk, pos - (off_t)chunk) != (ssize_t)chunk) {
			return 0;
		}
		for(size_t i = chunk; i > 0; i--) {
			if(buf[i - 1] != '\n') {
				first = false;
				continue;
			}
			if(first) {
				first = false; /* the file's final newline ends the last line */
				continue;
			}
			if(++seen == n) {
				return pos - (off_t)chunk + (off_t)i;
			}
		}
		pos -= (off_t)chunk;
	}
	return 0;
}

static int cli_tail(int argc, char **argv)
{
	long n = 10;
	bool follow = false, raw = false;
	const char *file = NULL;
	for(int i = 0; i < argc; i++) {
		if(!strcmp(argv[i], "-n")) {
			int64_t v;
			if(i + 1 >= argc || util_parse_i64(argv[i + 1], 0, CLI_TAIL_MAX, &v)) {
				return cli_usage_error("tail: -n needs a number of lines (0..%d)", CLI_TAIL_MAX);
			}
			n = (long)v;
			i++;
		} else if(!strcmp(argv[i], "-f") || !strcmp(argv[i], "--follow")) {
			follow = true;
		} else if(!strcmp(argv[i], "--raw")) {
			raw = true;
		} else if(argv[i][0] == '-' && argv[i][1]) {
			return cli_usage_error("tail: unknown option %s", argv[i]);
		} else if(file) {
			return cli_usage_error("tail: more than one FILE (%s)", argv[i]);
		} else {
			file = argv[i];
		}
	}
	if(!file) {
		return cli_usage_error("tail: FILE is missing");
	}
	cli_reader_t r;
	if(cli_open_reader(&r, file)) {
		return 2;
	}
	struct stat st;
	if(fstat(r.fd, &st)) {
		fprintf(stderr, "%s: cannot stat: %s\n", file, strerror(errno));
		cli_close_reader(&r);
		return 2;
	}
	off_t start = n > 0 ? cli_tail_start(r.fd, st.st_size, n) : st.st_size;
	if(lseek(r.fd, start, SEEK_SET) < 0) {
		fprintf(stderr, "%s: cannot seek: %s\n", file, strerror(errno));
		cli_close_reader(&r);
		return 2;
	}
	if(follow) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = cli_on_signal;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	for(;;) {
		int got;
		while((got = cli_next_line(&r)) == 1) {
			if(r.overflow) {
				fprintf(stderr, "%s: line longer than %d bytes skipped\n", file, AUDIT_LINE_MAX);
			} else {
				cli_print_line(file, 0, r.line, r.len, raw);
			}
			cli_reset_line(&r);
		}
		if(got < 0) {
			fprintf(stderr, "%s: read error: %s\n", file, strerror(errno));
			cli_close_reader(&r);
			return 2;
		}
		if(!follow) {
			if(r.len > 0 || r.overflow) {
				fprintf(stderr, "%s: last line is incomplete (no newline)\n", file);
			}
			break;
		}
		fflush(stdout);
		if(cli_stop) {
			break;
		}
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 500 * 1000 * 1000};
		nanosleep(&ts, NULL);
		/* Rotated (new inode) or truncated: start again from the top. */
		struct stat now;
		bool reopen = stat(file, &now) == 0 && (now.st_ino != st.st_ino || now.st_dev != st.st_dev);
		bool shrunk = fstat(r.fd, &now) == 0 && now.st_size < lseek(r.fd, 0, SEEK_CUR);
		if(reopen || shrunk) {
			fprintf(stderr, "%s: %s, reading from the start\n", file,
			        reopen ? "file was replaced" : "file was truncated");
			cli_close_reader(&r);
			if(cli_open_reader(&r, file)) {
				return 2;
			}
			if(fstat(r.fd, &st)) {
				cli_close_reader(&r);
				return 2;
			}
		}
	}
	cli_close_reader(&r);
	return 0;
}

/* ------------------------------------------------------------------------
 * grep
 * ---------------------------------------------------------------------- */

/* A time filter: a prefix of "YYYY-MM-DDTHH:MM:SS.mmmZ" (a space may stand
 * for the 'T'), at least the year. */
static int cli_parse_time(const char *in, char *out, size_t outlen)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	size_t n = strlen(in);
	if(n < 4 || n > sizeof(pat) - 1 || n >= outlen) {
		return -1;
	}
	for(size_t i = 0; i < n; i++) {
		char c = in[i];
		if(pat[i] == 'd') {
			if(c < '0' || c > '9') {
				return -1;
			}
		} else if(pat[i] == 'T') {
			if(c != 'T' && c != ' ') {
				return -1;
			}
			c = 'T';
		} else if(c != pat[i]) {
			return -1;
		}
		out[i] = c;
	}
	out[n] = '\0';
	return 0;
}

static int cli_grep(int argc, char **argv)
{
	const char *identity = NULL, *event = NULL, *clientid = NULL, *topic = NULL, *file = NULL;
	char since[32] = "", until[32] = "";
	bool raw = false;
	for(int i = 0; i < argc; i++) {
		const char *o = argv[i];
		const char **dst = NULL;
		char *tdst = NULL;
		if(!strcmp(o, "--identity")) {
			dst = &identity;
		} else if(!strcmp(o, "--event")) {
			dst = &event;
		} else if(!strcmp(o, "--clientid")) {
			dst = &clientid;
		} else if(!strcmp(o, "--topic")) {
			dst = &topic;
		} else if(!strcmp(o, "--since")) {
			tdst = since;
		} else if(!strcmp(o, "--until")) {
			tdst = until;
		} else if(!strcmp(o, "--raw")) {
			raw = true;
			continue;
		} else if(o[0] == '-' && o[1]) {
			return cli_usage_error("grep: unknown option %s", o);
		} else if(file) {
			return cli_usage_error("grep: more than one FILE (%s)", o);
		} else {
			file = o;
			continue;
		}
		if(i + 1 >= argc) {
			return cli_usage_error("grep: %s needs a value", o);
		}
		i++;
		if(dst) {
			*dst = argv[i];
		} else if(cli_parse_time(argv[i], tdst, 32)) {
			return cli_usage_error("grep: time \"%s\" is not YYYY-MM-DD[THH[:MM[:SS[.mmm]]]]",
			                       argv[i]);
		}
	}
	if(!file) {
		return cli_usage_error("grep: FILE is missing");
	}
	if(event && !audit_event_known(event)) {
		return cli_usage_error("grep: unknown event \"%s\" (see the list below)", event);
	}
	cli_reader_t r;
	if(cli_open_reader(&r, file)) {
		return 2;
	}
	unsigned long long lineno = 0, matches = 0;
	int got;
	while((got = cli_next_line(&r)) == 1) {
		audit_record_t rec;
		char err[160];
		lineno++;
		if(r.overflow) {
			fprintf(stderr, "%s:%llu: line longer than %d bytes skipped\n", file, lineno,
			        AUDIT_LINE_MAX);
		} else if(audit_parse_line(r.line, r.len, &rec, err, sizeof(err))) {
			fprintf(stderr, "%s:%llu: unparseable line: %s\n", file, lineno, err);
		} else {
			bool ok = (!identity || (rec.identity && !strcmp(rec.identity, identity))) &&
			          (!event || !strcmp(rec.event, event) ||
			           (rec.suppressed && !strcmp(rec.suppressed, event))) &&
			          (!clientid || (rec.clientid && !strcmp(rec.clientid, clientid))) &&
			          (!topic || (rec.topic && !strcmp(rec.topic, topic))) &&
			          (!since[0] || strncmp(rec.ts, since, strlen(since)) >= 0) &&
			          (!until[0] || strncmp(rec.ts, until, strlen(until)) <= 0);
			if(ok) {
				matches++;
				if(raw) {
					fwrite(r.line, 1, r.len, stdout);
					putchar('\n');
				} else {
					cli_print_record(&rec);
				}
			}
			audit_record_free(&rec);
		}
		cli_reset_line(&r);
	}
	if(got == 0 && (r.len > 0 || r.overflow)) {
		fprintf(stderr, "%s:%llu: last line is incomplete (no newline)\n", file, lineno + 1);
	}
	int rc = got < 0 ? 2 : matches ? 0 : 1;
	if(got < 0) {
		fprintf(stderr, "%s: read error: %s\n", file, strerror(errno));
	}
	cli_close_reader(&r);
	return rc;
}

int main(int argc, char **argv)
{
	if(argc < 2) {
		return cli_usage_error("a command is missing");
	}
	const char *cmd = argv[1];
	if(!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(cli_usage, stdout);
		return 0;
	}
	if(!strcmp(cmd, "--version")) {
		printf("plantgate-audit %s\n", PG_VERSION);
		return 0;
	}
	int rc;
	if(!strcmp(cmd, "verify")) {
		rc = cli_verify(argc - 2, argv + 2);
	} else if(!strcmp(cmd, "tail")) {
		rc = cli_tail(argc - 2, argv + 2);
	} else if(!strcmp(cmd, "grep")) {
		rc = cli_grep(argc - 2, argv + 2);
	} else {
		return cli_usage_error("unknown command \"%s\"", cmd);
	}
	if(fflush(stdout) != 0 && rc != 2) {
		fprintf(stderr, "plantgate-audit: cannot write output: %s\n", strerror(errno));
		rc = 2;
	}
	return rc;
}
