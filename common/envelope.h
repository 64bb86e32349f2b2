/*
 * envelope.h — the integrity envelope (version 1): what plantgate-bridge signs
 * for every message it forwards, and what plantgate-verify (or any consumer,
 * in any language) checks.  docs/integrity.md is the specification; this is
 * its one implementation, shared by the bridge and the verifier.
 *
 * Signed bytes ("PGENV1" then nine length-prefixed fields, see
 * envelope_signed_bytes), the signature (Ed25519, or ECDSA P-256 with
 * SHA-256, by the bridge's own key), how it travels (MQTT 5 user properties,
 * or a JSON wrapper payload for MQTT 3.1.1 clouds) and the capture lines of
 * plantgate-verify are all encoded and parsed here.
 *
 * Pure: no network, no clock, no files — time and key material are passed in.
 * OpenSSL does the hashing and the signatures.
 */
#ifndef PG_ENVELOPE_H
#define PG_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_VERSION 1
#define ENVELOPE_MAGIC "PGENV1"
#define ENVELOPE_MAGIC_LEN 6
#define ENVELOPE_KID_LEN 16        /* hex characters */
#define ENVELOPE_SIG_MAX 80        /* Ed25519: 64 bytes; ECDSA P-256 (DER): at most 72 */
#define ENVELOPE_SIG_B64_MAX 112   /* base64 of ENVELOPE_SIG_MAX, with NUL */
#define ENVELOPE_FIELD_MAX 65535   /* longest site, device or topic, in bytes */
#define ENVELOPE_NPROPS 9          /* user properties of the MQTT 5 form */

enum envelope_alg { ENVELOPE_ALG_ED25519 = 1, ENVELOPE_ALG_ECDSA_P256 = 2 };

/* Result codes, append-only. */
typedef enum envelope_rc {
	ENVELOPE_OK = 0,
	ENVELOPE_UNSIGNED,      /* the message carries no envelope at all */
	ENVELOPE_MALFORMED,     /* an envelope, but a field is missing, repeated or invalid */
	ENVELOPE_BAD_SIGNATURE, /* the signature does not match the message as received */
	ENVELOPE_UNKNOWN_KEY,   /* signed by a key id that is not in the key set */
	ENVELOPE_ERR_KEY,       /* a key that cannot be used (type, format) */
	ENVELOPE_ERR_NOMEM,
	ENVELOPE_ERR_CRYPTO, /* OpenSSL failed unexpectedly */
} envelope_rc_t;

const char *envelope_strerror(envelope_rc_t rc);

/* One envelope.  For envelope_sign the caller sets site, device, topic, seq,
 * rx_ms and ts_ms (strings borrowed, must outlive the call and any use of
 * the result); envelope_sign fills version, kid and the signature.  The
 * envelope_from_* parsers make every string (and the JSON wrapper's payload)
 * owned by the envelope: release with envelope_clear. */
typedef struct envelope {
	int64_t version;
	const char *site;   /* the plant, as configured on the bridge (site_id) */
	const char *device; /* verified sender (plantgate-device from the plant); "" = none */
	const char *topic;  /* the original plant topic */
	int64_t seq;        /* the bridge's queue sequence id, >= 1 */
	int64_t rx_ms;      /* when the bridge received it from the plant (ms since epoch) */
	int64_t ts_ms;      /* when the bridge signed and sent it (ms since epoch) */
	char kid[ENVELOPE_KID_LEN + 1];
	unsigned char sig[ENVELOPE_SIG_MAX];
	size_t sig_len;
	const unsigned char *payload; /* JSON wrapper only: the original payload */
	size_t payload_len;
	char *owned_; /* private: storage of parsed strings and payload */
} envelope_t;

/* Free what a parser allocated and zero *e.  NULL and zeroed are fine. */
void envelope_clear(envelope_t *e);

/* --- keys ---------------------------------------------------------------- */

typedef struct envelope_key envelope_key_t;

/* Load one key from PEM text: a private key (PKCS#8 or traditional) when
 * `private_key`, else the first public key (SubjectPublicKeyInfo).  Only
 * Ed25519 and ECDSA P-256 are accepted.  The caller frees *out with
 * envelope_key_free.  err says what is wrong. */
envelope_rc_t envelope_key_from_pem(const char *pem, size_t len, bool private_key,
                                    envelope_key_t **out, char *err, size_t errlen);
void envelope_key_free(envelope_key_t *k);
/* The key id: the first 16 hex characters of SHA-256 over the DER
 * SubjectPublicKeyInfo of the (public) key.  Borrowed from k. */
const char *envelope_key_kid(const envelope_key_t *k);
int envelope_key_alg(const envelope_key_t *k);
const char *envelope_alg_name(int alg); /* "ed25519", "ecdsa-p256" */

/* A set of public keys, for verifying across key rotations. */
typedef struct envelope_keyset {
	envelope_key_t **keys; /* owned */
	size_t n;
} envelope_keyset_t;

/* Add every public key found in the PEM text (one or more PUBLIC KEY
 * blocks); *added gets how many.  A text without any is an error.  A key
 * whose id is already in the set is skipped. */
envelope_rc_t envelope_keyset_add_pem(envelope_keyset_t *ks, const char *pem, size_t len,
                                      size_t *added, char *err, size_t errlen);
/* Take ownership of k (freed at once if its id is already in the set). */
envelope_rc_t envelope_keyset_add(envelope_keyset_t *ks, envelope_key_t *k);
const envelope_key_t *envelope_keyset_find(const envelope_keyset_t *ks, const char *kid);
void envelope_keyset_free(envelope_keyset_t *ks);

/* --- signing and verifying ---------------------------------------------- */

/* The exact bytes that are signed, for the message with cloud topic
 * `cloud_topic` and payload[0..len):
 *
 *   "PGENV1"  then, each as a 4-byte big-endian length and the bytes:
 *   site, device, plant topic, cloud topic, SHA-256(payload) (32 bytes),
 *   seq (8 bytes BE), rx_ms (8 bytes BE), ts_ms (8 bytes BE), kid (16 ASCII)
 *
 * *out is allocated (caller frees). */
envelope_rc_t envelope_signed_bytes(const envelope_t *e, const char *cloud_topic,
                                    const void *payload, size_t len, unsigned char **out,
                                    size_t *outlen);

/* Sign: sets e->version, e->kid (from k, which must hold a private key) and
 * e->sig.  Ed25519 is deterministic; ECDSA is not. */
envelope_rc_t envelope_sign(envelope_t *e, const envelope_key_t *k, const char *cloud_topic,
                            const void *payload, size_t len);

/* Verify e for the message as received (its cloud topic and payload):
 * ENVELOPE_OK, ENVELOPE_UNKNOWN_KEY or ENVELOPE_BAD_SIGNATURE. */
envelope_rc_t envelope_verify(const envelope_t *e, const envelope_keyset_t *ks,
                              const char *cloud_topic, const void *payload, size_t len);

/* --- MQTT 5 user properties ---------------------------------------------- */

typedef struct envelope_prop {
	const char *name;
	const char *value;
} envelope_prop_t;

/* The user properties of e, in this order: plantgate-v, -site, -device,
 * -topic, -seq, -rx, -ts, -kid, -sig.  Names are static, values borrow e's
 * strings or live in *out. */
typedef struct envelope_props {
	envelope_prop_t p[ENVELOPE_NPROPS];
	char num[4][24];
	char sig[ENVELOPE_SIG_B64_MAX];
} envelope_props_t;

void envelope_to_props(const envelope_t *e, envelope_props_t *out);

/* Read an envelope from the n user properties of a received message (in
 * order, repeats allowed as MQTT allows them; other properties ignored).
 * ENVELOPE_UNSIGNED when neither plantgate-sig nor plantgate-v is present;
 * ENVELOPE_MALFORMED (with why) when a field is missing, repeated or not
 * valid.  On success e owns copies of everything. */
envelope_rc_t envelope_from_props(envelope_t *e, const envelope_prop_t *props, size_t n,
                                  char *why, size_t whylen);

/* --- JSON wrapper (MQTT 3.1.1) ------------------------------------------- */

/* The most bytes envelope_to_json can write for a message with these
 * strings and a payload of payload_len bytes: exact for the strings and the
 * payload, the widest values for the numbers, the key id and the signature.
 * The bridge checks it against the cloud's payload limit before queueing. */
size_t envelope_json_max_len(const char *site, const char *device, const char *topic,
                             size_t payload_len);

/* The wrapper payload: {"v":1,"site":..,"device":..,"topic":..,"seq":..,
 * "rx":..,"ts":..,"kid":..,"payload_b64":..,"sig":..} in this order, no
 * white space.  *out (caller frees) is NUL-terminated. */
envelope_rc_t envelope_to_json(const envelope_t *e, const void *payload, size_t len, char **out,
                               size_t *outlen);

/* Parse a received payload.  ENVELOPE_UNSIGNED when it is not a JSON object
 * holding both "payload_b64" and "sig" (an ordinary payload); MALFORMED when
 * it is a wrapper with a bad field.  On success e->payload is the original
 * payload (owned by e). */
envelope_rc_t envelope_from_json(envelope_t *e, const void *buf, size_t len, char *why,
                                 size_t whylen);

/* --- capture lines (plantgate-verify --record / --file) ------------------ */

/* One received message:
 *   {"topic":"..","payload_b64":"..","props":[["name","value"],...]}
 * Properties are a list of pairs, not an object, because MQTT allows a name
 * twice and a verifier must see every copy. */
typedef struct envelope_capture {
	char *topic;
	unsigned char *payload;
	size_t len;
	envelope_prop_t *props; /* names and values owned */
	size_t nprops;
} envelope_capture_t;

/* Format one capture line (no trailing newline); *out is allocated. */
envelope_rc_t envelope_capture_format(const char *topic, const void *payload, size_t len,
                                      const envelope_prop_t *props, size_t nprops, char **out,
                                      size_t *outlen);
/* Parse one line into *c (owned; release with envelope_capture_clear).
 * Unknown members are ignored.  ENVELOPE_MALFORMED with why on bad input. */
envelope_rc_t envelope_capture_parse(envelope_capture_t *c, const char *line, size_t len,
                                     char *why, size_t whylen);
void envelope_capture_clear(envelope_capture_t *c);

/* --- helpers ------------------------------------------------------------- */

/* Standard base64 with padding.  encode: out needs 4*((len+2)/3)+1 bytes;
 * returns the length written.  decode: strict (no white space, canonical
 * padding); returns the length, or -1; out needs 3*(n/4) bytes. */
size_t envelope_b64_encode(const unsigned char *in, size_t len, char *out);
long envelope_b64_decode(const char *in, size_t n, unsigned char *out, size_t outlen);

/* SHA-256 of buf[0..len) (32 bytes).  0 on success. */
int envelope_sha256(const void *buf, size_t len, unsigned char out[32]);

#endif
