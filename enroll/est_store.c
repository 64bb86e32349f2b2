/*
 * est_store.c — the PKI directory as plantgate-est writes it (est_store.h).
 */
#include "est_store.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "est_csr.h"
#include "identity.h"
#include "util.h"

int est_store_lock(const char *pki_dir, char *err, size_t errlen)
{
	char path[4096];
	if(util_snprintf(path, sizeof(path), "%s/.lock", pki_dir) < 0) {
		util_snprintf(err, errlen, "PKI directory path too long");
		return -1;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if(fd < 0) {
		util_snprintf(err, errlen, "cannot open %s: %s; plantgate-est's user needs write access "
		                           "to the PKI directory's lock",
		              path, strerror(errno));
		return -1;
	}
	for(int i = 0; i < 200; i++) {
		if(flock(fd, LOCK_EX | LOCK_NB) == 0) {
			return fd;
		}
		if(errno != EWOULDBLOCK && errno != EINTR) {
			break;
		}
		usleep(50 * 1000);
	}
	util_snprintf(err, errlen, "%s is held by another scripts/pki command for more than 10 s",
	              path);
	close(fd);
	return -1;
}

void est_store_unlock(int fd)
{
	if(fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}

int est_store_write_atomic(const char *path, const char *data, size_t len, mode_t mode, char *err,
                           size_t errlen)
{
	char tmp[4200], dir[4200];
	if(util_snprintf(tmp, sizeof(tmp), "%s.est-new", path) < 0 ||
	   util_strlcpy(dir, path, sizeof(dir))) {
		util_snprintf(err, errlen, "path too long: %s", path);
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if(fd < 0) {
		util_snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		return -1;
	}
	size_t off = 0;
	while(off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if(n < 0 && errno == EINTR) {
			continue;
		}
		if(n <= 0) {
			util_snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)n;
	}
	if(fchmod(fd, mode) || fsync(fd) || close(fd)) {
		util_snprintf(err, errlen, "cannot sync %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if(rename(tmp, path)) {
		util_snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if(dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

char *est_store_read(const char *path, size_t *len, char *err, size_t errlen)
{
	*len = 0;
	FILE *f = fopen(path, "re");
	if(!f) {
		if(errno != ENOENT) {
			util_snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		}
		return NULL;
	}
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap + 1);
	while(buf) {
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if(n < cap) {
			break;
		}
		char *nb = realloc(buf, cap * 2 + 1);
		if(!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	if(!buf || ferror(f)) {
		util_snprintf(err, errlen, "cannot read %s", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

int est_store_record(const char *pki_dir, X509 *cert, char *err, size_t errlen)
{
	char serial[128], row[2048], path[4096], idx[4096];
	if(est_serial_hex(cert, serial, sizeof(serial)) || est_index_row(cert, row, sizeof(row)) ||
	   util_snprintf(path, sizeof(path), "%s/newcerts/%s.pem", pki_dir, serial) < 0 ||
	   util_snprintf(idx, sizeof(idx), "%s/index.txt", pki_dir) < 0) {
		util_snprintf(err, errlen, "cannot describe the certificate for index.txt");
		return -1;
	}
	err[0] = '\0';
	size_t len;
	char *cur = est_store_read(idx, &len, err, errlen);
	if(!cur) {
		if(!err[0]) {
			util_snprintf(err, errlen, "%s is missing: pki_dir is not a scripts/pki CA", idx);
		}
		return -1;
	}
	char needle[140];
	util_snprintf(needle, sizeof(needle), "\t%s\t", serial);
	int rc = -1;
	char *next = NULL;
	if(strstr(cur, needle)) {
		util_snprintf(err, errlen, "serial %s is already in %s", serial, idx);
		goto out;
	}
	BIO *b = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long pl = b && PEM_write_bio_X509(b, cert) == 1 ? BIO_get_mem_data(b, &pem) : 0;
	if(pl <= 0 || est_store_write_atomic(path, pem, (size_t)pl, 0644, err, errlen)) {
		if(pl <= 0) {
			util_snprintf(err, errlen, "cannot encode the certificate");
		}
		BIO_free(b);
		goto out;
	}
	BIO_free(b);
	size_t rl = strlen(row);
	bool nl = len > 0 && cur[len - 1] != '\n';
	next = malloc(len + rl + 2);
	if(!next) {
		util_snprintf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(next, cur, len);
	if(nl) {
		next[len++] = '\n';
	}
	memcpy(next + len, row, rl);
	rc = est_store_write_atomic(idx, next, len + rl, 0644, err, errlen);
out:
	free(next);
	free(cur);
	return rc;
}

int est_store_supersede(const char *pki_dir, X509 *old, const char *identity, time_t now,
                        char *err, size_t errlen)
{
	char serial[128], idx[4096], list[4096], fp[65];
	if(est_serial_hex(old, serial, sizeof(serial)) || identity_fingerprint(old, fp) ||
	   util_snprintf(idx, sizeof(idx), "%s/index.txt", pki_dir) < 0 ||
	   util_snprintf(list, sizeof(list), "%s/revoked.txt", pki_dir) < 0) {
		util_snprintf(err, errlen, "cannot describe the old certificate");
		return -1;
	}
	err[0] = '\0';
	size_t len;
	char *cur = est_store_read(idx, &len, err, errlen);
	char *next = cur ? est_index_revoke(cur, len, serial, now) : NULL;
	free(cur);
	if(next) {
		int rc = est_store_write_atomic(idx, next, strlen(next), 0644, err, errlen);
		free(next);
		if(rc) {
			return -1;
		}
	}
	/* revoked.txt even when index.txt has no valid row (issued elsewhere):
	 * the plugin refuses the certificate on its next reload. */
	size_t ll;
	char *old_list = est_store_read(list, &ll, err, errlen);
	if(!old_list && err[0]) {
		return -1;
	}
	struct tm tm;
	char stamp[32] = "";
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	size_t cap = ll + 512;
	char *out = malloc(cap);
	if(!out) {
		free(old_list);
		util_snprintf(err, errlen, "out of memory");
		return -1;
	}
	int n = snprintf(out, cap, "%.*s%s# %s revoked %s reason=superseded (plantgate-est)\n"
	                           "serial %s\nsha256 %s\n",
	                 (int)ll, old_list ? old_list : "", ll && old_list[ll - 1] != '\n' ? "\n" : "",
	                 stamp, identity, serial, fp);
	free(old_list);
	int rc = n < 0 || (size_t)n >= cap ? -1
	                                    : est_store_write_atomic(list, out, (size_t)n, 0644, err,
	                                                             errlen);
	free(out);
	return rc;
}

int est_store_crl(const char *pki_dir, X509 *issuer, EVP_PKEY *key, time_t now, char *err,
                  size_t errlen)
{
	char idx[4096], own[4096], all[4096];
	if(util_snprintf(idx, sizeof(idx), "%s/index.txt", pki_dir) < 0 ||
	   util_snprintf(own, sizeof(own), "%s/crl-est.pem", pki_dir) < 0 ||
	   util_snprintf(all, sizeof(all), "%s/crl.pem", pki_dir) < 0) {
		util_snprintf(err, errlen, "PKI directory path too long");
		return -1;
	}
	err[0] = '\0';
	size_t len = 0, cl = 0;
	char *text = est_store_read(idx, &len, err, errlen);
	if(!text) {
		if(!err[0]) {
			util_snprintf(err, errlen, "%s is missing", idx);
		}
		return -1;
	}
	X509_CRL *crl = est_crl_build(issuer, key, text, len, now, 30, (long)now);
	free(text);
	char *cur = est_store_read(all, &cl, err, errlen);
	BIO *mine = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
	BIO *in = cur ? BIO_new_mem_buf(cur, (int)cl) : NULL;
	int rc = -1;
	char *data = NULL;
	long n;
	if(!crl || !mine || !out || PEM_write_bio_X509_CRL(mine, crl) != 1) {
		util_snprintf(err, errlen, "cannot build the intermediate's CRL");
		goto done;
	}
	n = BIO_get_mem_data(mine, &data);
	if(est_store_write_atomic(own, data, (size_t)n, 0644, err, errlen)) {
		goto done;
	}
	/* Keep the other issuers' CRLs, in order, then ours. */
	for(X509_CRL *c; in && (c = PEM_read_bio_X509_CRL(in, NULL, NULL, NULL));) {
		if(X509_NAME_cmp(X509_CRL_get_issuer(c), X509_get_subject_name(issuer)) != 0) {
			PEM_write_bio_X509_CRL(out, c);
		}
		X509_CRL_free(c);
	}
	ERR_clear_error();
	PEM_write_bio_X509_CRL(out, crl);
	n = BIO_get_mem_data(out, &data);
	rc = est_store_write_atomic(all, data, (size_t)n, 0644, err, errlen);
done:
	BIO_free(in);
	BIO_free(mine);
	BIO_free(out);
	free(cur);
	X509_CRL_free(crl);
	return rc;
}
