/*
 * policy_memo.c — the table behind a per-client memo of topic decisions (see
 * policy.h for what a memo promises, policy.c for how a decision uses it).
 *
 * An open-addressing table of fixed-size entries, each holding the topic's
 * bytes (at most POLICY_MEMO_TOPIC), its access and what the tries' walks
 * found.  A topic sits in one of the POLICY_MEMO_PROBES slots from its
 * hash's slot on, so a lookup compares at most that many entries, and stops
 * at the first empty one (entries are only ever replaced, never removed one
 * by one, so no hole can hide a topic further on).  The table starts empty
 * and unallocated (one entry is made for the first topic) and doubles when
 * it would be more than half full (full, up to 4 entries), up to
 * POLICY_MEMO_MAX entries (POLICY_MEMO_PUB_MAX when a publish asks for the
 * room: a client can publish to any number of topic names, and must not grow
 * its memo that way).  Beyond that, a new topic with no free slot in its
 * window replaces the one in its hash's slot.
 *
 * The hash needs no seed: a lookup always compares the whole topic, and a
 * client colliding its own topics only costs itself a few walks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

typedef struct policy_memo_entry {
	uint64_t hash;
	policy_memo_hit_t hit;
	uint8_t access; /* 0: empty */
	uint8_t len;
	char topic[POLICY_MEMO_TOPIC]; /* not NUL-terminated */
} policy_memo_entry_t;
/* Two cache lines: POLICY_MEMO_TOPIC is what is left of them. */
_Static_assert(sizeof(policy_memo_entry_t) == 128, "memo entry size");

struct policy_memo {
	/* The policy the entries were found in, by its serial: unique per load
	 * (0: none), where its address may be a freed policy's. */
	uint64_t serial;
	const policy_binding_t *binding; /* within that policy */
	policy_memo_entry_t *e;
	size_t size; /* entries in e: 0 or a power of two */
	size_t used;
};

policy_memo_t *policy_memo_new(void)
{
	return calloc(1, sizeof(policy_memo_t));
}

void policy_memo_free(policy_memo_t *m)
{
	if(m) {
		free(m->e);
		free(m);
	}
}

void policy_memo_clear(policy_memo_t *m)
{
	if(m) {
		if(m->e) {
			memset(m->e, 0, m->size * sizeof(*m->e));
		}
		m->used = 0;
		m->serial = 0;
		m->binding = NULL;
	}
}

size_t policy_memo_count(const policy_memo_t *m)
{
	return m ? m->used : 0;
}

void policy_memo_bind(policy_memo_t *m, const policy_t *p, const policy_binding_t *b)
{
	if(m->serial != p->serial || m->binding != b) {
		policy_memo_clear(m);
		m->serial = p->serial;
		m->binding = b;
	}
}

uint64_t policy_memo_hash(const char *topic, size_t *len)
{
	*len = strlen(topic);
	return ptrie_hash(0, topic, *len);
}

static bool policy_memo_is(const policy_memo_entry_t *e, policy_access_t a, const char *topic, size_t len,
                           uint64_t hash)
{
	return e->access == (uint8_t)a && e->hash == hash && e->len == len && memcmp(e->topic, topic, len) == 0;
}

/* Slots looked at for one topic. */
#define POLICY_MEMO_PROBES 8

const policy_memo_hit_t *policy_memo_find(const policy_memo_t *m, policy_access_t a, const char *topic,
                                          size_t len, uint64_t hash)
{
	if(!m->size || len > POLICY_MEMO_TOPIC) {
		return NULL;
	}
	size_t mask = m->size - 1;
	for(size_t k = 0, i = (size_t)hash & mask; k < POLICY_MEMO_PROBES && k < m->size; k++, i = (i + 1) & mask) {
		const policy_memo_entry_t *e = &m->e[i];
		if(!e->access) {
			return NULL;
		}
		if(policy_memo_is(e, a, topic, len, hash)) {
			return &e->hit;
		}
	}
	return NULL;
}

/* The first free slot in the window of `hash`, or NULL. */
static policy_memo_entry_t *policy_memo_slot(policy_memo_t *m, uint64_t hash)
{
	size_t mask = m->size - 1;
	for(size_t k = 0, i = (size_t)hash & mask; k < POLICY_MEMO_PROBES && k < m->size; k++, i = (i + 1) & mask) {
		if(!m->e[i].access) {
			return &m->e[i];
		}
	}
	return NULL;
}

/* Double the table (or make the first one); entries that find no free slot
 * in the new table are forgotten.  -1 on ENOMEM (m unchanged). */
static int policy_memo_grow(policy_memo_t *m)
{
	size_t nsize = m->size ? m->size * 2 : 1;
	policy_memo_entry_t *ne = calloc(nsize, sizeof(*ne));
	if(!ne) {
		return -1;
	}
	policy_memo_t old = *m;
	m->e = ne;
	m->size = nsize;
	m->used = 0;
	for(size_t k = 0; k < old.size; k++) {
		if(old.e[k].access) {
			policy_memo_entry_t *to = policy_memo_slot(m, old.e[k].hash);
			if(to) {
				*to = old.e[k];
				m->used++;
			}
		}
	}
	free(old.e);
	return 0;
}

void policy_memo_store(policy_memo_t *m, policy_access_t a, const char *topic, size_t len, uint64_t hash,
                       const policy_memo_hit_t *h)
{
	if(len == 0 || len > POLICY_MEMO_TOPIC) {
		return;
	}
	size_t max = a == POLICY_READ ? POLICY_MEMO_MAX : POLICY_MEMO_PUB_MAX;
	/* Small tables (a device's few topics) may fill up; larger ones stay at
	 * most half full, so that windows rarely overflow. */
	size_t room = m->size <= 4 ? m->size : m->size / 2;
	if(m->size < max && m->used + 1 > room && policy_memo_grow(m)) {
		return;
	}
	policy_memo_entry_t *e = policy_memo_slot(m, hash);
	if(!e) {
		/* No room in its window: replace the entry in its hash's slot. */
		e = &m->e[(size_t)hash & (m->size - 1)];
		m->used--;
	}
	e->hash = hash;
	e->hit = *h;
	e->access = (uint8_t)a;
	e->len = (uint8_t)len;
	memcpy(e->topic, topic, len);
	m->used++;
}
