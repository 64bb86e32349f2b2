/*
 * sign.h — the bridge's signing key for the integrity envelope
 * (docs/integrity.md): loaded once at start, before any privilege drop, from
 * the PEM file named by `sign_key`.  A key file that group or others could
 * read is refused (mode must be 0600 or 0400): whoever reads it can sign
 * data as this plant.
 */
#ifndef PG_SIGN_H
#define PG_SIGN_H

#include <stddef.h>

#include "bconf.h"
#include "envelope.h"

/* Load and check cfg->sign_key.  *out is NULL when no sign_key is set (the
 * bridge then sends unsigned messages and says so at start); otherwise the
 * caller owns the key (envelope_key_free).  Returns 0, or -1 with one line
 * "file:line: sign_key 'path': what is wrong and what to do" in err. */
int sign_load(const bconf_t *cfg, envelope_key_t **out, char *err, size_t errlen);

#endif
