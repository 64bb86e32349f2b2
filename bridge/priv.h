/*
 * priv.h — least privilege for plantgate-bridge.  Started as root, the bridge
 * reads its configuration and every secret (secrets.c) and binds its HTTP
 * port, then becomes the configured unprivileged user for good: supplementary
 * groups set to the user's group only, setresgid, setresuid, and
 * PR_SET_NO_NEW_PRIVS, after which it checks that root cannot be regained.
 * Started as any other user, it runs as that user.  The privileged phase never
 * reads network input: the links and the HTTP thread start after the drop.
 */
#ifndef PG_PRIV_H
#define PG_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "bconf.h"

typedef struct priv {
	bool drop;      /* running as root and the target is another user */
	bool stay_root; /* running as root, `user root` + `allow_root yes` */
	uid_t uid;
	gid_t gid;
	char user[64];
} priv_t;

/* Decide what to do, from the effective uid and cfg->user: look the user up
 * when running as root.  Returns 0, or -1 with the reason in err. */
int priv_prepare(const bconf_t *cfg, priv_t *p, char *err, size_t errlen);

/* Drop to p->uid/p->gid (when p->drop), set no-new-privileges, and verify:
 * all real/effective/saved ids are the user's, setuid(0) fails, no
 * capabilities are left.  Returns 0, or -1 with the reason in err (the
 * caller must then exit: the process may be half-dropped). */
int priv_drop(const priv_t *p, char *err, size_t errlen);

#endif
