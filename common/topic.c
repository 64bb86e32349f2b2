/*
 * topic.c — MQTT topic name/filter validation and matching (see topic.h).
 * Everything walks the strings once; nothing allocates.
 */
#include "topic.h"

#include <string.h>

#include "util.h"

bool topic_valid_name(const char *topic)
{
	if(!topic || !topic[0]) {
		return false;
	}
	size_t len = strlen(topic);
	if(len > TOPIC_MAX_LEN || !util_utf8_valid(topic, len)) {
		return false;
	}
	return strpbrk(topic, "+#") == NULL;
}

bool topic_valid_filter(const char *filter)
{
	if(!filter || !filter[0]) {
		return false;
	}
	size_t len = strlen(filter);
	if(len > TOPIC_MAX_LEN || !util_utf8_valid(filter, len)) {
		return false;
	}
	for(size_t i = 0; i < len; i++) {
		char c = filter[i];
		if(c != '+' && c != '#') {
			continue;
		}
		/* A wildcard must be a whole level. */
		if(i > 0 && filter[i - 1] != '/') {
			return false;
		}
		if(i + 1 < len && filter[i + 1] != '/') {
			return false;
		}
		/* '#' must be the last level. */
		if(c == '#' && i + 1 != len) {
			return false;
		}
	}
	return true;
}

/* Length of the level starting at p, and where the next one starts (NULL at the
 * last level). */
static size_t level(const char *p, const char **next)
{
	const char *slash = strchr(p, '/');
	if(slash) {
		*next = slash + 1;
		return (size_t)(slash - p);
	}
	*next = NULL;
	return strlen(p);
}

static bool is_level(const char *p, size_t len, char c)
{
	return len == 1 && p[0] == c;
}

bool topic_matches(const char *filter, const char *topic)
{
	if(!filter || !topic || !filter[0] || !topic[0]) {
		return false;
	}
	if(topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) {
		return false;
	}
	const char *f = filter, *t = topic;
	for(;;) {
		const char *fn, *tn;
		size_t fl = level(f, &fn);
		if(is_level(f, fl, '#')) {
			return fn == NULL;
		}
		size_t tl = level(t, &tn);
		if(!is_level(f, fl, '+') && (fl != tl || memcmp(f, t, fl) != 0)) {
			return false;
		}
		if(!fn) {
			return tn == NULL;
		}
		if(!tn) {
			/* "a/#" also matches "a". */
			return strcmp(fn, "#") == 0;
		}
		f = fn;
		t = tn;
	}
}

bool topic_filter_covers(const char *outer, const char *inner)
{
	if(!outer || !inner || !outer[0] || !inner[0]) {
		return false;
	}
	if(inner[0] == '$' && (outer[0] == '+' || outer[0] == '#')) {
		return false;
	}
	const char *o = outer, *i = inner;
	for(;;) {
		const char *on, *in;
		size_t ol = level(o, &on);
		if(is_level(o, ol, '#')) {
			return on == NULL;
		}
		size_t il = level(i, &in);
		if(is_level(i, il, '#')) {
			/* inner reaches deeper than a non-# outer level.  Except: "P/+/#"
			 * matches all that "P/#" does when the parent topic P is empty
			 * (no level, or one empty level), since "" is no valid topic:
			 * "+/#" covers "#", "/+/#" covers "/#". */
			return (size_t)(i - inner) <= 1 && is_level(o, ol, '+') && on &&
			       strcmp(on, "#") == 0;
		}
		if(is_level(o, ol, '+')) {
			/* any single inner level, literal or '+', fits */
		} else if(is_level(i, il, '+') || ol != il || memcmp(o, i, ol) != 0) {
			return false;
		}
		if(!on) {
			return in == NULL;
		}
		if(!in) {
			return strcmp(on, "#") == 0;
		}
		o = on;
		i = in;
	}
}

bool topic_filters_overlap(const char *a, const char *b)
{
	if(!a || !b || !a[0] || !b[0]) {
		return false;
	}
	/* A wildcard first level never matches a $ topic. */
	if((a[0] == '$' && (b[0] == '+' || b[0] == '#')) ||
	   (b[0] == '$' && (a[0] == '+' || a[0] == '#'))) {
		return false;
	}
	const char *x = a, *y = b;
	for(;;) {
		const char *xn, *yn;
		size_t xl = level(x, &xn), yl = level(y, &yn);
		if(is_level(x, xl, '#') || is_level(y, yl, '#')) {
			return true; /* what remains of the other side is some topic */
		}
		if(!is_level(x, xl, '+') && !is_level(y, yl, '+') &&
		   (xl != yl || memcmp(x, y, xl) != 0)) {
			return false;
		}
		if(!xn || !yn) {
			/* Both end here, or one ends and the other's rest is "#" (which
			 * also matches its parent: "a/#" matches "a") — unless that
			 * parent is the empty topic, which is no topic: "+" and "/#". */
			if(xn == yn) {
				return true;
			}
			return strcmp(xn ? xn : yn, "#") == 0 && !(x == a && (xl == 0 || yl == 0));
		}
		x = xn;
		y = yn;
	}
}

size_t topic_levels(const char *topic)
{
	if(!topic) {
		return 0;
	}
	size_t n = 1;
	for(const char *p = topic; *p; p++) {
		if(*p == '/') {
			n++;
		}
	}
	return n;
}

const char *topic_strip_share(const char *filter, const char **group, size_t *group_len)
{
	static const char prefix[] = "$share/";
	*group = NULL;
	*group_len = 0;
	if(!filter || strncmp(filter, prefix, sizeof(prefix) - 1) != 0) {
		return filter;
	}
	const char *g = filter + sizeof(prefix) - 1;
	const char *slash = strchr(g, '/');
	if(!slash || slash == g || slash[1] == '\0') {
		return NULL;
	}
	for(const char *p = g; p < slash; p++) {
		if(*p == '+' || *p == '#') {
			return NULL;
		}
	}
	*group = g;
	*group_len = (size_t)(slash - g);
	return slash + 1;
}
