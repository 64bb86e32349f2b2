/*
 * fuzz_identity.c — libFuzzer target for identity extraction from client
 * certificates (plugin/core/identity.c): any DER a client could present,
 * parsed by OpenSSL, then run through every identity source, the attribute
 * reader and the date check.  An identity that comes out must be one that
 * identity_valid accepts.
 */
#include <openssl/x509.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	X509 *cert = d2i_X509(NULL, &p, (long)size);
	if(!cert) {
		return 0;
	}
	identity_opts_t o = {.max_len = 64, .binding = BINDING_EQUAL};
	o.uri_prefixes[0] = "urn:plantgate:device:";
	o.uri_prefixes[1] = "urn:plantgate:bridge:";
	for(int src = IDENTITY_CN; src <= IDENTITY_SAN_DNS; src++) {
		char id[IDENTITY_MAX + 1];
		const char *why = NULL;
		o.source = (identity_source_t)src;
		if(identity_from_cert(cert, &o, id, sizeof(id), &why) == 0) {
			if(!identity_valid(id, strlen(id), o.max_len, &why)) {
				__builtin_trap();
			}
		}
	}
	char site[IDENTITY_MAX + 1], line[IDENTITY_MAX + 1], fp[65];
	identity_cert_attrs(cert, site, sizeof(site), line, sizeof(line));
	identity_fingerprint(cert, fp);
	const char *why;
	identity_check_dates(cert, (time_t)1795000000, &why);
	X509_free(cert);
	return 0;
}
