/*
 * test_bridge_integrity.c — the bridge's side of the integrity envelope
 * without a broker: the configuration keys (site_id, sign_key,
 * sign_algorithm), loading the signing key (bridge/sign.c: loose file modes,
 * wrong algorithm, not a key), and the queue keeping each message's device
 * identity — including the in-place upgrade of a queue file written by the
 * previous bridge version (schema 1), which must keep every queued message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sqlite3.h>

#include "bconf.h"
#include "envelope.h"
#include "queue.h"
#include "sign.h"

#define BASE                                                                                      \
	"plant_host 127.0.0.1\n"                                                                      \
	"plant_cafile /p/ca.crt\n"                                                                    \
	"plant_certfile /p/b.crt\n"                                                                   \
	"plant_keyfile /p/b.key\n"                                                                    \
	"cloud_host cloud.example.net\n"                                                              \
	"cloud_cafile /c/ca.crt\n"                                                                    \
	"cloud_certfile /c/b.crt\n"                                                                   \
	"cloud_keyfile /c/b.key\n"                                                                    \
	"queue_path /tmp/q.db\n"                                                                      \
	"forward plant/# \n"

static char err[16384];
static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/pgsign-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int load(const char *extra, bconf_t *cfg)
{
	char text[4096];
	snprintf(text, sizeof(text), "%s%s", BASE, extra);
	return bconf_load_buffer("t.conf", text, strlen(text), cfg, err, sizeof(err));
}

static void config_keys(void **state)
{
	bconf_t cfg;
	assert_int_equal(load("site_id osaka\nsign_key /k/sign.key\n", &cfg), 0);
	assert_string_equal(cfg.site_id, "osaka");
	assert_int_equal(cfg.sign_algorithm, BCONF_SIGN_AUTO);
	bconf_free(&cfg);
	assert_int_equal(load("site_id osaka\nsign_key /k\nsign_algorithm ecdsa-p256\n", &cfg), 0);
	assert_int_equal(cfg.sign_algorithm, BCONF_SIGN_ECDSA_P256);
	/* printed back, it loads to the same */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	bconf_print(&cfg, f);
	fclose(f);
	bconf_free(&cfg);
	assert_non_null(strstr(buf, "sign_algorithm ecdsa-p256\n"));
	assert_int_equal(bconf_load_buffer("p", buf, len, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.sign_key, "/k");
	bconf_free(&cfg);
	free(buf);
	/* without signing, site_id alone is harmless */
	assert_int_equal(load("site_id osaka\n", &cfg), 0);
	bconf_free(&cfg);

	assert_int_equal(load("sign_key /k/sign.key\n", &cfg), 1);
	assert_non_null(strstr(err, "t.conf:11: sign_key needs 'site_id'"));
	assert_int_equal(load("site_id osaka/line1\n", &cfg), 1);
	assert_non_null(strstr(err, "t.conf:11: site_id 'osaka/line1'"));
	assert_int_equal(load("site_id \"a b\"\n", &cfg), 1);
	assert_int_equal(load("sign_algorithm ed25519\n", &cfg), 1);
	assert_non_null(strstr(err, "sign_algorithm without sign_key"));
	assert_int_equal(load("site_id a\nsign_key /k\nsign_algorithm rsa\n", &cfg), 1);
	assert_non_null(strstr(err, "expected one of auto, ed25519, ecdsa-p256"));
}

/* Write a fresh key of `type` to dir/name with `mode`; returns the path. */
static const char *write_key(const char *name, const char *type, mode_t mode)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	EVP_PKEY *pk = strcmp(type, "EC") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
	                                       : EVP_PKEY_Q_keygen(NULL, NULL, type);
	assert_non_null(pk);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	EVP_PKEY_free(pk);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static int try_sign_load(const char *key, const char *extra, envelope_key_t **k)
{
	char text[1024];
	bconf_t cfg;
	snprintf(text, sizeof(text), "site_id osaka\nsign_key %s\n%s", key, extra);
	assert_int_equal(load(text, &cfg), 0);
	err[0] = '\0';
	int rc = sign_load(&cfg, k, err, sizeof(err));
	bconf_free(&cfg);
	return rc;
}

static void signing_key_checks(void **state)
{
	envelope_key_t *k = NULL;
	const char *p = write_key("ed.key", "ED25519", 0600);
	assert_int_equal(try_sign_load(p, "", &k), 0);
	assert_int_equal(envelope_key_alg(k), ENVELOPE_ALG_ED25519);
	envelope_key_free(k);
	assert_int_equal(chmod(p, 0400), 0);
	assert_int_equal(try_sign_load(p, "sign_algorithm ed25519\n", &k), 0);
	envelope_key_free(k);
	/* Loose modes: refused, with the fix. */
	static const mode_t loose[] = {0640, 0644, 0604, 0660, 0700, 0666};
	for(size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
		assert_int_equal(chmod(p, loose[i]), 0);
		k = NULL;
		assert_int_equal(try_sign_load(p, "", &k), -1);
		assert_null(k);
		assert_non_null(strstr(err, "t.conf:12: sign_key"));
		assert_non_null(strstr(err, "chmod 600"));
	}
	/* The wrong algorithm, not a key, missing, a directory. */
	const char *ec = write_key("ec.key", "EC", 0600);
	assert_int_equal(try_sign_load(ec, "", &k), 0);
	assert_int_equal(envelope_key_alg(k), ENVELOPE_ALG_ECDSA_P256);
	envelope_key_free(k);
	assert_int_equal(try_sign_load(ec, "sign_algorithm ed25519\n", &k), -1);
	assert_non_null(strstr(err, "the key is ecdsa-p256 but sign_algorithm is ed25519"));
	char junk[128];
	snprintf(junk, sizeof(junk), "%s/junk.key", dir);
	FILE *f = fopen(junk, "w");
	fputs("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", f);
	fclose(f);
	chmod(junk, 0600);
	assert_int_equal(try_sign_load(junk, "", &k), -1);
	assert_non_null(strstr(err, "scripts/pki signing-key"));
	snprintf(junk, sizeof(junk), "%s/none.key", dir);
	assert_int_equal(try_sign_load(junk, "", &k), -1);
	assert_non_null(strstr(err, "cannot open"));
	assert_int_equal(try_sign_load(dir, "", &k), -1);
	/* No sign_key: no key, no error. */
	bconf_t cfg;
	assert_int_equal(load("", &cfg), 0);
	k = (envelope_key_t *)1;
	assert_int_equal(sign_load(&cfg, &k, err, sizeof(err)), 0);
	assert_null(k);
	bconf_free(&cfg);
}

static const queue_limits_t big = {.max_bytes = 1u << 30, .max_messages = 1000000};

static void queue_keeps_device(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/q.db", dir);
	queue_t *q = NULL;
	assert_int_equal(queue_open(path, &big, &q, err, sizeof(err)), QUEUE_OK);
	queue_msg_t in[2] = {{.rx_ms = 5, .qos = 1, .local_topic = "p/a", .remote_topic = "c/a",
	                      .device = "press-07", .payload = "x", .len = 1},
	                     {.rx_ms = 6, .qos = 1, .local_topic = "p/b", .remote_topic = "c/b",
	                      .device = NULL, .payload = "y", .len = 1}};
	assert_int_equal(queue_push(q, in, 2, NULL, err, sizeof(err)), QUEUE_OK);
	queue_msg_t out[2];
	size_t n = 0;
	assert_int_equal(queue_peek(q, 0, 10, out, 2, &n), QUEUE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].device, "press-07");
	assert_string_equal(out[1].device, "");
	queue_msg_clear(&out[0]);
	queue_msg_clear(&out[1]);
	queue_close(q);
}

/* A queue written by the previous bridge version (schema 1, no device
 * column) is upgraded in place; nothing queued is lost, sequence ids go on. */
static void queue_migrates_schema_1(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/old.db", dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
	                 "CREATE TABLE msg(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	                 " rx_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0,"
	                 " qos INTEGER NOT NULL, retain INTEGER NOT NULL,"
	                 " local_topic TEXT NOT NULL, remote_topic TEXT NOT NULL,"
	                 " payload BLOB NOT NULL, size INTEGER NOT NULL);"
	                 "CREATE INDEX msg_expiry ON msg(expires_ms) WHERE expires_ms > 0;"
	                 "INSERT INTO msg(rx_ms, qos, retain, local_topic, remote_topic, payload, size)"
	                 " VALUES(1, 1, 0, 'p/1', 'c/1', x'01', 7), (2, 1, 0, 'p/2', 'c/2', x'02', 7),"
	                 " (3, 1, 0, 'p/3', 'c/3', x'03', 7);"
	                 "DELETE FROM msg WHERE seq = 1;"
	                 "PRAGMA application_id=1346847313; PRAGMA user_version=1;",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);

	queue_t *q = NULL;
	assert_int_equal(queue_open(path, &big, &q, err, sizeof(err)), QUEUE_OK);
	queue_stats_t st;
	queue_get_stats(q, &st);
	assert_int_equal(st.messages, 2);
	queue_msg_t out[4];
	size_t n = 0;
	assert_int_equal(queue_peek(q, 0, 10, out, 4, &n), QUEUE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].seq, 2);
	assert_string_equal(out[0].local_topic, "p/2");
	assert_string_equal(out[0].device, ""); /* not recorded by the old version */
	assert_int_equal(((unsigned char *)out[1].payload)[0], 3);
	queue_msg_clear(&out[0]);
	queue_msg_clear(&out[1]);
	queue_msg_t m = {.rx_ms = 9, .qos = 1, .local_topic = "p/4", .remote_topic = "c/4",
	                 .device = "d", .payload = "z", .len = 1};
	assert_int_equal(queue_push(q, &m, 1, NULL, err, sizeof(err)), QUEUE_OK);
	assert_int_equal(queue_peek(q, 3, 10, out, 4, &n), QUEUE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].seq, 4); /* AUTOINCREMENT survived the upgrade */
	assert_string_equal(out[0].device, "d");
	queue_msg_clear(&out[0]);
	queue_close(q);

	/* Reopened: the current version (3) now, no second upgrade. */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), 3);
	sqlite3_finalize(s);
	/* A future version is refused and left alone. */
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=4", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(queue_open(path, &big, &q, err, sizeof(err)), QUEUE_ERR_CORRUPT);
	assert_non_null(strstr(err, "schema version 4"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(config_keys),
	    cmocka_unit_test_setup_teardown(signing_key_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(queue_keeps_device, setup, teardown),
	    cmocka_unit_test_setup_teardown(queue_migrates_schema_1, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
