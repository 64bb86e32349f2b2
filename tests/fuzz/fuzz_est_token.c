/*
 * fuzz_est_token.c — libFuzzer target for the enrollment token file
 * (enroll/est_token.c): any bytes as DIR/enroll-tokens.txt.  A file that
 * parses must format to text that parses to the same tokens, and redeeming
 * must never accept a token twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "est_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	est_tokens_t t, t2;
	char err[256], why[256];
	if(est_tokens_parse("fuzz", (const char *)data, size, &t, err, sizeof(err))) {
		return 0;
	}
	size_t len = 0;
	char *f = est_tokens_format(&t, &len);
	if(!f || est_tokens_parse("fmt", f, len, &t2, err, sizeof(err)) || t2.n != t.n) {
		__builtin_trap();
	}
	for(size_t i = 0; i < t.n; i++) {
		if(memcmp(&t.v[i], &t2.v[i], sizeof(t.v[i])) != 0) {
			__builtin_trap();
		}
	}
	size_t idx;
	if(t.n && est_tokens_redeem(&t, t.v[0].id, "x", 0, &idx, why, sizeof(why)) == EST_OK &&
	   est_tokens_redeem(&t, t.v[0].id, "x", 0, &idx, why, sizeof(why)) == EST_OK) {
		__builtin_trap();
	}
	free(f);
	est_tokens_free(&t2);
	est_tokens_free(&t);
	return 0;
}
