/*
 * deadletter.h — `plantgate-bridge deadletter list|show|replay|purge`: the
 * operator's commands for the dead-letter table of the queue (deadletter.c).
 */
#ifndef PG_DEADLETTER_H
#define PG_DEADLETTER_H

/* Run the command; argv[0] is "deadletter".  Returns the exit status: 0 done,
 * 1 failed (said on stderr), 2 bad usage. */
int deadletter_main(int argc, char **argv);

#endif
