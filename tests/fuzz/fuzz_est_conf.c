/*
 * fuzz_est_conf.c — libFuzzer target for plantgate-est's configuration
 * (enroll/est_conf.c): any bytes as est.conf.  A configuration that parses
 * has every required path absolute and its numbers in range.
 */
#include <stdint.h>

#include "est_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	est_conf_t c;
	char err[512];
	if(est_conf_parse("fuzz", (const char *)data, size, &c, err, sizeof(err)) == 0) {
		if(c.tls_cert[0] != '/' || c.issuer_key[0] != '/' || c.pki_dir[0] != '/' ||
		   c.issuer_cert[0] != '/' || c.ca_cert[0] != '/' || c.tokens[0] != '/' || c.listen_port < 1 ||
		   c.listen_port > 65535 || c.cert_days < 1 || c.cert_days > 3650 ||
		   c.rate_identity < 1 || c.rate_address < 1) {
			__builtin_trap();
		}
	}
	return 0;
}
