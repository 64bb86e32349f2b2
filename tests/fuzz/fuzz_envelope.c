/*
 * fuzz_envelope.c — libFuzzer target for the integrity envelope's parsers
 * (common/envelope.c, common/json.c): MQTT 5 user properties, the JSON
 * wrapper and capture lines.  Any input must be accepted or refused, never
 * crash, leak or read out of bounds; whatever is accepted must encode back to
 * something that parses to the same envelope.
 *
 * Input: the first byte picks the parser; the rest is the text.  For
 * properties the text is "name=value" lines (split at the first '=').
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const envelope_t *a, const envelope_t *b)
{
	if(strcmp(a->site, b->site) || strcmp(a->device, b->device) || strcmp(a->topic, b->topic) ||
	   a->seq != b->seq || a->rx_ms != b->rx_ms || a->ts_ms != b->ts_ms ||
	   strcmp(a->kid, b->kid) || a->sig_len != b->sig_len ||
	   memcmp(a->sig, b->sig, a->sig_len) != 0) {
		fprintf(stderr, "envelope changed in a round trip\n");
		abort();
	}
}

static void fuzz_props(const char *text, size_t len)
{
	char *copy = malloc(len + 1);
	envelope_prop_t props[64];
	size_t n = 0;
	if(!copy) {
		return;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	for(char *line = copy; line && n < 64;) {
		char *nl = strchr(line, '\n');
		if(nl) {
			*nl = '\0';
		}
		char *eq = strchr(line, '=');
		if(eq) {
			*eq = '\0';
			props[n].name = line;
			props[n].value = eq + 1;
			n++;
		}
		line = nl ? nl + 1 : NULL;
	}
	envelope_t e, back;
	char why[256];
	if(envelope_from_props(&e, props, n, why, sizeof(why)) == ENVELOPE_OK) {
		envelope_props_t p;
		envelope_to_props(&e, &p);
		if(envelope_from_props(&back, p.p, ENVELOPE_NPROPS, why, sizeof(why)) != ENVELOPE_OK) {
			fprintf(stderr, "re-encoded properties do not parse: %s\n", why);
			abort();
		}
		check_same(&e, &back);
		envelope_clear(&back);
		envelope_clear(&e);
	}
	free(copy);
}

static void fuzz_json(const char *text, size_t len)
{
	envelope_t e, back;
	char why[256];
	if(envelope_from_json(&e, text, len, why, sizeof(why)) == ENVELOPE_OK) {
		char *out;
		size_t olen;
		if(envelope_to_json(&e, e.payload, e.payload_len, &out, &olen) == ENVELOPE_OK) {
			if(envelope_from_json(&back, out, olen, why, sizeof(why)) != ENVELOPE_OK) {
				fprintf(stderr, "re-encoded wrapper does not parse: %s\n", why);
				abort();
			}
			check_same(&e, &back);
			if(back.payload_len != e.payload_len ||
			   memcmp(back.payload, e.payload, e.payload_len) != 0) {
				abort();
			}
			envelope_clear(&back);
			free(out);
		}
		envelope_clear(&e);
	}
}

static void fuzz_capture(const char *text, size_t len)
{
	envelope_capture_t c, back;
	char why[256];
	if(envelope_capture_parse(&c, text, len, why, sizeof(why)) == ENVELOPE_OK) {
		char *out;
		size_t olen;
		if(envelope_capture_format(c.topic, c.payload, c.len, c.props, c.nprops, &out, &olen) ==
		   ENVELOPE_OK) {
			if(envelope_capture_parse(&back, out, olen, why, sizeof(why)) != ENVELOPE_OK ||
			   strcmp(back.topic, c.topic) || back.len != c.len || back.nprops != c.nprops ||
			   (c.len && memcmp(back.payload, c.payload, c.len))) {
				fprintf(stderr, "capture line changed in a round trip\n");
				abort();
			}
			envelope_capture_clear(&back);
			free(out);
		}
		/* What a verifier does next with a captured message. */
		envelope_t e;
		if(envelope_from_props(&e, c.props, c.nprops, why, sizeof(why)) == ENVELOPE_OK) {
			envelope_clear(&e);
		}
		envelope_capture_clear(&c);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if(size < 1) {
		return 0;
	}
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	switch(data[0] % 3) {
	case 0:
		fuzz_props(text, len);
		break;
	case 1:
		fuzz_json(text, len);
		break;
	default:
		fuzz_capture(text, len);
		break;
	}
	return 0;
}
