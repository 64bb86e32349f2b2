/*
 * conf.h — the line tokenizer shared by every plantgate configuration file
 * (policy, revocation list, bridge configuration).
 *
 * A file is a sequence of lines.  A line whose first non-blank character is '#'
 * is a comment, as is a blank line; '#' elsewhere is an ordinary character so
 * that MQTT filters like `sensors/#` need no quoting.  Words are separated by
 * blanks; a word in double quotes may contain blanks, and `\"` and `\\` escape.
 * Input must be UTF-8 without NUL bytes; lines are at most CONF_MAX_LINE bytes.
 *
 * Errors are reported as "file:line: what is wrong" in the caller's buffer.
 */
#ifndef PG_CONF_H
#define PG_CONF_H

#include <stddef.h>

#define CONF_MAX_LINE 4096
#define CONF_MAX_ARGS 32

typedef struct conf_line {
	const char *file; /* borrowed: the name given to conf_parse_* */
	int line;         /* 1-based line number */
	int argc;
	char *argv[CONF_MAX_ARGS]; /* valid only during the callback */
} conf_line_t;

/* Called once per non-comment line.  Return 0 to go on; non-zero stops the
 * parse and is returned by conf_parse_*, with `err` (already filled by the
 * callback, ideally via conf_error) passed through. */
typedef int (*conf_line_cb)(void *ud, const conf_line_t *l, char *err, size_t errlen);

/* Parse the file at `path`.  Returns 0, or -1 with "path:line: message" (or
 * "path: cannot open: reason") in err. */
int conf_parse_file(const char *path, conf_line_cb cb, void *ud, char *err, size_t errlen);

/* Same for an in-memory buffer; `name` is used in messages. */
int conf_parse_buffer(const char *name, const char *buf, size_t len, conf_line_cb cb, void *ud,
                      char *err, size_t errlen);

/* Format "file:line: message" into err; always returns -1 so callers can
 * `return conf_error(...)`. */
int conf_error(const conf_line_t *l, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
