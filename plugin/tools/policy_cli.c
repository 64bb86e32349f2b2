/*
 * policy_cli.c — plantgate-policy, the operator's tool for the device policy.
 *
 *   plantgate-policy check FILE
 *       Load FILE exactly as the plugin would; print a summary (roles, devices,
 *       patterns, rules per role) and "configuration OK", or the "file:line:"
 *       error.  Exit 0 when valid, 1 otherwise.
 *
 *   plantgate-policy explain FILE --id ID [--clientid CID] [--attr k=v ...]
 *                    --publish|--subscribe|--read TOPIC
 *                    [--qos N] [--retain] [--size BYTES]
 *       Show which policy entry applies to the identity and whether the
 *       request would be allowed, with the rule (file:line) that decided.
 *       Exit 0 for ALLOW, 2 for DENY, 1 for usage or load errors.
 *
 * Uses only the public policy API (policy.h), so it answers exactly as the
 * plugin does.  Options are parsed by hand: each takes its value as the next
 * word or after '=', order does not matter, and anything unknown is an error.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pg_version.h"
#include "policy.h"
#include "util.h"

#define CLI_MAX_ATTRS 32

static void cli_usage(FILE *f)
{
	fputs("usage: plantgate-policy check FILE\n"
	      "       plantgate-policy explain FILE --id ID [--clientid CID] [--attr KEY=VALUE ...]\n"
	      "                        (--publish | --subscribe | --read) TOPIC\n"
	      "                        [--qos 0|1|2] [--retain] [--size BYTES]\n"
	      "       plantgate-policy --version | --help\n"
	      "\n"
	      "check    validate a policy file and print a summary; exit 0 if valid, 1 if not\n"
	      "explain  decide one request as the broker plugin would and show the rule that\n"
	      "         decided; exit 0 for ALLOW, 2 for DENY, 1 for errors\n"
	      "\n"
	      "  --id ID           the device identity (from its certificate)\n"
	      "  --clientid CID    the MQTT client id (default: the identity)\n"
	      "  --attr KEY=VALUE  an attribute the certificate carries (repeatable),\n"
	      "                    e.g. --attr site=hq --attr line=line1\n"
	      "  --publish TOPIC   the client publishes to TOPIC\n"
	      "  --subscribe FILT  the client subscribes to FILT (may be $share/GROUP/FILT)\n"
	      "  --read TOPIC      the broker delivers a message on TOPIC to the client\n"
	      "  --qos N           QoS of the request (default 0)\n"
	      "  --retain          the message is retained\n"
	      "  --size BYTES      payload size, e.g. 512, 16k, 1M (default 0)\n",
	      f);
}

static int cli_check(const char *path)
{
	char err[1024];
	policy_t *p = policy_load_file(path, err, sizeof(err));
	if(!p) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	policy_stats_t st;
	policy_get_stats(p, &st);
	printf("%s: %zu roles, %zu devices, %zu patterns, %zu rules\n", path, st.roles, st.devices,
	       st.matches, st.rules);
	printf("  default deny; unknown devices: %s%s\n", st.unknown_role ? "role " : "refused",
	       st.unknown_role ? st.unknown_role : "");
	policy_role_info_t ri;
	for(size_t i = 0; policy_role_at(p, i, &ri); i++) {
		printf("  role %-16s line %-5d %zu allow, %zu deny\n", ri.name, ri.line, ri.allow_rules,
		       ri.deny_rules);
	}
	printf("configuration OK\n");
	policy_free(p);
	return 0;
}

/* The value of option argv[*i]: after '=' in the same word, or the next word. */
static char *cli_value(int argc, char **argv, int *i, const char *name)
{
	char *eq = strchr(argv[*i], '=');
	if(eq) {
		return eq + 1;
	}
	if(*i + 1 >= argc) {
		fprintf(stderr, "plantgate-policy: %s needs a value\n", name);
		return NULL;
	}
	return argv[++*i];
}

/* Does argv word w name option `name`, alone or as name=value? */
static bool cli_is(const char *w, const char *name)
{
	size_t n = strlen(name);
	return strncmp(w, name, n) == 0 && (w[n] == '\0' || w[n] == '=');
}

/* explain's request, as the command line gives it. */
typedef struct cli_explain_args {
	const char *path, *id, *cid, *topic;
	policy_attr_t attrs[CLI_MAX_ATTRS];
	size_t nattrs;
	policy_request_t req;
	bool have_access;
} cli_explain_args_t;

/* Read explain's arguments into x: 0, or -1 after saying what is wrong
 * (a FILE, --id and one access are required). */
static int cli_explain_args(int argc, char **argv, cli_explain_args_t *x)
{
	for(int i = 2; i < argc; i++) {
		const char *w = argv[i];
		char *v;
		if(cli_is(w, "--id")) {
			if(!(x->id = cli_value(argc, argv, &i, "--id"))) {
				return -1;
			}
		} else if(cli_is(w, "--clientid")) {
			if(!(x->cid = cli_value(argc, argv, &i, "--clientid"))) {
				return -1;
			}
		} else if(cli_is(w, "--attr")) {
			if(!(v = cli_value(argc, argv, &i, "--attr"))) {
				return -1;
			}
			char *eq = strchr(v, '=');
			if(!eq || eq == v) {
				fprintf(stderr, "plantgate-policy: --attr wants KEY=VALUE, got \"%s\"\n", v);
				return -1;
			}
			if(x->nattrs == CLI_MAX_ATTRS) {
				fprintf(stderr, "plantgate-policy: at most %d --attr\n", CLI_MAX_ATTRS);
				return -1;
			}
			/* Split in place: argv strings are ours to modify. */
			*eq = '\0';
			x->attrs[x->nattrs].key = v;
			x->attrs[x->nattrs].value = eq + 1;
			x->nattrs++;
		} else if(cli_is(w, "--publish") || cli_is(w, "--subscribe") || cli_is(w, "--read")) {
			if(x->have_access) {
				fprintf(stderr,
				        "plantgate-policy: give exactly one of --publish, --subscribe, --read\n");
				return -1;
			}
			x->have_access = true;
			x->req.access = w[2] == 'p' ? POLICY_PUBLISH : w[2] == 's' ? POLICY_SUBSCRIBE : POLICY_READ;
			if(!(x->topic = cli_value(argc, argv, &i, w))) {
				return -1;
			}
		} else if(cli_is(w, "--qos")) {
			int64_t q;
			if(!(v = cli_value(argc, argv, &i, "--qos"))) {
				return -1;
			}
			if(util_parse_i64(v, 0, 2, &q)) {
				fprintf(stderr, "plantgate-policy: --qos wants 0, 1 or 2, got \"%s\"\n", v);
				return -1;
			}
			x->req.qos = (int)q;
		} else if(strcmp(w, "--retain") == 0) {
			x->req.retain = true;
		} else if(cli_is(w, "--size")) {
			uint64_t sz;
			if(!(v = cli_value(argc, argv, &i, "--size"))) {
				return -1;
			}
			if(util_parse_size(v, SIZE_MAX, &sz)) {
				fprintf(stderr, "plantgate-policy: --size wants bytes like 512, 16k or 1M, got \"%s\"\n",
				        v);
				return -1;
			}
			x->req.payloadlen = (size_t)sz;
		} else if(w[0] == '-') {
			fprintf(stderr, "plantgate-policy: unknown option \"%s\"\n", w);
			cli_usage(stderr);
			return -1;
		} else if(!x->path) {
			x->path = w;
		} else {
			fprintf(stderr, "plantgate-policy: unexpected argument \"%s\"\n", w);
			cli_usage(stderr);
			return -1;
		}
	}
	if(!x->path || !x->id || !x->have_access) {
		fprintf(stderr, "plantgate-policy: explain needs FILE, --id and one of --publish, "
		                "--subscribe, --read\n");
		cli_usage(stderr);
		return -1;
	}
	return 0;
}

/* Print which entry an admitted subject resolves to. */
static void cli_print_entry(const policy_t *p, const policy_subject_t *who)
{
	policy_binding_info_t bi;
	policy_binding_get_info(policy_resolve(p, who), &bi);
	switch(bi.kind) {
	case POLICY_BINDING_DEVICE:
		printf("entry:     device %s -> role %s (%s:%d)\n", bi.entry, bi.role, bi.file, bi.line);
		break;
	case POLICY_BINDING_PATTERN:
		printf("entry:     devices matching %s -> role %s (%s:%d)\n", bi.entry, bi.role, bi.file,
		       bi.line);
		break;
	case POLICY_BINDING_UNKNOWN:
		printf("entry:     not listed; unknown-devices -> role %s (%s:%d)\n", bi.role, bi.file,
		       bi.line);
		break;
	}
}

static int cli_explain(int argc, char **argv)
{
	cli_explain_args_t x = {0};
	int rc = 1;
	policy_t *p = NULL;

	if(cli_explain_args(argc, argv, &x)) {
		goto out;
	}

	char err[1024];
	p = policy_load_file(x.path, err, sizeof(err));
	if(!p) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	policy_request_t req = x.req;
	req.topic = x.topic;
	policy_subject_t who = {
	    .identity = x.id, .clientid = x.cid ? x.cid : x.id, .attrs = x.attrs, .nattrs = x.nattrs};

	printf("identity:  %s (client id %s)\n", x.id, who.clientid);
	const char *why = NULL;
	if(!policy_admit(p, &who, &why)) {
		printf("DENY: connection refused: %s\n", why);
		rc = 2;
		goto out;
	}
	cli_print_entry(p, &who);
	printf("request:   %s %s qos %d%s, %zu bytes\n", policy_access_name(req.access), x.topic,
	       req.qos, req.retain ? " retained" : "", req.payloadlen);

	policy_decision_t d;
	char line[2048];
	policy_check(p, &who, &req, &d);
	policy_decision_format(&d, &req, line, sizeof(line));
	printf("%s: %s\n", d.allow ? "ALLOW" : "DENY", line);
	rc = d.allow ? 0 : 2;
out:
	policy_free(p);
	return rc;
}

int main(int argc, char **argv)
{
	if(argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	                 strcmp(argv[1], "help") == 0)) {
		cli_usage(stdout);
		return 0;
	}
	if(argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("plantgate-policy %s\n", PG_VERSION);
		return 0;
	}
	if(argc == 3 && strcmp(argv[1], "check") == 0) {
		return cli_check(argv[2]);
	}
	if(argc >= 3 && strcmp(argv[1], "explain") == 0) {
		return cli_explain(argc, argv);
	}
	cli_usage(stderr);
	return 1;
}
