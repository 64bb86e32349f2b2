/*
 * doctor_audit.c — plantgate-doctor's look at the audit trail: is it
 * configured, can the broker's user write it, and is its hash chain intact
 * (checked with audit_verify_file(), the verifier plantgate-audit uses).
 *
 * "Can the broker write it" is decided from the file's (or, when it does not
 * exist yet, its directory's) owner, group and mode against the user the
 * broker runs as (mosquitto.conf `user`, default `mosquitto`) and that user's
 * groups; when that user does not exist on this host, access(2) answers for
 * the user running the doctor, and the finding says so.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "doctor.h"
#include "util.h"

#define DOCTOR_AUDIT_MAX_GROUPS 256

/* May user pw write a file with these owner/mode bits? */
static bool doctor_audit_user_can_write(const struct stat *sb, const struct passwd *pw)
{
	gid_t groups[DOCTOR_AUDIT_MAX_GROUPS];
	int ng = DOCTOR_AUDIT_MAX_GROUPS;
	if(pw->pw_uid == 0) {
		return true;
	}
	if(sb->st_uid == pw->pw_uid) {
		return (sb->st_mode & S_IWUSR) != 0;
	}
	if(getgrouplist(pw->pw_name, pw->pw_gid, groups, &ng) < 0) {
		ng = 1;
		groups[0] = pw->pw_gid;
	}
	for(int i = 0; i < ng; i++) {
		if(groups[i] == sb->st_gid) {
			return (sb->st_mode & S_IWGRP) != 0;
		}
	}
	return (sb->st_mode & S_IWOTH) != 0;
}

static void doctor_audit_dirname(const char *path, char *out, size_t len)
{
	util_strlcpy(out, path, len);
	char *slash = strrchr(out, '/');
	if(!slash) {
		util_strlcpy(out, ".", len);
	} else if(slash == out) {
		out[1] = '\0';
	} else {
		*slash = '\0';
	}
}

void doctor_audit_check(const char *path, const char *from, const char *run_user, doctor_report_t *r)
{
	char ev[2048], fix[1024], dir[4096];
	struct stat sb;
	const char *user = run_user ? run_user : "mosquitto";
	struct passwd *pw = getpwnam(user);
	bool exists;
	bool writable;
	const char *target;

	if(!path) {
		util_snprintf(ev, sizeof(ev), "%s", from ? from : "no plugin_opt_audit_log");
		doctor_report_add(r, "AUDIT-LOG", DOCTOR_WARNING, ev, "plugin_opt_audit_log /var/log/plantgate/audit.jsonl",
		                  "no audit trail: who connected, what was refused and what changed is kept only "
		                  "in the broker's log, where it can be altered unnoticed");
		return;
	}
	exists = stat(path, &sb) == 0;
	doctor_audit_dirname(path, dir, sizeof(dir));
	target = exists ? path : dir;
	if(!exists && stat(dir, &sb) != 0) {
		util_snprintf(ev, sizeof(ev), "%s%s%s: directory %s does not exist", from ? from : "", from ? ": " : "",
		              path, dir);
		util_snprintf(fix, sizeof(fix), "install -d -o %s -g %s -m 0750 %s", user, user, dir);
		doctor_report_add(r, "AUDIT-LOG", DOCTOR_WARNING, ev, fix,
		                  "the audit trail cannot be created: the plugin runs without one");
		return;
	}
	if(exists && !S_ISREG(sb.st_mode) && !S_ISCHR(sb.st_mode)) {
		util_snprintf(ev, sizeof(ev), "%s: not a regular file", path);
		doctor_report_add(r, "AUDIT-LOG", DOCTOR_WARNING, ev, "plugin_opt_audit_log /var/log/plantgate/audit.jsonl",
		                  "the audit trail is not a regular file");
		return;
	}
	if(pw) {
		writable = doctor_audit_user_can_write(&sb, pw);
	} else {
		writable = access(target, W_OK) == 0;
	}
	util_snprintf(ev, sizeof(ev), "%s%s%s: owner uid %u gid %u mode %04o; checked for user %s%s", from ? from : "",
	              from ? ": " : "", target, (unsigned)sb.st_uid, (unsigned)sb.st_gid,
	              (unsigned)(sb.st_mode & 07777), pw ? user : "running the doctor",
	              pw ? "" : " (the broker's user does not exist here)");
	if(!writable) {
		if(exists) {
			util_snprintf(fix, sizeof(fix), "chown %s %s && chmod 0640 %s", user, path, path);
		} else {
			util_snprintf(fix, sizeof(fix), "chown %s %s && chmod 0750 %s", user, dir, dir);
		}
		doctor_report_add(r, "AUDIT-LOG", DOCTOR_WARNING, ev, fix,
		                  "the broker's user (%s) cannot write the audit trail%s: events are lost (counted "
		                  "in $SYS/plantgate/audit/errors)",
		                  user, exists ? "" : " (cannot create it)");
	} else {
		doctor_report_add(r, "AUDIT-LOG", DOCTOR_PASS, ev, NULL, "the audit trail is enabled and writable by %s",
		                  pw ? user : "this user");
	}

	if(!exists) {
		return;
	}
	audit_verify_result_t vr;
	memset(&vr, 0, sizeof(vr));
	int rc = audit_verify_file(path, &vr);
	util_snprintf(fix, sizeof(fix), "plantgate-audit verify %s; keep a copy of the file and find out who changed it",
	              path);
	if(rc == 0) {
		util_snprintf(ev, sizeof(ev), "%s: %llu lines, %llu chain restarts, head %.16s...", path,
		              (unsigned long long)vr.lines, (unsigned long long)vr.restarts, vr.head);
		doctor_report_add(r, "AUDIT-CHAIN", DOCTOR_PASS, ev, NULL, "the audit trail's hash chain is intact");
	} else if(rc == 1) {
		util_snprintf(ev, sizeof(ev), "%s:%llu: %s", path, (unsigned long long)vr.bad_line, vr.why);
		doctor_report_add(r, "AUDIT-CHAIN", DOCTOR_CRITICAL, ev, fix,
		                  "the audit trail's hash chain is broken at line %llu: a record was altered, "
		                  "inserted or deleted",
		                  (unsigned long long)vr.bad_line);
	} else {
		util_snprintf(ev, sizeof(ev), "%s: %s", path, vr.why);
		doctor_report_add(r, "AUDIT-CHAIN", DOCTOR_WARNING, ev, "run the doctor as a user that can read the audit trail",
		                  "the audit trail could not be read to verify it");
	}
}
