/*
 * blog.c — key=value line logging for plantgate-bridge (see blog.h).
 */
#include "blog.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static atomic_int blog_level = BLOG_INFO;

void blog_set_level(int level)
{
	atomic_store(&blog_level, level);
}

int blog_get_level(void)
{
	return atomic_load(&blog_level);
}

static const char *blog_level_name(int level)
{
	switch(level) {
	case BLOG_DEBUG:
		return "debug";
	case BLOG_INFO:
		return "info";
	case BLOG_WARN:
		return "warn";
	case BLOG_ERROR:
		return "error";
	}
	return "?";
}

void blog(int level, const char *event, const char *fmt, ...)
{
	if(level < atomic_load(&blog_level)) {
		return;
	}
	char rest[2048] = "";
	if(fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(rest, sizeof(rest), fmt, ap);
		va_end(ap);
	}
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char when[32];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "ts=%s.%03ldZ level=%s event=%s%s%s\n", when, ts.tv_nsec / 1000000L,
	        blog_level_name(level), event, rest[0] ? " " : "", rest);
}
