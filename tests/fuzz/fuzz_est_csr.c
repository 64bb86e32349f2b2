/*
 * fuzz_est_csr.c — libFuzzer target for what an EST client can send and
 * receive (enroll/est_csr.c): any bytes as an enroll request body (base64 or
 * PEM PKCS#10) through decoding and the request checks, and as an enroll
 * response (base64 certs-only PKCS#7) through the client's parser.
 */
#include <openssl/x509.h>
#include <stdint.h>

#include "est_csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];
	X509_REQ *req = NULL;
	if(est_csr_decode((const char *)data, size, &req, why, sizeof(why)) == EST_OK) {
		if(!req) {
			__builtin_trap();
		}
		est_csr_check(req, "press-07", why, sizeof(why));
		X509_REQ_free(req);
	} else if(req) {
		__builtin_trap();
	}
	STACK_OF(X509) *certs = est_certs_only_decode((const char *)data, size, why, sizeof(why));
	if(certs && sk_X509_num(certs) < 1) {
		__builtin_trap();
	}
	sk_X509_pop_free(certs, X509_free);
	return 0;
}
