/*
 * priv.c — the privilege drop of plantgate-bridge (see priv.h).  The order is
 * the one that cannot be undone halfway: groups first (only root may change
 * them), then the group ids, then the user ids, then no-new-privileges; the
 * checks afterwards make a silent failure impossible.
 */
#define _GNU_SOURCE /* setresuid, getresuid, setgroups */
#include "priv.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "util.h"

int priv_prepare(const bconf_t *cfg, priv_t *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->uid = geteuid();
	p->gid = getegid();
	if(p->uid != 0) {
		return 0; /* not root: run as is */
	}
	const char *name = cfg->user ? cfg->user : "plantgate";
	util_strlcpy(p->user, name, sizeof(p->user));
	errno = 0;
	struct passwd *pw = getpwnam(name);
	if(!pw) {
		util_snprintf(err, errlen,
		              "started as root, and the user '%s' to run as does not exist%s%s: create it "
		              "(useradd --system --home-dir /var/lib/plantgate --shell /usr/sbin/nologin "
		              "%s) or set `user` in the configuration to an unprivileged user who can "
		              "write the queue directory",
		              name, errno ? ": " : "", errno ? strerror(errno) : "", name);
		return -1;
	}
	if(pw->pw_uid == 0) {
		if(!cfg->allow_root) {
			util_snprintf(err, errlen,
			              "user '%s' is root: refusing to run with root's privileges; name an "
			              "unprivileged user, or set `allow_root yes` if you really must",
			              name);
			return -1;
		}
		p->stay_root = true;
		return 0;
	}
	p->drop = true;
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	return 0;
}

/* Effective and permitted capabilities from /proc/self/status: 0 if none. */
static int priv_caps_left(unsigned long long *eff, unsigned long long *prm)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int found = 0;
	*eff = *prm = ~0ULL;
	if(!f) {
		return -1;
	}
	while(fgets(line, sizeof(line), f)) {
		if(sscanf(line, "CapEff: %llx", eff) == 1 || sscanf(line, "CapPrm: %llx", prm) == 1) {
			found++;
		}
	}
	fclose(f);
	return found == 2 ? 0 : -1;
}

int priv_drop(const priv_t *p, char *err, size_t errlen)
{
	if(p->drop) {
		if(setgroups(1, &p->gid) != 0) {
			util_snprintf(err, errlen, "setgroups(%u): %s", (unsigned)p->gid, strerror(errno));
			return -1;
		}
		if(setresgid(p->gid, p->gid, p->gid) != 0) {
			util_snprintf(err, errlen, "setresgid(%u): %s", (unsigned)p->gid, strerror(errno));
			return -1;
		}
		if(setresuid(p->uid, p->uid, p->uid) != 0) {
			util_snprintf(err, errlen, "setresuid(%u): %s", (unsigned)p->uid, strerror(errno));
			return -1;
		}
	}
	/* No setuid binary or file capability can raise us again; also without
	 * a drop (not root, or allow_root), it costs nothing. */
	if(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		util_snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		return -1;
	}
	if(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		util_snprintf(err, errlen, "no-new-privileges is not in effect");
		return -1;
	}
	if(!p->drop) {
		return 0;
	}
	uid_t r, e, s;
	gid_t rg, eg, sg;
	if(getresuid(&r, &e, &s) != 0 || r != p->uid || e != p->uid || s != p->uid ||
	   getresgid(&rg, &eg, &sg) != 0 || rg != p->gid || eg != p->gid || sg != p->gid) {
		util_snprintf(err, errlen, "after the drop the user or group ids are not all %u/%u",
		              (unsigned)p->uid, (unsigned)p->gid);
		return -1;
	}
	gid_t groups[2];
	int ng = getgroups(2, groups);
	if(ng < 0 || ng > 1 || (ng == 1 && groups[0] != p->gid)) {
		util_snprintf(err, errlen, "after the drop supplementary groups are left");
		return -1;
	}
	if(setuid(0) == 0 || seteuid(0) == 0) {
		util_snprintf(err, errlen, "root could be regained after the drop");
		return -1;
	}
	unsigned long long eff, prm;
	if(priv_caps_left(&eff, &prm) != 0 || eff != 0 || prm != 0) {
		util_snprintf(err, errlen, "capabilities are left after the drop (CapEff %llx, CapPrm %llx)",
		              eff, prm);
		return -1;
	}
	return 0;
}
