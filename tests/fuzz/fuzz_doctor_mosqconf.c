/*
 * fuzz_doctor_mosqconf.c — libFuzzer target for plantgate-doctor's
 * mosquitto.conf reader (doctor/doctor_mosq.c): any input must be read
 * or refused with a "file:line:" error, and the configuration checks must run
 * on whatever was read, without crashing, leaking or reading out of bounds.
 * include_dir is recorded but not followed for in-memory input.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "doctor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char err[4096];
	doctor_mosq_t m;
	doctor_report_t r;
	memset(&r, 0, sizeof(r));
	doctor_mosq_load_buffer("fuzz.conf", (const char *)data, size, &m, err, sizeof(err));
	doctor_mosq_check(&m, &r);
	for(size_t i = 0; i < r.count; i++) {
		if(!r.items[i].check || !r.items[i].title) {
			__builtin_trap();
		}
	}
	doctor_report_free(&r);
	doctor_mosq_free(&m);
	return 0;
}
