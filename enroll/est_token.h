/*
 * est_token.h — one-time enrollment tokens (scripts/pki enroll-token).
 *
 * An operator gives a new device a token that lets it enroll once as one
 * identity (with its site and line) before an expiry.  The file keeps only
 * the SHA-256 of each token, so reading it does not let anyone enroll:
 *
 *     # plantgate enrollment tokens — written by scripts/pki and plantgate-est
 *     token <sha256 hex of the token> <identity> <site|-> <line|-> <expires unix> unused|used[:SERIAL]
 *
 * plantgate-est marks a token "used" (and rewrites the file atomically) before
 * it hands out the certificate, so a token works once; a used token stays in
 * the file so that a replay is named as one, with the serial it was used for
 * ("used:SERIAL") so that an answer the device never received can be sent
 * again to the holder of that certificate's key.  Pure: the caller passes the
 * time.
 */
#ifndef PG_EST_TOKEN_H
#define PG_EST_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "est_csr.h"

#define EST_NAME_MAX 64 /* identity, site and line: scripts/pki's limit */

typedef struct est_token {
	char hash[65]; /* lower-case hex SHA-256 of the token text */
	char id[EST_NAME_MAX + 1];
	char site[EST_NAME_MAX + 1]; /* "" for none ("-" in the file) */
	char line[EST_NAME_MAX + 1];
	int64_t expires; /* unix seconds */
	bool used;
	char serial[65]; /* the certificate issued with it ("used:SERIAL"), or "" */
} est_token_t;

typedef struct est_tokens {
	est_token_t *v;
	size_t n, cap;
} est_tokens_t;

/* Parse a token file held in memory; `name` is used in "name:line: ..."
 * errors.  Identity, site and line must pass the plugin's identity rules
 * (identity_valid) and be at most EST_NAME_MAX bytes.  On success *out holds
 * the tokens (free with est_tokens_free); on error it is empty. */
int est_tokens_parse(const char *name, const char *buf, size_t len, est_tokens_t *out, char *err,
                     size_t errlen);
/* Same from a file; a file that does not exist is an empty store. */
int est_tokens_load(const char *path, est_tokens_t *out, char *err, size_t errlen);
void est_tokens_free(est_tokens_t *t);

/* The file text for t (malloc'ed, NUL-terminated); parses back to t. */
char *est_tokens_format(const est_tokens_t *t, size_t *len);

/* Find the token whose hash is SHA-256(token) and that belongs to `identity`,
 * check it is unused and not expired at `now`, and mark it used.  *index is
 * its position.  EST_E_TOKEN (unknown, other identity, expired) or
 * EST_E_REPLAY (used; *index is then the used token) with why filled; the
 * store is unchanged then. */
est_err_t est_tokens_redeem(est_tokens_t *t, const char *identity, const char *token, int64_t now,
                            size_t *index, char *why, size_t whylen);

#endif
