/*
 * whitelist.c — forward rules: parse, match, remap (see whitelist.h).
 *
 * Like the broker's own bridge (bridge_topic.c) this file only rewrites
 * strings; the I/O lives in plant.c and cloud.c.
 */
#include "whitelist.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"
#include "util.h"

static void rule_free(wl_rule_t *r)
{
	free(r->filter);
	free(r->strip);
	free(r->prefix);
	free(r->to);
	memset(r, 0, sizeof(*r));
}

static bool has_wildcard(const char *s)
{
	return strchr(s, '+') || strchr(s, '#');
}

/* True when every level of the filter is a wildcard and it ends with '#':
 * such a rule would forward everything. */
static bool is_catch_all(const char *filter)
{
	size_t len = strlen(filter);
	if(len == 0 || filter[len - 1] != '#') {
		return false;
	}
	for(const char *p = filter; *p; p++) {
		if(*p != '+' && *p != '#' && *p != '/') {
			return false;
		}
	}
	return true;
}

static int why_set(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

int whitelist_rule_parse(wl_rule_t *r, int argc, char *const *argv, char *why, size_t whylen)
{
	memset(r, 0, sizeof(*r));
	r->qos = 1;
	if(argc < 1) {
		snprintf(why, whylen, "forward needs a plant topic filter, e.g. "
		                      "`forward plant/+/telemetry/# qos=1`");
		return -1;
	}
	const char *filter = argv[0];
	if(!topic_valid_filter(filter)) {
		return why_set(why, whylen, "'%s' is not a valid MQTT topic filter", filter);
	}
	const char *strip = NULL, *prefix = NULL, *to = NULL;
	bool seen_qos = false, seen_max = false, seen_ttl = false;
	for(int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *eq = strchr(a, '=');
		size_t klen = eq ? (size_t)(eq - a) : strlen(a);
		const char *v = eq ? eq + 1 : NULL;
#define KEY(k) (klen == strlen(k) && strncmp(a, k, klen) == 0)
		if(KEY("force") && !v) {
			if(r->force) {
				return why_set(why, whylen, "option '%s' is duplicate", "force");
			}
			r->force = true;
		} else if(KEY("retain") && !v) {
			if(r->retain) {
				return why_set(why, whylen, "option '%s' is duplicate", "retain");
			}
			r->retain = true;
		} else if(!v) {
			return why_set(why, whylen,
			               "unknown forward option '%s' (known: qos= strip= prefix= to= "
			               "max-payload= ttl= retain force)",
			               a);
		} else if(KEY("qos")) {
			if(seen_qos) {
				return why_set(why, whylen, "option '%s' is duplicate", "qos");
			}
			seen_qos = true;
			if(strcmp(v, "0") == 0) {
				r->qos = 0;
			} else if(strcmp(v, "1") == 0) {
				r->qos = 1;
			} else {
				return why_set(why, whylen,
				               "qos=%s: the bridge forwards at QoS 0 or 1 only (QoS 1 is "
				               "what makes delivery reliable)",
				               v);
			}
		} else if(KEY("strip") || KEY("prefix") || KEY("to")) {
			const char **slot = KEY("strip") ? &strip : KEY("prefix") ? &prefix : &to;
			if(*slot) {
				snprintf(why, whylen, "option '%.*s' is duplicate", (int)klen, a);
				return -1;
			}
			if(!*v || has_wildcard(v) || !util_utf8_valid(v, strlen(v))) {
				snprintf(why, whylen, "%.*s='%s': must be a literal topic part (no + or #)",
				         (int)klen, a, v);
				return -1;
			}
			*slot = v;
		} else if(KEY("max-payload")) {
			if(seen_max) {
				return why_set(why, whylen, "option '%s' is duplicate", "max-payload");
			}
			seen_max = true;
			if(util_parse_size(v, 256u * 1024 * 1024, &r->max_payload) || r->max_payload == 0) {
				return why_set(why, whylen,
				               "max-payload='%s': expected a size such as 512, 64k or 1M "
				               "(at most 256M)",
				               v);
			}
		} else if(KEY("ttl")) {
			if(seen_ttl) {
				return why_set(why, whylen, "option '%s' is duplicate", "ttl");
			}
			seen_ttl = true;
			if(util_parse_duration_ms(v, &r->ttl_ms) || r->ttl_ms <= 0) {
				return why_set(why, whylen,
				               "ttl='%s': expected a duration such as 30s, 15m, 2h or 7d", v);
			}
		} else {
			snprintf(why, whylen,
			         "unknown forward option '%.*s' (known: qos= strip= prefix= to= "
			         "max-payload= ttl= retain force)",
			         (int)klen, a);
			return -1;
		}
#undef KEY
	}
	if(to && (strip || prefix)) {
		snprintf(why, whylen, "to= sets the whole cloud topic: do not combine it with strip= "
		                      "or prefix=");
		return -1;
	}
	if(to && !topic_valid_name(to)) {
		return why_set(why, whylen, "to='%s' is not a valid topic name", to);
	}
	if(strip && strncmp(filter, strip, strlen(strip)) != 0) {
		snprintf(why, whylen,
		         "strip='%s' is not a literal beginning of the filter '%s': every matching "
		         "topic must start with it",
		         strip, filter);
		return -1;
	}
	if(!r->force) {
		if(is_catch_all(filter)) {
			return why_set(why, whylen,
			               "'%s' would forward every topic of the plant: name the topics "
			               "to share, or add `force` if you really mean it",
			               filter);
		}
		if(filter[0] == '$') {
			return why_set(why, whylen,
			               "'%s' would forward broker-internal topics ($SYS, $CONTROL, ...): "
			               "refused unless `force` is given",
			               filter);
		}
		const char *remote_start = to ? to : prefix ? prefix : NULL;
		if(remote_start && remote_start[0] == '$') {
			return why_set(why, whylen,
			               "cloud topic '%s' starts with '$' (reserved by cloud brokers): "
			               "refused unless `force` is given",
			               remote_start);
		}
		if(!remote_start && !strip && filter[0] == '$') {
			return why_set(why, whylen, "'%s': $ topics refused unless `force`", filter);
		}
		/* strip= alone: the cloud topic starts where the strip ends. */
		const char *rest = strip && !remote_start ? filter + strlen(strip) : NULL;
		if(rest && rest[0] == '$') {
			return why_set(why, whylen,
			               "strip='%s' leaves cloud topics starting with '%s' (reserved by "
			               "cloud brokers: $aws/..., $SYS/...): strip less, add prefix=, or add "
			               "`force` if you really mean it",
			               strip, rest);
		}
	}
	if(strip && !prefix && !to && filter[strlen(strip)] == '\0') {
		return why_set(why, whylen,
		               "strip='%s' removes the whole topic '%s': the cloud topic would be "
		               "empty; strip less, or add prefix= or to=",
		               strip, filter);
	}
	r->filter = strdup(filter);
	r->strip = strip ? strdup(strip) : NULL;
	r->prefix = prefix ? strdup(prefix) : NULL;
	r->to = to ? strdup(to) : NULL;
	if(!r->filter || (strip && !r->strip) || (prefix && !r->prefix) || (to && !r->to)) {
		rule_free(r);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

int whitelist_add(whitelist_t *w, wl_rule_t *r, char *why, size_t whylen)
{
	for(size_t i = 0; i < w->count; i++) {
		if(strcmp(w->rules[i].filter, r->filter) == 0) {
			snprintf(why, whylen, "forward rule for '%s' is duplicate (first at line %d)",
			         r->filter, w->rules[i].line);
			rule_free(r);
			return -1;
		}
	}
	wl_rule_t *n = realloc(w->rules, (w->count + 1) * sizeof(*n));
	if(!n) {
		snprintf(why, whylen, "out of memory");
		rule_free(r);
		return -1;
	}
	w->rules = n;
	w->rules[w->count++] = *r;
	memset(r, 0, sizeof(*r));
	return 0;
}

void whitelist_clear(whitelist_t *w)
{
	if(!w) {
		return;
	}
	for(size_t i = 0; i < w->count; i++) {
		rule_free(&w->rules[i]);
	}
	free(w->rules);
	w->rules = NULL;
	w->count = 0;
}

static char *dup_or_null(const char *s, bool *fail)
{
	if(!s) {
		return NULL;
	}
	char *d = strdup(s);
	if(!d) {
		*fail = true;
	}
	return d;
}

int whitelist_copy(whitelist_t *dst, const whitelist_t *src)
{
	dst->rules = NULL;
	dst->count = 0;
	if(src->count == 0) {
		return 0;
	}
	dst->rules = calloc(src->count, sizeof(*dst->rules));
	if(!dst->rules) {
		return -1;
	}
	bool fail = false;
	for(size_t i = 0; i < src->count; i++) {
		wl_rule_t *d = &dst->rules[i];
		*d = src->rules[i];
		d->filter = dup_or_null(src->rules[i].filter, &fail);
		d->strip = dup_or_null(src->rules[i].strip, &fail);
		d->prefix = dup_or_null(src->rules[i].prefix, &fail);
		d->to = dup_or_null(src->rules[i].to, &fail);
		dst->count = i + 1;
	}
	if(fail) {
		whitelist_clear(dst);
		return -1;
	}
	return 0;
}

const wl_rule_t *whitelist_match(const whitelist_t *w, const char *topic)
{
	if(!w || !topic) {
		return NULL;
	}
	for(size_t i = 0; i < w->count; i++) {
		if(topic_matches(w->rules[i].filter, topic)) {
			return &w->rules[i];
		}
	}
	return NULL;
}

int whitelist_remap(const wl_rule_t *r, const char *topic, char **out, const char **why)
{
	*out = NULL;
	*why = "bad-cloud-topic";
	if(!r || !topic) {
		return -1;
	}
	const char *rest = topic;
	if(!r->to && r->strip) {
		size_t sl = strlen(r->strip);
		if(strncmp(topic, r->strip, sl) != 0) {
			return -1;
		}
		rest = topic + sl;
	}
	const char *head = r->to ? r->to : r->prefix ? r->prefix : "";
	const char *tail = r->to ? "" : rest;
	size_t hl = strlen(head), tl = strlen(tail);
	if(hl + tl > TOPIC_MAX_LEN) {
		*why = "cloud-topic-too-long";
		return -1;
	}
	char *t = malloc(hl + tl + 1);
	if(!t) {
		*why = "out-of-memory";
		return -1;
	}
	memcpy(t, head, hl);
	memcpy(t + hl, tail, tl + 1);
	if(!topic_valid_name(t)) {
		free(t);
		return -1;
	}
	/* Reserved at the cloud ($aws/..., $SYS/...): a wildcard after strip=
	 * can reach a plant level that starts with '$'. */
	if(t[0] == '$' && !r->force) {
		free(t);
		*why = "cloud-topic-reserved";
		return -1;
	}
	*why = NULL;
	*out = t;
	return 0;
}

static int count_slashes(const char *s)
{
	int n = 0;
	for(; s && *s; s++) {
		n += *s == '/';
	}
	return n;
}

void whitelist_subscriptions(const whitelist_t *w, bool *sub)
{
	for(size_t i = 0; i < w->count; i++) {
		sub[i] = true;
		for(size_t j = 0; j < w->count && sub[i]; j++) {
			const char *fi = w->rules[i].filter, *fj = w->rules[j].filter;
			/* Covered by j, and j not equally covered by i (then the
			 * earlier of the two stays): some subscribed filter always
			 * covers what is left out, since the relation has no cycles
			 * other than such ties. */
			if(j != i && topic_filter_covers(fj, fi) && (j < i || !topic_filter_covers(fi, fj))) {
				sub[i] = false;
			}
		}
	}
}

size_t whitelist_overlaps(const whitelist_t *w, const bool *sub,
                          void (*cb)(void *arg, const wl_rule_t *a, const wl_rule_t *b), void *arg)
{
	size_t n = 0;
	for(size_t i = 0; i < w->count; i++) {
		for(size_t j = i + 1; j < w->count; j++) {
			if(sub[i] && sub[j] && topic_filters_overlap(w->rules[i].filter, w->rules[j].filter)) {
				n++;
				if(cb) {
					cb(arg, &w->rules[i], &w->rules[j]);
				}
			}
		}
	}
	return n;
}

int whitelist_max_slashes(const wl_rule_t *r)
{
	if(r->to) {
		return count_slashes(r->to);
	}
	size_t len = strlen(r->filter);
	if(len && r->filter[len - 1] == '#') {
		return -1;
	}
	const char *rest = r->filter + (r->strip ? strlen(r->strip) : 0);
	return count_slashes(r->prefix) + count_slashes(rest);
}

/* Append one config word to out at *pos, quoted when it needs to be. */
static int put_word(char *out, size_t outlen, size_t *pos, const char *key, const char *val)
{
	char word[1024];
	if(util_snprintf(word, sizeof(word), "%s%s", key, val ? val : "") < 0) {
		return -1;
	}
	bool quote = word[0] == '\0' || strpbrk(word, " \t\"\\") != NULL;
	size_t need = strlen(word) * 2 + 4;
	if(*pos + need >= outlen) {
		return -1;
	}
	if(*pos) {
		out[(*pos)++] = ' ';
	}
	if(quote) {
		out[(*pos)++] = '"';
	}
	for(const char *p = word; *p; p++) {
		if(quote && (*p == '"' || *p == '\\')) {
			out[(*pos)++] = '\\';
		}
		out[(*pos)++] = *p;
	}
	if(quote) {
		out[(*pos)++] = '"';
	}
	out[*pos] = '\0';
	return 0;
}

int whitelist_rule_format(const wl_rule_t *r, char *out, size_t outlen)
{
	size_t pos = 0;
	char num[32];
	if(!outlen) {
		return -1;
	}
	out[0] = '\0';
	int rc = put_word(out, outlen, &pos, r->filter, NULL);
	snprintf(num, sizeof(num), "%d", r->qos);
	rc |= put_word(out, outlen, &pos, "qos=", num);
	if(r->strip) {
		rc |= put_word(out, outlen, &pos, "strip=", r->strip);
	}
	if(r->prefix) {
		rc |= put_word(out, outlen, &pos, "prefix=", r->prefix);
	}
	if(r->to) {
		rc |= put_word(out, outlen, &pos, "to=", r->to);
	}
	if(r->max_payload) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)r->max_payload);
		rc |= put_word(out, outlen, &pos, "max-payload=", num);
	}
	if(r->ttl_ms) {
		snprintf(num, sizeof(num), "%lldms", (long long)r->ttl_ms);
		rc |= put_word(out, outlen, &pos, "ttl=", num);
	}
	if(r->retain) {
		rc |= put_word(out, outlen, &pos, "retain", NULL);
	}
	if(r->force) {
		rc |= put_word(out, outlen, &pos, "force", NULL);
	}
	return rc ? -1 : 0;
}
