/*
 * fuzz_revocation.c — libFuzzer target for the plugin's revocation list
 * parser (plugin/core/revocation.c, on top of common/conf.c): any input must
 * load or fail with a "file:line:" message, never crash or leak.
 */
#include <stdint.h>
#include <string.h>

#include "revocation.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	revocation_t *r = revocation_load_buffer("fuzz", (const char *)data, size, err, sizeof(err));
	if(r) {
		const char *why;
		revocation_is_revoked(r, NULL, "press-07", "2A", "", &why);
		revocation_free(r);
	} else if(strncmp(err, "fuzz", 4) != 0) {
		__builtin_trap(); /* every error names the file */
	}
	return 0;
}
