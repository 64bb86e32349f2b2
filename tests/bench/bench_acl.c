/*
 * bench_acl.c — in-process microbenchmark of one ACL decision on a compiled
 * policy, exactly as the plugin makes it on every PUBLISH / delivery: the
 * binding is resolved once (policy_resolve, at connect), then each decision
 * is policy_check_resolved() on the topic.
 *
 * For each policy size (rules in the device's role) and topic depth it builds
 * a policy in memory: `device bench role big` and a role with N allow rules
 *     publish plant/%{id}/r<k>/a3/.../a<depth-1>      (depth levels)
 * plus a deny rule, and times batches of decisions over a fixed mix of
 * topics: 3/4 granted by a random rule, 1/4 granted by none.  Prints, per
 * (rules, depth), the median, min and max over batches of ns per decision:
 *
 *     ACL rules=1000 depth=5 ns_median=83.1 ns_min=80.2 ns_max=97.0 allowed=0.75
 *
 * Usage: bench_acl [--rules 10,1000,100000] [--depths 3-10] [--batches 101]
 *                  [--batch 4096]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* xorshift: deterministic topic mix */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* The levels after plant/<id>/<first>: a3 ... a<depth-1>. */
static size_t tail_levels(char *out, size_t len, int depth)
{
	size_t o = 0;
	out[0] = '\0';
	for(int l = 3; l < depth && o < len; l++) {
		o += (size_t)snprintf(out + o, len - o, "/a%d", l);
	}
	return o;
}

static char *make_policy(long nrules, int depth, size_t *len)
{
	char tail[256];
	tail_levels(tail, sizeof tail, depth);
	size_t cap = (size_t)nrules * (64 + strlen(tail)) + 4096;
	char *buf = malloc(cap);
	if(!buf) {
		return NULL;
	}
	size_t o = 0;
	o += (size_t)snprintf(buf + o, cap - o,
	                      "default deny\nunknown-devices refuse\nrole big\n"
	                      "  deny publish plant/%%{id}/secret/#\n");
	for(long k = 0; k < nrules - 1; k++) {
		o += (size_t)snprintf(buf + o, cap - o, "  publish plant/%%{id}/r%ld%s qos<=1\n", k, tail);
	}
	o += (size_t)snprintf(buf + o, cap - o, "end\ndevice bench role big site=hq line=line1\n");
	*len = o;
	return buf;
}

static void parse_list(const char *s, long *out, int *n, int max)
{
	*n = 0;
	const char *p = s;
	while(*p && *n < max) {
		char *end;
		long v = strtol(p, &end, 10);
		if(end == p || v < 1 || (*end && *end != ',')) {
			fprintf(stderr, "bench_acl: bad list '%s'\n", s);
			exit(2);
		}
		out[(*n)++] = v;
		p = *end ? end + 1 : end;
	}
}

int main(int argc, char **argv)
{
	long rules[8] = {10, 1000, 100000};
	int nrules = 3;
	int dmin = 3, dmax = 10;
	int batches = 101;
	int batch = 4096;
	for(int i = 1; i < argc; i++) {
		if(!strcmp(argv[i], "--rules") && i + 1 < argc) {
			parse_list(argv[++i], rules, &nrules, 8);
		} else if(!strcmp(argv[i], "--depths") && i + 1 < argc) {
			if(sscanf(argv[++i], "%d-%d", &dmin, &dmax) != 2 || dmin < 3 || dmax < dmin ||
			   dmax > 30) {
				fprintf(stderr, "bench_acl: --depths A-B with 3 <= A <= B <= 30\n");
				return 2;
			}
		} else if(!strcmp(argv[i], "--batches") && i + 1 < argc) {
			batches = (int)strtol(argv[++i], NULL, 10);
			if(batches < 1) {
				batches = 1;
			}
		} else if(!strcmp(argv[i], "--batch") && i + 1 < argc) {
			batch = (int)strtol(argv[++i], NULL, 10);
			if(batch < 16) {
				batch = 16;
			}
		} else {
			fprintf(stderr, "usage: bench_acl [--rules 10,1000,100000] [--depths 3-10] "
			                "[--batches 101] [--batch 4096]\n");
			return 2;
		}
	}
	policy_attr_t attrs[2] = {{"site", "hq"}, {"line", "line1"}};
	policy_subject_t who = {"bench", "bench", attrs, 2};
	double *per = calloc((size_t)batches, sizeof(double));
	char **topics = calloc((size_t)batch, sizeof(char *));
	policy_request_t *reqs = calloc((size_t)batch, sizeof(policy_request_t));
	if(!per || !topics || !reqs) {
		return 1;
	}
	for(int ri = 0; ri < nrules; ri++) {
		for(int depth = dmin; depth <= dmax; depth++) {
			size_t len = 0;
			char *text = make_policy(rules[ri], depth, &len);
			if(!text) {
				return 1;
			}
			char err[512];
			uint64_t tl = now_ns();
			policy_t *p = policy_load_buffer("bench.policy", text, len, err, sizeof err);
			double load_ms = (now_ns() - tl) / 1e6;
			free(text);
			if(!p) {
				fprintf(stderr, "bench_acl: policy does not load: %s\n", err);
				return 1;
			}
			const policy_binding_t *b = policy_resolve(p, &who);
			if(!b) {
				fprintf(stderr, "bench_acl: device not admitted\n");
				return 1;
			}
			char tail[256];
			tail_levels(tail, sizeof tail, depth);
			for(int i = 0; i < batch; i++) {
				char t[512];
				long k = (long)(rng() % (uint64_t)(rules[ri] > 1 ? rules[ri] - 1 : 1));
				if(i % 4 == 3) {
					snprintf(t, sizeof t, "plant/bench/x%ld%s", k, tail); /* no rule */
				} else {
					snprintf(t, sizeof t, "plant/bench/r%ld%s", k, tail);
				}
				free(topics[i]);
				topics[i] = strdup(t);
				reqs[i] = (policy_request_t){POLICY_PUBLISH, topics[i], 1, false, 64};
			}
			long allowed = 0;
			policy_decision_t d;
			for(int i = 0; i < batch; i++) { /* warm up, and count the mix */
				policy_check_resolved(p, b, &who, &reqs[i], &d);
				allowed += d.allow;
			}
			for(int r = 0; r < batches; r++) {
				uint64_t t0 = now_ns();
				for(int i = 0; i < batch; i++) {
					policy_check_resolved(p, b, &who, &reqs[i], &d);
					__asm__ volatile("" : : "r"(d.allow) : "memory");
				}
				per[r] = (double)(now_ns() - t0) / batch;
			}
			qsort(per, (size_t)batches, sizeof(double), cmp_double);
			printf("ACL rules=%ld depth=%d ns_median=%.1f ns_min=%.1f ns_max=%.1f allowed=%.2f "
			       "load_ms=%.1f\n",
			       rules[ri], depth, per[batches / 2], per[0], per[batches - 1],
			       (double)allowed / batch, load_ms);
			fflush(stdout);
			policy_free(p);
		}
	}
	return 0;
}
