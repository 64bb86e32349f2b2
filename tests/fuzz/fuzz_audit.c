/*
 * fuzz_audit.c — libFuzzer target for the audit log reader
 * (plugin/core/audit.c): the strict JSON-line parser and the chain verifier.
 *
 * The input is treated two ways.  First as a whole file for
 * audit_verify_mem(), which splits it into lines, hashes them and parses each
 * one.  Then its first line goes to audit_parse_line(); when it parses, the
 * record is written back with audit_format_line() and parsed again, and every
 * field must come back byte for byte (the writer's escaping and the parser's
 * decoding are inverse on valid input).  Any mismatch aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fuzz_same(const char *x, const char *y)
{
	/* The writer omits empty fields, so "" and absent are the same. */
	if(!x || !*x) {
		return !y || !*y;
	}
	return y && !strcmp(x, y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	audit_verify_result_t res;
	const char *in = (const char *)data;
	int rc = audit_verify_mem(in, size, &res);
	if(rc == 1 && (res.bad_line == 0 || res.bad_line > res.lines || !res.why[0])) {
		abort();
	}
	if(rc == 0 && res.bad_line != 0) {
		abort();
	}

	const char *nl = memchr(in, '\n', size);
	size_t len = nl ? (size_t)(nl - in) : size;
	audit_record_t r;
	char err[160];
	if(audit_parse_line(in, len, &r, err, sizeof(err))) {
		if(!err[0] || r.buf_) {
			abort();
		}
		return 0;
	}
	audit_event_t ev = {
	    .event = r.event,
	    .identity = r.identity,
	    .clientid = r.clientid,
	    .address = r.address,
	    .topic = r.topic,
	    .access = r.access,
	    .decision = r.decision,
	    .reason = r.reason,
	    .rule = r.rule,
	    .count = (int)r.count,
	};
	/* The timestamp is re-derived from ms; keep it out of the comparison. */
	size_t cap = 6 * len + 1024;
	char *buf = malloc(cap);
	if(!buf) {
		audit_record_free(&r);
		return 0;
	}
	bool truncated = false;
	int n = audit_format_line(buf, cap, &ev, r.suppressed, 0, r.seq, r.prev, &truncated);
	if(n < 0) {
		abort();
	}
	audit_record_t r2;
	if(audit_parse_line(buf, (size_t)n, &r2, err, sizeof(err))) {
		abort();
	}
	if(!truncated &&
	   (!fuzz_same(r.event, r2.event) || !fuzz_same(r.identity, r2.identity) ||
	    !fuzz_same(r.clientid, r2.clientid) || !fuzz_same(r.address, r2.address) ||
	    !fuzz_same(r.topic, r2.topic) || !fuzz_same(r.access, r2.access) ||
	    !fuzz_same(r.decision, r2.decision) || !fuzz_same(r.reason, r2.reason) ||
	    !fuzz_same(r.rule, r2.rule) || !fuzz_same(r.suppressed, r2.suppressed) ||
	    !fuzz_same(r.prev, r2.prev) || r.seq != r2.seq || r.count != r2.count)) {
		abort();
	}
	/* The writer's output is itself a line the parser reads back unchanged. */
	audit_record_free(&r2);
	audit_record_free(&r);
	free(buf);
	return 0;
}
