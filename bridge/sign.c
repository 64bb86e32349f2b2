/*
 * sign.c — loads and checks the bridge's signing key (see sign.h).  The file
 * is opened once and checked through its descriptor (fstat then read), so
 * what was checked is what is read.
 */
#include "sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIGN_KEY_MAX (64 * 1024) /* a PEM key is a few hundred bytes */

int sign_load(const bconf_t *cfg, envelope_key_t **out, char *err, size_t errlen)
{
	*out = NULL;
	if(!cfg->sign_key) {
		return 0;
	}
	char where[1200];
	snprintf(where, sizeof(where), "%s:%d: sign_key '%s'", cfg->path, cfg->line[BK_SIGN_KEY],
	         cfg->sign_key);
	int rc = -1;
	char *buf = NULL;
	int fd = open(cfg->sign_key, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if(fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s\n", where, strerror(errno));
		goto out;
	}
	if(fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file\n", where);
		goto out;
	}
	unsigned mode = (unsigned)(st.st_mode & 07777);
	if(mode != 0600 && mode != 0400) {
		snprintf(err, errlen,
		         "%s: mode %04o lets %s read or change the signing key, and whoever can read it "
		         "can sign data as this plant: run `chmod 600 %s` (owned by the user the bridge "
		         "runs as)\n",
		         where, mode, (mode & 077) ? "other users" : "more than its owner", cfg->sign_key);
		goto out;
	}
	if(st.st_size <= 0 || st.st_size > SIGN_KEY_MAX) {
		snprintf(err, errlen, "%s: %lld bytes is not a PEM private key\n", where,
		         (long long)st.st_size);
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if(!buf) {
		snprintf(err, errlen, "%s: out of memory\n", where);
		goto out;
	}
	size_t got = 0;
	while(got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if(n < 0 && errno == EINTR) {
			continue;
		}
		if(n <= 0) {
			snprintf(err, errlen, "%s: cannot read: %s\n", where,
			         n < 0 ? strerror(errno) : "file shrank");
			goto out;
		}
		got += (size_t)n;
	}
	char why[512] = "";
	envelope_key_t *k = NULL;
	if(envelope_key_from_pem(buf, got, true, &k, why, sizeof(why)) != ENVELOPE_OK) {
		snprintf(err, errlen,
		         "%s: %s (make an Ed25519 key with `scripts/pki signing-key NAME`)\n", where,
		         why);
		goto out;
	}
	if(cfg->sign_algorithm != BCONF_SIGN_AUTO && envelope_key_alg(k) != cfg->sign_algorithm) {
		snprintf(err, errlen,
		         "%s: the key is %s but sign_algorithm is %s: remove sign_algorithm (it is "
		         "inferred from the key) or use a matching key\n",
		         where, envelope_alg_name(envelope_key_alg(k)),
		         envelope_alg_name((int)cfg->sign_algorithm));
		envelope_key_free(k);
		goto out;
	}
	*out = k;
	rc = 0;
out:
	if(buf) {
		explicit_bzero(buf, (size_t)st.st_size);
		free(buf);
	}
	if(fd >= 0) {
		close(fd);
	}
	return rc;
}
