/*
 * conf.c — line tokenizer for plantgate configuration files (see conf.h).
 */
#include "conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* Files larger than this are refused: a policy or config file never is. */
#define CONF_MAX_FILE (64u * 1024 * 1024)

int conf_error(const conf_line_t *l, char *err, size_t errlen, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if(err && errlen) {
		snprintf(err, errlen, "%s:%d: %s", l->file, l->line, msg);
	}
	return -1;
}

/* Split one line (already a private, NUL-terminated copy) into words in place. */
static int tokenize(conf_line_t *l, char *p, char *err, size_t errlen)
{
	l->argc = 0;
	for(;;) {
		while(*p == ' ' || *p == '\t' || *p == '\r') {
			p++;
		}
		if(!*p) {
			return 0;
		}
		if(l->argc == CONF_MAX_ARGS) {
			return conf_error(l, err, errlen, "too many words on one line (at most %d)",
			                  CONF_MAX_ARGS);
		}
		if(*p == '"') {
			char *out = ++p;
			l->argv[l->argc++] = out;
			for(;;) {
				if(!*p) {
					return conf_error(l, err, errlen,
					                  "unterminated quoted string: add the closing '\"'");
				}
				if(*p == '\\' && (p[1] == '"' || p[1] == '\\')) {
					*out++ = p[1];
					p += 2;
				} else if(*p == '"') {
					p++;
					break;
				} else {
					*out++ = *p++;
				}
			}
			if(*p && *p != ' ' && *p != '\t' && *p != '\r') {
				return conf_error(l, err, errlen,
				                  "text right after a closing quote: put a blank between words");
			}
			if(*p) {
				p++;
			}
			*out = '\0';
		} else {
			l->argv[l->argc++] = p;
			while(*p && *p != ' ' && *p != '\t' && *p != '\r') {
				if(*p == '"') {
					return conf_error(l, err, errlen,
					                  "a quote inside a word: quote the whole word");
				}
				p++;
			}
			if(*p) {
				*p++ = '\0';
			}
		}
	}
}

static bool is_comment_or_blank(const char *p, size_t len)
{
	size_t i = 0;
	while(i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r')) {
		i++;
	}
	return i == len || p[i] == '#';
}

int conf_parse_buffer(const char *name, const char *buf, size_t len, conf_line_cb cb, void *ud,
                      char *err, size_t errlen)
{
	char line[CONF_MAX_LINE + 1];
	conf_line_t l = {.file = name, .line = 0};
	size_t pos = 0;

	if(len >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
	   (unsigned char)buf[2] == 0xBF) {
		pos = 3; /* UTF-8 byte order mark from some Windows editors */
	}
	while(pos < len) {
		const char *start = buf + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;
		pos += n + (nl ? 1 : 0);
		l.line++;
		if(n > CONF_MAX_LINE) {
			return conf_error(&l, err, errlen, "line longer than %d bytes", CONF_MAX_LINE);
		}
		if(memchr(start, '\0', n)) {
			return conf_error(&l, err, errlen, "NUL byte in line: is this a text file?");
		}
		if(!util_utf8_valid(start, n)) {
			return conf_error(&l, err, errlen, "not valid UTF-8: save the file as UTF-8");
		}
		if(is_comment_or_blank(start, n)) {
			continue;
		}
		memcpy(line, start, n);
		line[n] = '\0';
		if(tokenize(&l, line, err, errlen)) {
			return -1;
		}
		if(l.argc == 0) {
			continue;
		}
		int rc = cb(ud, &l, err, errlen);
		if(rc) {
			return rc;
		}
	}
	return 0;
}

int conf_parse_file(const char *path, conf_line_cb cb, void *ud, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if(!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if(fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		fclose(f);
		return -1;
	}
	if((unsigned long long)st.st_size > CONF_MAX_FILE) {
		snprintf(err, errlen, "%s: file too large (%lld bytes, at most %u)", path,
		         (long long)st.st_size, CONF_MAX_FILE);
		fclose(f);
		return -1;
	}
	size_t size = (size_t)st.st_size;
	char *buf = malloc(size ? size : 1);
	if(!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		fclose(f);
		return -1;
	}
	size_t got = fread(buf, 1, size, f);
	int rerr = ferror(f);
	fclose(f);
	if(rerr || got != size) {
		snprintf(err, errlen, "%s: read error", path);
		free(buf);
		return -1;
	}
	int rc = conf_parse_buffer(path, buf, size, cb, ud, err, errlen);
	free(buf);
	return rc;
}
