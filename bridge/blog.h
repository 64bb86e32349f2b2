/*
 * blog.h — the bridge's log: one line per event on stderr, as key=value pairs
 * ("ts=... level=info event=cloud.connected host=... port=..."), so an operator
 * can grep it and a log shipper can parse it.  Thread-safe (one fprintf per
 * line).  Never pass secrets: key material and passwords are never logged.
 */
#ifndef PG_BLOG_H
#define PG_BLOG_H

#include <stddef.h>

enum blog_level { BLOG_DEBUG = 0, BLOG_INFO = 1, BLOG_WARN = 2, BLOG_ERROR = 3 };

/* Lines below `level` are suppressed.  Default BLOG_INFO. */
void blog_set_level(int level);
int blog_get_level(void);

/* Log event `event` (a dotted name such as "plant.connected") with the
 * key=value text produced by fmt (may be NULL for none). */
void blog(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Values go through util_log_quote() (common/util.h), the one log-value
 * quoter of plugin and bridge. */

#endif
