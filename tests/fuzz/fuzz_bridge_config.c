/*
 * fuzz_bridge_config.c — libFuzzer target for the bridge configuration parser
 * (bridge/bconf.c): any input must be either accepted or refused with errors,
 * never crash, leak or read out of bounds; an accepted configuration printed
 * back must load again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char err[16384];
	bconf_t cfg;
	if(bconf_load_buffer("fuzz.conf", (const char *)data, size, &cfg, err, sizeof(err)) == 0) {
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		if(f) {
			bconf_print(&cfg, f);
			fclose(f);
			bconf_t again;
			if(bconf_load_buffer("printed.conf", buf, len, &again, err, sizeof(err)) != 0) {
				fprintf(stderr, "printed configuration does not load:\n%s\n%s", buf, err);
				abort();
			}
			bconf_free(&again);
			free(buf);
		}
		bconf_free(&cfg);
	}
	return 0;
}
