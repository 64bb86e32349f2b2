/*
 * test_bridge_gate.c — the plant link's write gate (bridge/gate.c) over a
 * memory BIO and a BIO pair standing in for the socket: held bytes never
 * leave on a flush, released ones do in order, WPENDING counts only what may
 * leave, a full socket makes the flush retry without losing bytes, a gate
 * over its limit asks the writer to retry, and freeing the gate drops what
 * it held.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gate.h"

/* What the memory BIO under the gate has received, as a string. */
static const char *sent(BIO *mem)
{
	static char buf[4096];
	char *p = NULL;
	long n = BIO_get_mem_data(mem, &p);
	memcpy(buf, p, (size_t)n);
	buf[n] = '\0';
	return buf;
}

static void test_hold_then_release(void **state)
{
	BIO *mem = BIO_new(BIO_s_mem());
	BIO *g = gate_new(1 << 20, 1 << 20);
	assert_non_null(g);
	assert_true(gate_is(g));
	assert_false(gate_is(mem));
	BIO_push(g, mem);

	assert_int_equal(BIO_write(g, "ack1 ", 5), 5); /* not held: leaves at the flush */
	gate_hold(g);
	assert_int_equal(BIO_write(g, "ack2 ", 5), 5); /* the batch being committed */
	assert_int_equal(gate_held(g), 5);
	assert_int_equal(BIO_wpending(g), 5); /* only "ack1 " may leave */
	assert_int_equal(BIO_flush(g), 1);
	assert_string_equal(sent(mem), "ack1 ");
	assert_int_equal(BIO_wpending(g), 0); /* held bytes do not ask for POLLOUT */
	assert_int_equal(BIO_flush(g), 1);
	assert_string_equal(sent(mem), "ack1 "); /* still held after a second flush */

	gate_release(g); /* the commit returned */
	assert_int_equal(gate_held(g), 0);
	assert_int_equal(BIO_wpending(g), 5);
	assert_int_equal(BIO_flush(g), 1);
	assert_string_equal(sent(mem), "ack1 ack2 ");

	assert_int_equal(BIO_write(g, "ack3", 4), 4); /* not holding any more */
	assert_int_equal(BIO_flush(g), 1);
	assert_string_equal(sent(mem), "ack1 ack2 ack3");
	BIO_free_all(g);
}

/* Held bytes are dropped with the gate: a lost connection's uncommitted
 * acknowledgements never reach the socket. */
static void test_free_drops_held(void **state)
{
	BIO *mem = BIO_new(BIO_s_mem());
	BIO_up_ref(mem);
	BIO *g = gate_new(16, 1 << 20);
	BIO_push(g, mem);
	gate_hold(g);
	for(int i = 0; i < 100; i++) { /* far past flush_at: still held */
		assert_int_equal(BIO_write(g, "held", 4), 4);
	}
	assert_int_equal(BIO_flush(g), 1);
	assert_int_equal(BIO_ctrl_pending(mem), 0);
	BIO_free_all(g);
	assert_int_equal(BIO_ctrl_pending(mem), 0);
	BIO_free(mem);
}

/* A socket that takes only part: the flush asks to be retried and nothing
 * is lost or reordered; a gate full of unsendable bytes refuses (retry). */
static void test_full_socket(void **state)
{
	BIO *sock = NULL, *peer = NULL;
	assert_int_equal(BIO_new_bio_pair(&sock, 8, &peer, 8), 1);
	BIO *g = gate_new(32, 32);
	BIO_push(g, sock);
	assert_int_equal(BIO_write(g, "0123456789abcdef", 16), 16);
	assert_true(BIO_flush(g) <= 0);
	assert_true(BIO_should_retry(g));
	assert_int_equal(BIO_wpending(g), 8);
	/* 8 unsent + 30 > 32, and the socket takes nothing: retry */
	assert_int_equal(BIO_write(g, "ghijklmnopqrstuvwxyz0123456789", 30), -1);
	assert_true(BIO_should_retry(g));
	char out[64] = "";
	int got = BIO_read(peer, out, sizeof(out) - 1);
	assert_int_equal(got, 8);
	assert_int_equal(BIO_flush(g), 1); /* the other 8 went */
	got += BIO_read(peer, out + got, (int)sizeof(out) - 1 - got);
	assert_int_equal(got, 16);
	assert_memory_equal(out, "0123456789abcdef", 16);
	assert_int_equal(BIO_write(g, "ghijklmnopqrstuvwxyz0123456789", 30), 30); /* room now */
	BIO_free_all(g);
	BIO_free(peer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hold_then_release),
	    cmocka_unit_test(test_free_drops_held),
	    cmocka_unit_test(test_full_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
