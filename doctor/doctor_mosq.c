/*
 * doctor_mosq.c — what plantgate-doctor reads in mosquitto.conf, and the
 * checks on it.
 *
 * The parser models only what security depends on, the way mosquitto 2.0
 * applies it: settings such as cafile, certfile, require_certificate or
 * tls_version belong to the most recent `listener` line (before the first
 * one, to the default listener opened by `port`); allow_anonymous is global
 * unless per_listener_settings is true; plugin_opt_* belong to the plugin
 * loaded before them; include_dir pulls in the directory's *.conf files in
 * name order, at that point.  Every setting keeps its file and line so a
 * finding can point at it.  Lines are split by common/conf.c, which treats
 * '#' as a comment only at the start of a line — exactly mosquitto's rule.
 * Unknown directives are ignored: mosquitto itself refuses those.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "doctor.h"
#include "util.h"

#define DOCTOR_MOSQ_MAX_DEPTH 4
#define DOCTOR_MOSQ_MAX_FILES 256

/* Where a directive goes: the current listener, or the whole broker. */
enum doctor_mosq_scope { DM_LISTENER, DM_GLOBAL, DM_BOTH };

typedef struct doctor_mosq_row {
	const char *key;
	enum doctor_mosq_scope scope;
	size_t listener_off; /* offset in doctor_listener_t (DM_LISTENER, DM_BOTH) */
	size_t global_off;   /* offset in doctor_mosq_t (DM_GLOBAL, DM_BOTH) */
} doctor_mosq_row_t;

#define LOFF(f) offsetof(doctor_listener_t, f)
#define GOFF(f) offsetof(doctor_mosq_t, f)

static const doctor_mosq_row_t doctor_mosq_rows[] = {
    {"cafile", DM_LISTENER, LOFF(cafile), 0},
    {"capath", DM_LISTENER, LOFF(capath), 0},
    {"certfile", DM_LISTENER, LOFF(certfile), 0},
    {"keyfile", DM_LISTENER, LOFF(keyfile), 0},
    {"crlfile", DM_LISTENER, LOFF(crlfile), 0},
    {"tls_version", DM_LISTENER, LOFF(tls_version), 0},
    {"require_certificate", DM_LISTENER, LOFF(require_certificate), 0},
    {"use_identity_as_username", DM_LISTENER, LOFF(use_identity_as_username), 0},
    {"use_subject_as_username", DM_LISTENER, LOFF(use_subject_as_username), 0},
    {"disable_client_cert_date_checks", DM_LISTENER, LOFF(disable_client_cert_date_checks), 0},
    {"protocol", DM_LISTENER, LOFF(protocol), 0},
    {"psk_hint", DM_LISTENER, LOFF(psk_hint), 0},
    {"bind_interface", DM_LISTENER, LOFF(bind_interface), 0},
    {"allow_anonymous", DM_BOTH, LOFF(allow_anonymous), GOFF(allow_anonymous)},
    {"per_listener_settings", DM_GLOBAL, 0, GOFF(per_listener_settings)},
    {"user", DM_GLOBAL, 0, GOFF(user)},
    {"persistence", DM_GLOBAL, 0, GOFF(persistence)},
    {"autosave_interval", DM_GLOBAL, 0, GOFF(autosave_interval)},
    {"autosave_on_changes", DM_GLOBAL, 0, GOFF(autosave_on_changes)},
};

typedef struct doctor_mosq_state {
	doctor_mosq_t *m;
	int depth;
	bool follow_includes;
} doctor_mosq_state_t;

static void doctor_mosq_setting_free(doctor_setting_t *s)
{
	free(s->value);
	s->value = NULL;
}

static void doctor_mosq_listener_free(doctor_listener_t *l)
{
	doctor_setting_t *all[] = {&l->decl,     &l->bind_interface,
	                           &l->cafile,   &l->capath,
	                           &l->certfile, &l->keyfile,
	                           &l->crlfile,  &l->tls_version,
	                           &l->require_certificate, &l->use_identity_as_username,
	                           &l->use_subject_as_username, &l->protocol,
	                           &l->psk_hint, &l->allow_anonymous,
	                           &l->disable_client_cert_date_checks};
	for(size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		doctor_mosq_setting_free(all[i]);
	}
	free(l->port);
	free(l->bind);
	l->port = l->bind = NULL;
}

void doctor_mosq_free(doctor_mosq_t *m)
{
	if(!m) {
		return;
	}
	for(size_t i = 0; i < m->nfiles; i++) {
		free(m->files[i]);
	}
	free(m->files);
	doctor_mosq_listener_free(&m->deflt);
	for(size_t i = 0; i < m->nlisteners; i++) {
		doctor_mosq_listener_free(&m->listeners[i]);
	}
	free(m->listeners);
	doctor_mosq_setting_free(&m->per_listener_settings);
	doctor_mosq_setting_free(&m->persistence);
	doctor_mosq_setting_free(&m->autosave_interval);
	doctor_mosq_setting_free(&m->autosave_on_changes);
	doctor_mosq_setting_free(&m->allow_anonymous);
	doctor_mosq_setting_free(&m->user);
	for(size_t i = 0; i < m->nplugins; i++) {
		doctor_mosq_setting_free(&m->plugins[i]);
	}
	free(m->plugins);
	for(size_t i = 0; i < m->nopts; i++) {
		free(m->opts[i].key);
		doctor_mosq_setting_free(&m->opts[i].set);
	}
	free(m->opts);
	for(size_t i = 0; i < m->ninclude_dirs; i++) {
		doctor_mosq_setting_free(&m->include_dirs[i]);
	}
	free(m->include_dirs);
	memset(m, 0, sizeof(*m));
}

/* The words argv[from..argc) joined by single blanks, malloc'd. */
static char *doctor_mosq_join(const conf_line_t *l, int from)
{
	size_t len = 1;
	for(int i = from; i < l->argc; i++) {
		len += strlen(l->argv[i]) + 1;
	}
	char *s = malloc(len);
	if(!s) {
		return NULL;
	}
	s[0] = '\0';
	size_t at = 0;
	for(int i = from; i < l->argc; i++) {
		size_t n = strlen(l->argv[i]);
		if(at) {
			s[at++] = ' ';
		}
		memcpy(s + at, l->argv[i], n);
		at += n;
		s[at] = '\0';
	}
	return s;
}

static int doctor_mosq_set(doctor_setting_t *s, const conf_line_t *l, int from)
{
	char *v = doctor_mosq_join(l, from);
	if(!v) {
		return -1;
	}
	free(s->value);
	s->value = v;
	s->file = l->file;
	s->line = l->line;
	return 0;
}

/* Grow an array of `size`-byte elements by one zeroed element. */
static void *doctor_mosq_grow(void *arr, size_t *n, size_t size)
{
	char *a = realloc(arr, (*n + 1) * size);
	if(!a) {
		return NULL;
	}
	memset(a + *n * size, 0, size);
	(*n)++;
	return a;
}

/* Remember a file name; its copy is what settings point to. */
static const char *doctor_mosq_add_file(doctor_mosq_t *m, const char *path)
{
	if(m->nfiles >= DOCTOR_MOSQ_MAX_FILES) {
		return NULL;
	}
	char *copy = strdup(path);
	if(!copy) {
		return NULL;
	}
	char **f = realloc(m->files, (m->nfiles + 1) * sizeof(*f));
	if(!f) {
		free(copy);
		return NULL;
	}
	m->files = f;
	m->files[m->nfiles++] = copy;
	return copy;
}

static doctor_listener_t *doctor_mosq_current(doctor_mosq_t *m)
{
	return m->nlisteners ? &m->listeners[m->nlisteners - 1] : &m->deflt;
}

static int doctor_mosq_parse_file(doctor_mosq_state_t *st, const char *path, char *err, size_t errlen);

static int doctor_mosq_include(doctor_mosq_state_t *st, const conf_line_t *l, char *err, size_t errlen)
{
	int rc = 0;
	struct dirent **names = NULL;
	int n;

	if(st->depth >= DOCTOR_MOSQ_MAX_DEPTH) {
		return conf_error(l, err, errlen, "include_dir nested too deeply");
	}
	n = scandir(l->argv[1], &names, NULL, alphasort);
	if(n < 0) {
		return conf_error(l, err, errlen, "include_dir %s: cannot read the directory", l->argv[1]);
	}
	for(int i = 0; i < n; i++) {
		size_t len = strlen(names[i]->d_name);
		char path[4096];
		if(rc == 0 && len > 5 && strcmp(names[i]->d_name + len - 5, ".conf") == 0) {
			if(util_snprintf(path, sizeof(path), "%s/%s", l->argv[1], names[i]->d_name) < 0) {
				rc = conf_error(l, err, errlen, "include_dir path too long");
			} else {
				st->depth++;
				rc = doctor_mosq_parse_file(st, path, err, errlen);
				st->depth--;
			}
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

static int doctor_mosq_line(void *ud, const conf_line_t *l, char *err, size_t errlen)
{
	doctor_mosq_state_t *st = ud;
	doctor_mosq_t *m = st->m;
	const char *k = l->argv[0];

	if(strcmp(k, "listener") == 0) {
		if(l->argc < 2) {
			return conf_error(l, err, errlen, "listener needs a port");
		}
		doctor_listener_t *n = doctor_mosq_grow(m->listeners, &m->nlisteners, sizeof(*n));
		if(!n) {
			return conf_error(l, err, errlen, "out of memory");
		}
		m->listeners = n;
		doctor_listener_t *li = &m->listeners[m->nlisteners - 1];
		li->port = strdup(l->argv[1]);
		li->bind = l->argc > 2 ? strdup(l->argv[2]) : NULL;
		if(!li->port || (l->argc > 2 && !li->bind) || doctor_mosq_set(&li->decl, l, 0)) {
			return conf_error(l, err, errlen, "out of memory");
		}
		return 0;
	}
	if(strcmp(k, "port") == 0 || strcmp(k, "bind_address") == 0) {
		if(l->argc < 2) {
			return conf_error(l, err, errlen, "%s needs a value", k);
		}
		char **slot = strcmp(k, "port") == 0 ? &m->deflt.port : &m->deflt.bind;
		free(*slot);
		*slot = strdup(l->argv[1]);
		m->deflt_used = true;
		if(!*slot || doctor_mosq_set(&m->deflt.decl, l, 0)) {
			return conf_error(l, err, errlen, "out of memory");
		}
		return 0;
	}
	if(strcmp(k, "plugin") == 0 || strcmp(k, "auth_plugin") == 0) {
		if(l->argc < 2) {
			return conf_error(l, err, errlen, "%s needs a path", k);
		}
		doctor_setting_t *p = doctor_mosq_grow(m->plugins, &m->nplugins, sizeof(*p));
		if(!p) {
			return conf_error(l, err, errlen, "out of memory");
		}
		m->plugins = p;
		return doctor_mosq_set(&m->plugins[m->nplugins - 1], l, 1) ? conf_error(l, err, errlen, "out of memory") : 0;
	}
	if(strncmp(k, "plugin_opt_", 11) == 0 || strncmp(k, "auth_opt_", 9) == 0) {
		const char *name = k + (k[0] == 'p' ? 11 : 9);
		doctor_plugin_opt_t *o = doctor_mosq_grow(m->opts, &m->nopts, sizeof(*o));
		if(!o) {
			return conf_error(l, err, errlen, "out of memory");
		}
		m->opts = o;
		doctor_plugin_opt_t *opt = &m->opts[m->nopts - 1];
		opt->key = strdup(name);
		if(!opt->key || doctor_mosq_set(&opt->set, l, 1)) {
			return conf_error(l, err, errlen, "out of memory");
		}
		return 0;
	}
	if(strcmp(k, "include_dir") == 0) {
		if(l->argc < 2) {
			return conf_error(l, err, errlen, "include_dir needs a directory");
		}
		doctor_setting_t *d = doctor_mosq_grow(m->include_dirs, &m->ninclude_dirs, sizeof(*d));
		if(!d) {
			return conf_error(l, err, errlen, "out of memory");
		}
		m->include_dirs = d;
		if(doctor_mosq_set(&m->include_dirs[m->ninclude_dirs - 1], l, 1)) {
			return conf_error(l, err, errlen, "out of memory");
		}
		return st->follow_includes ? doctor_mosq_include(st, l, err, errlen) : 0;
	}
	for(size_t i = 0; i < sizeof(doctor_mosq_rows) / sizeof(doctor_mosq_rows[0]); i++) {
		const doctor_mosq_row_t *row = &doctor_mosq_rows[i];
		if(strcmp(k, row->key) != 0) {
			continue;
		}
		if(row->scope != DM_GLOBAL &&
		   doctor_mosq_set((doctor_setting_t *)((char *)doctor_mosq_current(m) + row->listener_off), l, 1)) {
			return conf_error(l, err, errlen, "out of memory");
		}
		if(row->scope != DM_LISTENER &&
		   doctor_mosq_set((doctor_setting_t *)((char *)m + row->global_off), l, 1)) {
			return conf_error(l, err, errlen, "out of memory");
		}
		return 0;
	}
	return 0;
}

static int doctor_mosq_parse_file(doctor_mosq_state_t *st, const char *path, char *err, size_t errlen)
{
	const char *name = doctor_mosq_add_file(st->m, path);
	if(!name) {
		util_snprintf(err, errlen, "%s: too many files or out of memory", path);
		return -1;
	}
	return conf_parse_file(name, doctor_mosq_line, st, err, errlen);
}

int doctor_mosq_load_file(const char *path, doctor_mosq_t *m, char *err, size_t errlen)
{
	doctor_mosq_state_t st = {m, 0, true};
	memset(m, 0, sizeof(*m));
	return doctor_mosq_parse_file(&st, path, err, errlen);
}

int doctor_mosq_load_buffer(const char *name, const char *buf, size_t len, doctor_mosq_t *m,
                            char *err, size_t errlen)
{
	doctor_mosq_state_t st = {m, 0, false};
	memset(m, 0, sizeof(*m));
	const char *n = doctor_mosq_add_file(m, name);
	if(!n) {
		util_snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	return conf_parse_buffer(n, buf, len, doctor_mosq_line, &st, err, errlen);
}

const doctor_setting_t *doctor_mosq_opt(const doctor_mosq_t *m, const char *key)
{
	const doctor_setting_t *found = NULL;
	for(size_t i = 0; i < m->nopts; i++) {
		if(strcmp(m->opts[i].key, key) == 0) {
			found = &m->opts[i].set;
		}
	}
	return found && found->value && found->value[0] ? found : NULL;
}

doctor_listener_t **doctor_mosq_listeners(const doctor_mosq_t *m, size_t *n)
{
	size_t count = m->nlisteners + 1;
	doctor_listener_t **arr = calloc(count, sizeof(*arr));
	*n = 0;
	if(!arr) {
		return NULL;
	}
	if(m->deflt_used || m->nlisteners == 0) {
		arr[(*n)++] = (doctor_listener_t *)&m->deflt;
	}
	for(size_t i = 0; i < m->nlisteners; i++) {
		arr[(*n)++] = &m->listeners[i];
	}
	return arr;
}

/* ---- checks ---------------------------------------------------------------- */

static bool doctor_mosq_is_true(const doctor_setting_t *s)
{
	return s->value && strcmp(s->value, "true") == 0;
}

/* "file:line: key value" for a setting. */
static void doctor_mosq_ev(const doctor_setting_t *s, const char *key, char *buf, size_t len)
{
	if(s->value) {
		util_snprintf(buf, len, "%s:%d: %s%s%s", s->file, s->line, key, key[0] ? " " : "", s->value);
	} else {
		util_snprintf(buf, len, "%s not set", key);
	}
}

/* A listener's name for messages: "listener 8883 127.0.0.1". */
static void doctor_mosq_name(const doctor_listener_t *l, char *buf, size_t len)
{
	if(l->decl.value && !l->implicit && strncmp(l->decl.value, "listener", 8) == 0) {
		util_snprintf(buf, len, "%s", l->decl.value);
	} else if(l->port || l->bind) {
		util_snprintf(buf, len, "default listener (port %s%s%s)", l->port ? l->port : "1883",
		              l->bind ? " on " : "", l->bind ? l->bind : "");
	} else {
		util_snprintf(buf, len, "default listener (no listener configured)");
	}
}

/* Evidence of the listener declaration. */
static void doctor_mosq_decl_ev(const doctor_listener_t *l, const char *conf, char *buf, size_t len)
{
	if(l->decl.value) {
		util_snprintf(buf, len, "%s:%d: %s", l->decl.file, l->decl.line, l->decl.value);
	} else {
		util_snprintf(buf, len, "%s: no `listener` line: mosquitto 2.0 then listens on "
		              "127.0.0.1:1883 only, without TLS", conf);
	}
}

enum doctor_mosq_addr { DA_LOOPBACK, DA_PRIVATE, DA_ANY, DA_PUBLIC, DA_NAME };

/* Classify a bind address. */
static enum doctor_mosq_addr doctor_mosq_classify(const char *a)
{
	unsigned char b[16];
	if(!a || strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0 || strcmp(a, "*") == 0) {
		return DA_ANY;
	}
	if(strcmp(a, "localhost") == 0) {
		return DA_LOOPBACK;
	}
	if(inet_pton(AF_INET, a, b) == 1) {
		if(b[0] == 127) {
			return DA_LOOPBACK;
		}
		if(b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
		   (b[0] == 169 && b[1] == 254) || (b[0] == 100 && (b[1] & 0xc0) == 64) ||
		   (b[0] == 192 && b[1] == 0 && b[2] == 2) || (b[0] == 198 && b[1] == 51 && b[2] == 100) ||
		   (b[0] == 203 && b[1] == 0 && b[2] == 113)) {
			return DA_PRIVATE; /* RFC 1918, link-local, CGNAT, documentation */
		}
		return DA_PUBLIC;
	}
	if(inet_pton(AF_INET6, a, b) == 1) {
		static const unsigned char lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
		if(memcmp(b, lo, 16) == 0) {
			return DA_LOOPBACK;
		}
		if((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||
		   (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)) {
			return DA_PRIVATE; /* ULA, link-local, documentation */
		}
		return DA_PUBLIC;
	}
	return DA_NAME;
}

static void doctor_mosq_check_listener(const doctor_mosq_t *m, const doctor_listener_t *l,
                                       doctor_report_t *r)
{
	char name[512], ev[1024], fix[1024];
	const char *conf = m->nfiles ? m->files[0] : "mosquitto.conf";
	bool tls = l->certfile.value != NULL;
	bool psk = !tls && l->psk_hint.value != NULL;
	bool implicit_local = !l->decl.value;
	const char *bind = implicit_local ? "127.0.0.1" : l->bind;
	enum doctor_mosq_addr cls = doctor_mosq_classify(bind);

	doctor_mosq_name(l, name, sizeof(name));
	doctor_mosq_decl_ev(l, conf, ev, sizeof(ev));

	/* Encryption. */
	if(psk) {
		doctor_report_add(r, "MQ-LISTENER-TLS", DOCTOR_WARNING, ev,
		                  "replace psk_hint/psk_file by certfile, keyfile, cafile and require_certificate true",
		                  "%s uses pre-shared keys: devices share secrets instead of holding their own certificate",
		                  name);
	} else if(!tls) {
		util_snprintf(fix, sizeof(fix),
		              "under `listener %s%s%s`: cafile /etc/plantgate/pki/ca.crt, certfile "
		              "/etc/plantgate/pki/issued/broker.crt, keyfile /etc/mosquitto/certs/broker.key, "
		              "require_certificate true, tls_version tlsv1.2 (or remove the listener)",
		              l->port ? l->port : "8883", bind ? " " : "", bind ? bind : "");
		doctor_report_add(r, "MQ-LISTENER-TLS", cls == DA_LOOPBACK ? DOCTOR_WARNING : DOCTOR_CRITICAL, ev, fix,
		                  "%s has no TLS: messages travel in clear text%s", name,
		                  cls == DA_LOOPBACK ? " (on this host only)"
		                                     : " and anyone on the network can read or alter them");
	} else {
		doctor_mosq_ev(&l->certfile, "certfile", ev, sizeof(ev));
		doctor_report_add(r, "MQ-LISTENER-TLS", DOCTOR_PASS, ev, NULL, "%s uses TLS", name);
	}

	/* Where it listens. */
	doctor_mosq_decl_ev(l, conf, ev, sizeof(ev));
	util_snprintf(fix, sizeof(fix), "listener %s <the plant-LAN address of this host>",
	              l->port ? l->port : "8883");
	if(l->bind_interface.value) {
		doctor_mosq_ev(&l->bind_interface, "bind_interface", ev, sizeof(ev));
		doctor_report_add(r, "MQ-LISTENER-BIND", DOCTOR_PASS, ev, NULL,
		                  "%s is bound to interface %s: make sure that is the plant LAN", name,
		                  l->bind_interface.value);
	} else if(cls == DA_ANY) {
		doctor_report_add(r, "MQ-LISTENER-BIND", DOCTOR_WARNING, ev, fix,
		                  "%s listens on every interface (%s): reachable from every network this host "
		                  "is on, not only the plant LAN",
		                  name, bind ? bind : "no address given");
	} else if(cls == DA_PUBLIC) {
		doctor_report_add(r, "MQ-LISTENER-BIND", DOCTOR_WARNING, ev, fix,
		                  "%s is bound to %s, a publicly routable address", name, bind);
	} else if(cls == DA_NAME) {
		doctor_report_add(r, "MQ-LISTENER-BIND", DOCTOR_INFO, ev, fix,
		                  "%s is bound to host name %s: make sure it resolves to the plant-LAN address",
		                  name, bind);
	} else {
		doctor_report_add(r, "MQ-LISTENER-BIND", DOCTOR_PASS, ev, NULL, "%s is bound to %s (%s)", name, bind,
		                  cls == DA_LOOPBACK ? "this host only" : "a private address");
	}

	if(!tls) {
		return;
	}
	/* TLS version. */
	const char *v = l->tls_version.value;
	doctor_mosq_ev(&l->tls_version, "tls_version", ev, sizeof(ev));
	if(!v) {
		util_snprintf(ev, sizeof(ev), "%s: tls_version not set for %s", l->decl.file ? l->decl.file : conf, name);
		doctor_report_add(r, "MQ-TLS-VERSION", DOCTOR_WARNING, ev, "tls_version tlsv1.2",
		                  "%s does not set a minimum TLS version: older versions are accepted if the "
		                  "system's OpenSSL allows them",
		                  name);
	} else if(strcmp(v, "tlsv1.2") == 0 || strcmp(v, "tlsv1.3") == 0) {
		doctor_report_add(r, "MQ-TLS-VERSION", DOCTOR_PASS, ev, NULL, "%s requires %s or newer", name, v);
	} else {
		doctor_report_add(r, "MQ-TLS-VERSION", DOCTOR_CRITICAL, ev, "tls_version tlsv1.2",
		                  "%s accepts %s, an outdated TLS version", name, v);
	}

	/* Device certificates. */
	doctor_mosq_ev(&l->require_certificate, "require_certificate", ev, sizeof(ev));
	if(!doctor_mosq_is_true(&l->require_certificate)) {
		if(!l->require_certificate.value) {
			util_snprintf(ev, sizeof(ev), "%s:%d: %s without require_certificate", l->decl.file ? l->decl.file : conf,
			              l->decl.line, name);
		}
		doctor_report_add(r, "MQ-REQUIRE-CERT", DOCTOR_CRITICAL, ev, "require_certificate true",
		                  "%s does not require a client certificate: devices need not prove who they are",
		                  name);
	} else {
		doctor_report_add(r, "MQ-REQUIRE-CERT", DOCTOR_PASS, ev, NULL,
		                  "%s requires every client to present a certificate", name);
	}

	/* mosquitto 2.1: accept expired and not-yet-valid client certificates. */
	if(doctor_mosq_is_true(&l->disable_client_cert_date_checks)) {
		doctor_mosq_ev(&l->disable_client_cert_date_checks, "disable_client_cert_date_checks", ev, sizeof(ev));
		doctor_report_add(r, "MQ-CERT-DATES", DOCTOR_CRITICAL, ev, "disable_client_cert_date_checks false",
		                  "%s admits client certificates that have expired or are not yet valid "
		                  "(mosquitto 2.1's disable_client_cert_date_checks): a device whose certificate "
		                  "was left to lapse instead of being revoked gets in again",
		                  name);
	} else {
		doctor_report_add(r, "MQ-CERT-DATES", DOCTOR_PASS, NULL, NULL,
		                  "%s checks the validity dates of client certificates", name);
	}

	/* Identity as username makes mosquitto skip the plugin's identity checks. */
	const doctor_setting_t *idset[2] = {&l->use_identity_as_username, &l->use_subject_as_username};
	const char *idkey[2] = {"use_identity_as_username", "use_subject_as_username"};
	bool any = false;
	for(int i = 0; i < 2; i++) {
		if(doctor_mosq_is_true(idset[i])) {
			any = true;
			doctor_mosq_ev(idset[i], idkey[i], ev, sizeof(ev));
			util_snprintf(fix, sizeof(fix), "%s false", idkey[i]);
			doctor_report_add(r, "MQ-IDENTITY-USERNAME", DOCTOR_CRITICAL, ev, fix,
			                  "%s has %s on: mosquitto then never asks the plugin who the client is, so "
			                  "its identity rules (client id binding, revocation, unknown devices) are "
			                  "skipped",
			                  name, idkey[i]);
		}
	}
	if(!any) {
		doctor_report_add(r, "MQ-IDENTITY-USERNAME", DOCTOR_PASS, NULL, NULL,
		                  "%s leaves identity checks to the plugin", name);
	}
}

/* What the broker-wide checks share: the configuration, its first file, and
 * the plantgate plugin line once found. */
typedef struct doctor_mosq_ctx {
	const doctor_mosq_t *m;
	const char *conf;
	const doctor_setting_t *ours;
} doctor_mosq_ctx_t;

/* MQ-TLS and the other per-listener checks. */
static void doctor_mosq_listeners_step(doctor_mosq_ctx_t *x, doctor_report_t *r)
{
	size_t n = 0;
	doctor_listener_t **ls = doctor_mosq_listeners(x->m, &n);
	for(size_t i = 0; i < n; i++) {
		doctor_mosq_check_listener(x->m, ls[i], r);
	}
	free(ls);
}

/* MQ-ANONYMOUS: anonymous clients, per listener or for the broker. */
static void doctor_mosq_anonymous(doctor_mosq_ctx_t *x, doctor_report_t *r)
{
	const doctor_mosq_t *m = x->m;
	char ev[1024];
	bool anon_found = false;
	if(doctor_mosq_is_true(&m->per_listener_settings)) {
		size_t n = 0;
		doctor_listener_t **ls = doctor_mosq_listeners(m, &n);
		for(size_t i = 0; i < n; i++) {
			if(doctor_mosq_is_true(&ls[i]->allow_anonymous)) {
				char name[512];
				anon_found = true;
				doctor_mosq_name(ls[i], name, sizeof(name));
				doctor_mosq_ev(&ls[i]->allow_anonymous, "allow_anonymous", ev, sizeof(ev));
				doctor_report_add(r, "MQ-ANONYMOUS", DOCTOR_CRITICAL, ev, "allow_anonymous false",
				                  "%s admits clients without any credentials", name);
			}
		}
		free(ls);
	} else if(doctor_mosq_is_true(&m->allow_anonymous)) {
		anon_found = true;
		doctor_mosq_ev(&m->allow_anonymous, "allow_anonymous", ev, sizeof(ev));
		doctor_report_add(r, "MQ-ANONYMOUS", DOCTOR_CRITICAL, ev, "allow_anonymous false",
		                  "the broker admits clients without any credentials");
	}
	if(!anon_found) {
		doctor_mosq_ev(&m->allow_anonymous, "allow_anonymous", ev, sizeof(ev));
		doctor_report_add(r, "MQ-ANONYMOUS", DOCTOR_PASS, ev, NULL, "anonymous clients are refused%s",
		                  m->allow_anonymous.value ? "" : " (mosquitto 2.0's default)");
	}
}

/* MQ-PER-LISTENER. */
static void doctor_mosq_per_listener(doctor_mosq_ctx_t *x, doctor_report_t *r)
{
	const doctor_mosq_t *m = x->m;
	char ev[1024];
	doctor_mosq_ev(&m->per_listener_settings, "per_listener_settings", ev, sizeof(ev));
	if(doctor_mosq_is_true(&m->per_listener_settings)) {
		doctor_report_add(r, "MQ-PER-LISTENER", DOCTOR_WARNING, ev, "per_listener_settings false",
		                  "per_listener_settings is true: a listener without its own plugin line is not "
		                  "guarded by plantgate, and the plugin's periodic tasks ($SYS counters, flood "
		                  "kicks) do not run");
	} else {
		doctor_report_add(r, "MQ-PER-LISTENER", DOCTOR_PASS, ev, NULL,
		                  "the plugin's settings apply to every listener");
	}
}

/* MQ-PLUGIN: the plantgate plugin is loaded, with a policy. */
static void doctor_mosq_plugin(doctor_mosq_ctx_t *x, doctor_report_t *r)
{
	const doctor_mosq_t *m = x->m;
	const char *conf = x->conf;
	char ev[1024];
	const doctor_setting_t *ours = NULL;
	for(size_t i = 0; i < m->nplugins; i++) {
		const char *base = strrchr(m->plugins[i].value, '/');
		base = base ? base + 1 : m->plugins[i].value;
		if(strncmp(base, "plantgate_auth", 14) == 0) {
			ours = &m->plugins[i];
		}
	}
	if(!ours) {
		util_snprintf(ev, sizeof(ev), "%s: no `plugin .../plantgate_auth.so` line%s", conf,
		              m->nplugins ? " (other plugins are loaded)" : "");
		doctor_report_add(r, "MQ-PLUGIN", DOCTOR_CRITICAL, ev,
		                  "plugin /usr/lib/plantgate/plantgate_auth.so + plugin_opt_policy /etc/plantgate/policy.conf",
		                  "the plantgate plugin is not loaded: no device identity check, no policy, no "
		                  "revocation, no audit trail");
	} else {
		doctor_mosq_ev(ours, "plugin", ev, sizeof(ev));
		doctor_report_add(r, "MQ-PLUGIN", DOCTOR_PASS, ev, NULL, "the plantgate plugin is loaded");
		if(!doctor_mosq_opt(m, "policy")) {
			doctor_report_add(r, "POL-LOAD", DOCTOR_CRITICAL, ev, "plugin_opt_policy /etc/plantgate/policy.conf",
			                  "the plugin has no plugin_opt_policy: it refuses to start, and so does the broker");
		}
	}
	x->ours = ours;
}

/* MQ-ISSUER-PIN. */
static void doctor_mosq_issuer_pin(doctor_mosq_ctx_t *x, doctor_report_t *r)
{
	const doctor_mosq_t *m = x->m;
	const doctor_setting_t *ours = x->ours;
	char ev[1024];
	const doctor_setting_t *pin = doctor_mosq_opt(m, "issuer_cafile");
	if(ours && pin) {
		doctor_mosq_ev(pin, "plugin_opt_issuer_cafile", ev, sizeof(ev));
		doctor_report_add(r, "MQ-ISSUER-PIN", DOCTOR_PASS, ev, NULL,
		                  "only certificates issued by the plant CA pass the plugin");
	} else if(ours) {
		doctor_report_add(r, "MQ-ISSUER-PIN", DOCTOR_INFO, NULL,
		                  "plugin_opt_issuer_cafile /etc/plantgate/pki/ca.crt",
		                  "the plugin accepts any certificate mosquitto's cafile trusts; pin the plant CA "
		                  "if cafile is a bundle");
	}
}

/* MQ-USER: the broker drops root. */
static void doctor_mosq_user(doctor_mosq_ctx_t *x, doctor_report_t *r)
{
	const doctor_mosq_t *m = x->m;
	char ev[1024];
	doctor_mosq_ev(&m->user, "user", ev, sizeof(ev));
	if(m->user.value && strcmp(m->user.value, "root") == 0) {
		doctor_report_add(r, "MQ-USER", DOCTOR_WARNING, ev, "user mosquitto (or remove the line)",
		                  "the broker keeps root privileges: a flaw in it or a plugin gives away the host");
	} else {
		doctor_report_add(r, "MQ-USER", DOCTOR_PASS, ev, NULL, "the broker drops root privileges (user %s)",
		                  m->user.value ? m->user.value : "mosquitto");
	}
}

/* REV-CONFIG: the plugin's revocation list or CRL, or only mosquitto's. */
static void doctor_mosq_revocation(doctor_mosq_ctx_t *x, doctor_report_t *r)
{
	const doctor_mosq_t *m = x->m;
	const doctor_setting_t *ours = x->ours;
	const char *conf = x->conf;
	char ev[1024];
	const doctor_setting_t *rev = doctor_mosq_opt(m, "revocation_file");
	const doctor_setting_t *crl = doctor_mosq_opt(m, "crlfile");
	const doctor_setting_t *mcrl = NULL;
	for(size_t i = 0; i < m->nlisteners && !mcrl; i++) {
		mcrl = m->listeners[i].crlfile.value ? &m->listeners[i].crlfile : NULL;
	}
	if(!mcrl && m->deflt.crlfile.value) {
		mcrl = &m->deflt.crlfile;
	}
	if(ours && (rev || crl)) {
		doctor_mosq_ev(rev ? rev : crl, rev ? "plugin_opt_revocation_file" : "plugin_opt_crlfile", ev, sizeof(ev));
		doctor_report_add(r, "REV-CONFIG", DOCTOR_PASS, ev, NULL,
		                  "revocation is configured: a reload cuts a revoked device off at once");
	} else if(mcrl) {
		doctor_mosq_ev(mcrl, "crlfile", ev, sizeof(ev));
		doctor_report_add(r, "REV-CONFIG", DOCTOR_INFO, ev,
		                  "plugin_opt_revocation_file /etc/plantgate/pki/revoked.txt",
		                  "only mosquitto's crlfile is set: a revoked device that is connected stays "
		                  "connected; the plugin's revocation list disconnects it on reload");
	} else {
		util_snprintf(ev, sizeof(ev), "%s: no plugin_opt_revocation_file, plugin_opt_crlfile or crlfile", conf);
		doctor_report_add(r, "REV-CONFIG", DOCTOR_WARNING, ev,
		                  "plugin_opt_revocation_file /etc/plantgate/pki/revoked.txt and plugin_opt_crlfile "
		                  "/etc/plantgate/pki/crl.pem",
		                  "no revocation is configured: a stolen device's certificate keeps working until "
		                  "it expires");
	}
}

/* MQ-PERSIST: what a broker crash keeps.  mosquitto saves its state (the
 * persistent sessions, the bridge's among them, and what is queued for
 * them) every autosave_interval seconds, default 1800, and at a clean
 * shutdown; a crash loses everything since the last save, the bridge's
 * subscriptions included until they were saved once. */
#define DOCTOR_MOSQ_AUTOSAVE_MAX 60
static void doctor_mosq_persist(doctor_mosq_ctx_t *x, doctor_report_t *r)
{
	const doctor_mosq_t *m = x->m;
	char ev[1024];
	const char *fix = "persistence true + autosave_interval 10";
	if(!doctor_mosq_is_true(&m->persistence)) {
		doctor_mosq_ev(&m->persistence, "persistence", ev, sizeof(ev));
		doctor_report_add(r, "MQ-PERSIST", DOCTOR_WARNING, ev, fix,
		                  "persistence is off: a broker restart or crash loses every persistent "
		                  "session, the bridge's included, and every message queued for it; "
		                  "devices that publish before the bridge has subscribed again lose "
		                  "their messages");
		return;
	}
	int64_t iv = 1800;
	if(m->autosave_interval.value &&
	   util_parse_i64(m->autosave_interval.value, 0, INT64_MAX, &iv) != 0) {
		iv = 1800; /* mosquitto refuses the file then; MQ-CONFIG-level trouble */
	}
	doctor_mosq_ev(m->autosave_interval.value ? &m->autosave_interval : &m->persistence,
	               m->autosave_interval.value ? "autosave_interval" : "persistence", ev, sizeof(ev));
	if(doctor_mosq_is_true(&m->autosave_on_changes)) {
		doctor_report_add(r, "MQ-PERSIST", DOCTOR_WARNING, ev,
		                  "autosave_on_changes false + autosave_interval 10",
		                  "autosave_on_changes true: the broker saves after every %lld changes, so "
		                  "how much a crash loses depends on the traffic, and a quiet broker may "
		                  "not save the bridge's session for a long time",
		                  (long long)iv);
	} else if(iv == 0 || iv > DOCTOR_MOSQ_AUTOSAVE_MAX) {
		char when[64];
		util_snprintf(when, sizeof(when), iv ? "every %lld s" : "only at a clean shutdown",
		              (long long)iv);
		doctor_report_add(r, "MQ-PERSIST", DOCTOR_WARNING, ev, fix,
		                  "the broker saves its state %s%s: a crash (kill -9, power loss) loses "
		                  "every message accepted since the last save, and the bridge's session "
		                  "if it was not saved yet",
		                  when, m->autosave_interval.value ? "" : " (mosquitto's default)");
	} else {
		doctor_report_add(r, "MQ-PERSIST", DOCTOR_PASS, ev, NULL,
		                  "the broker saves its state every %lld s: a crash loses at most what it "
		                  "accepted in the last %lld s; the bridge's session survives",
		                  (long long)iv, (long long)iv);
	}
}

/* The broker-wide checks, in the order they run (and report). */
static void (*const doctor_mosq_steps[])(doctor_mosq_ctx_t *, doctor_report_t *) = {
    doctor_mosq_listeners_step, doctor_mosq_anonymous, doctor_mosq_per_listener, doctor_mosq_plugin,
    doctor_mosq_issuer_pin,     doctor_mosq_user,      doctor_mosq_revocation,
    doctor_mosq_persist,
};

void doctor_mosq_check(const doctor_mosq_t *m, doctor_report_t *r)
{
	doctor_mosq_ctx_t x = {m, m->nfiles ? m->files[0] : "mosquitto.conf", NULL};
	for(size_t i = 0; i < sizeof(doctor_mosq_steps) / sizeof(doctor_mosq_steps[0]); i++) {
		doctor_mosq_steps[i](&x, r);
	}
}

void doctor_mosq_check_files(const doctor_mosq_t *m, doctor_report_t *r)
{
	char ev[1024];
	for(size_t i = 0; i < m->nplugins; i++) {
		const char *p = m->plugins[i].value;
		const char *base = strrchr(p, '/');
		base = base ? base + 1 : p;
		if(strncmp(base, "plantgate_auth", 14) != 0) {
			continue;
		}
		if(access(p, R_OK) != 0) {
			doctor_mosq_ev(&m->plugins[i], "plugin", ev, sizeof(ev));
			doctor_report_add(r, "MQ-PLUGIN", DOCTOR_CRITICAL, ev,
			                  "install plantgate (make install) or fix the path of the plugin line",
			                  "the plugin file %s does not exist or cannot be read: the broker will not start",
			                  p);
		}
	}
}
