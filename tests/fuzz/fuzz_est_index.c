/*
 * fuzz_est_index.c — libFuzzer target for what plantgate-est reads from the
 * `openssl ca` database (enroll/est_csr.c): any bytes as index.txt through
 * the superseding rewrite (est_index_revoke) and the intermediate's CRL
 * (est_crl_build).  A rewrite keeps every other byte; a CRL that is built
 * verifies with the issuer's key.
 */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "est_csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *key;
static X509 *issuer;

static void fuzz_issuer(void)
{
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	issuer = X509_new();
	X509_NAME_add_entry_by_txt(X509_get_subject_name(issuer), "CN", MBSTRING_UTF8,
	                           (const unsigned char *)"fuzz CA", -1, -1, 0);
	X509_set_issuer_name(issuer, X509_get_subject_name(issuer));
	X509_set_pubkey(issuer, key);
	X509_sign(issuer, key, EVP_sha256());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if(!issuer) {
		fuzz_issuer();
	}
	const char *text = (const char *)data;
	char *r = est_index_revoke(text, size, "7F01", 1795000000);
	if(r && strlen(r) + 64 < size) {
		__builtin_trap(); /* a rewrite never drops other rows */
	}
	free(r);
	X509_CRL *crl = est_crl_build(issuer, key, text, size, 1795000000, 30, 1);
	if(crl && X509_CRL_verify(crl, key) != 1) {
		__builtin_trap();
	}
	X509_CRL_free(crl);
	return 0;
}
