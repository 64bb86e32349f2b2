/*
 * gate.c — a write buffer below TLS that holds bytes back until released
 * (see gate.h).  buf[0..sent) has left, buf[sent..open) may leave,
 * buf[open..len) is held.
 */
#include "gate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct gate {
	unsigned char *buf;
	size_t len, cap;
	size_t sent, open;
	bool hold;
	size_t flush_at, max;
} gate_t;

static BIO_METHOD *gate_method;
static int gate_type;
static pthread_once_t gate_once = PTHREAD_ONCE_INIT;

/* Write buf[sent..open) to the next BIO.  1 when all of it left, else what
 * BIO_write said (the next BIO carries the retry flags). */
static int gate_send(gate_t *g, BIO *next)
{
	while(g->sent < g->open) {
		size_t want = g->open - g->sent;
		int k = BIO_write(next, g->buf + g->sent, want > 1 << 30 ? 1 << 30 : (int)want);
		if(k <= 0) {
			return k;
		}
		g->sent += (size_t)k;
	}
	if(g->sent == g->len) {
		g->sent = g->open = g->len = 0;
	}
	return 1;
}

static int gate_write(BIO *b, const char *data, int n)
{
	gate_t *g = BIO_get_data(b);
	BIO *next = BIO_next(b);
	BIO_clear_retry_flags(b);
	if(!g || !next || n < 0) {
		return -1;
	}
	if(n == 0) {
		return 0;
	}
	if(g->len - g->sent + (size_t)n > g->max) {
		/* Full, like a full socket: send what may leave, else ask to retry. */
		if(gate_send(g, next) <= 0 || g->len - g->sent + (size_t)n > g->max) {
			BIO_set_retry_write(b);
			return -1;
		}
	}
	if(g->sent > 0) {
		memmove(g->buf, g->buf + g->sent, g->len - g->sent);
		g->len -= g->sent;
		g->open -= g->sent;
		g->sent = 0;
	}
	if(g->len + (size_t)n > g->cap) {
		size_t cap = g->cap ? g->cap : 4096;
		while(cap < g->len + (size_t)n) {
			cap *= 2;
		}
		unsigned char *nb = realloc(g->buf, cap);
		if(!nb) {
			return -1;
		}
		g->buf = nb;
		g->cap = cap;
	}
	memcpy(g->buf + g->len, data, (size_t)n);
	g->len += (size_t)n;
	if(!g->hold) {
		g->open = g->len;
	}
	if(g->open - g->sent >= g->flush_at) {
		gate_send(g, next); /* a full socket only delays it to the flush */
	}
	return n;
}

static long gate_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	gate_t *g = BIO_get_data(b);
	BIO *next = BIO_next(b);
	if(!g) {
		return 0;
	}
	switch(cmd) {
	case BIO_CTRL_FLUSH: {
		if(!next) {
			return 0;
		}
		BIO_clear_retry_flags(b);
		int r = gate_send(g, next);
		if(r <= 0) {
			BIO_copy_next_retry(b);
			return r;
		}
		return BIO_ctrl(next, cmd, num, ptr);
	}
	case BIO_CTRL_WPENDING:
		return (long)(g->open - g->sent);
	default:
		return next ? BIO_ctrl(next, cmd, num, ptr) : 0;
	}
}

static int gate_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int gate_destroy(BIO *b)
{
	gate_t *g = BIO_get_data(b);
	if(g) {
		free(g->buf);
		free(g);
	}
	BIO_set_data(b, NULL);
	return 1;
}

static void gate_method_init(void)
{
	int type = BIO_get_new_index();
	BIO_METHOD *m = type < 0 ? NULL : BIO_meth_new(type | BIO_TYPE_FILTER, "plantgate write gate");
	if(m && BIO_meth_set_write(m, gate_write) && BIO_meth_set_ctrl(m, gate_ctrl) &&
	   BIO_meth_set_create(m, gate_create) && BIO_meth_set_destroy(m, gate_destroy)) {
		gate_method = m;
		gate_type = type | BIO_TYPE_FILTER;
	} else {
		BIO_meth_free(m);
	}
}

BIO *gate_new(size_t flush_at, size_t max_bytes)
{
	pthread_once(&gate_once, gate_method_init);
	gate_t *g = calloc(1, sizeof(*g));
	BIO *b = gate_method && g ? BIO_new(gate_method) : NULL;
	if(!b) {
		free(g);
		return NULL;
	}
	g->flush_at = flush_at ? flush_at : 1;
	g->max = max_bytes > flush_at ? max_bytes : flush_at;
	BIO_set_data(b, g);
	return b;
}

bool gate_is(BIO *b)
{
	return b && gate_method && BIO_method_type(b) == gate_type;
}

void gate_hold(BIO *g)
{
	gate_t *s = gate_is(g) ? BIO_get_data(g) : NULL;
	if(s) {
		s->hold = true;
	}
}

void gate_release(BIO *g)
{
	gate_t *s = gate_is(g) ? BIO_get_data(g) : NULL;
	if(s) {
		s->hold = false;
		s->open = s->len;
	}
}

size_t gate_held(BIO *g)
{
	gate_t *s = gate_is(g) ? BIO_get_data(g) : NULL;
	return s ? s->len - s->open : 0;
}
