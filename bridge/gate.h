/*
 * gate.h — the write buffer below the plant link's TLS, which can hold bytes
 * back: the PUBACKs of a batch are encrypted and buffered when its commit
 * starts, and leave only once the commit has returned (gate_release).
 * Meanwhile the plant thread reads the next batch, whose PUBACKs stay in
 * the link's send buffer (link.h, raw mode) until that batch's commit
 * starts.  That is what lets
 * reading go on during the fsync without letting any acknowledgement out
 * ahead of its commit (docs/bridge.md, "Nothing acknowledged is lost").
 *
 * An OpenSSL filter BIO, pushed on top of the socket BIO once the handshake
 * is done.  Written bytes are always taken (up to max_bytes buffered; past
 * that a write asks to be retried, as a full socket would); BIO_flush() and
 * writes past flush_at send what is not held.  BIO_CTRL_WPENDING counts only
 * bytes that may leave, so poll() is not asked for POLLOUT on held bytes.
 * Freeing the BIO drops what it still holds: on a lost connection the
 * PUBACKs of an uncommitted batch never leave.
 */
#ifndef PG_GATE_H
#define PG_GATE_H

#include <openssl/bio.h>
#include <stdbool.h>
#include <stddef.h>

/* A new gate (nothing held), or NULL when out of memory. */
BIO *gate_new(size_t flush_at, size_t max_bytes);

/* Is b a gate made by gate_new? */
bool gate_is(BIO *b);

/* Hold everything written from now on, until gate_release. */
void gate_hold(BIO *g);

/* Let everything buffered leave (at the next flush), and stop holding. */
void gate_release(BIO *g);

/* Bytes held back now. */
size_t gate_held(BIO *g);

#endif
