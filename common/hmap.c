/*
 * hmap.c — string-keyed open-addressing hash map (see hmap.h).  Deletion uses
 * backward-shift so no tombstones accumulate.
 */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>

struct hmap_slot {
	char *key; /* NULL = empty */
	void *value;
	uint64_t hash;
};

struct hmap {
	struct hmap_slot *slots;
	size_t cap; /* power of two */
	size_t count;
	uint64_t seed;
	hmap_free_fn value_free;
};

static uint64_t hash_str(uint64_t seed, const char *s)
{
	uint64_t h = 1469598103934665603ULL ^ seed;
	for(; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

hmap_t *hmap_new(hmap_free_fn value_free)
{
	hmap_t *m = calloc(1, sizeof(*m));
	if(!m) {
		return NULL;
	}
	m->cap = 16;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if(!m->slots) {
		free(m);
		return NULL;
	}
	/* Seed from the map's own address: different per map and per run, cheap,
	 * and keeps hostile key sets from being precomputed. */
	m->seed = (uint64_t)(uintptr_t)m * 0x9E3779B97F4A7C15ULL;
	m->value_free = value_free;
	return m;
}

void hmap_free(hmap_t *m)
{
	if(!m) {
		return;
	}
	for(size_t i = 0; i < m->cap; i++) {
		if(m->slots[i].key) {
			free(m->slots[i].key);
			if(m->value_free) {
				m->value_free(m->slots[i].value);
			}
		}
	}
	free(m->slots);
	free(m);
}

static size_t find(const hmap_t *m, const char *key, uint64_t h)
{
	size_t mask = m->cap - 1;
	size_t i = (size_t)h & mask;
	while(m->slots[i].key) {
		if(m->slots[i].hash == h && strcmp(m->slots[i].key, key) == 0) {
			return i;
		}
		i = (i + 1) & mask;
	}
	return i; /* empty slot */
}

static int grow(hmap_t *m)
{
	size_t ncap = m->cap * 2;
	struct hmap_slot *ns = calloc(ncap, sizeof(*ns));
	if(!ns) {
		return -1;
	}
	for(size_t i = 0; i < m->cap; i++) {
		if(!m->slots[i].key) {
			continue;
		}
		size_t j = (size_t)m->slots[i].hash & (ncap - 1);
		while(ns[j].key) {
			j = (j + 1) & (ncap - 1);
		}
		ns[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	return 0;
}

int hmap_put(hmap_t *m, const char *key, void *value)
{
	if((m->count + 1) * 4 > m->cap * 3 && grow(m)) {
		return -1;
	}
	uint64_t h = hash_str(m->seed, key);
	size_t i = find(m, key, h);
	if(m->slots[i].key) {
		if(m->value_free && m->slots[i].value != value) {
			m->value_free(m->slots[i].value);
		}
		m->slots[i].value = value;
		return 0;
	}
	char *k = strdup(key);
	if(!k) {
		return -1;
	}
	m->slots[i].key = k;
	m->slots[i].value = value;
	m->slots[i].hash = h;
	m->count++;
	return 0;
}

void *hmap_get(const hmap_t *m, const char *key)
{
	if(!m || !key) {
		return NULL;
	}
	size_t i = find(m, key, hash_str(m->seed, key));
	return m->slots[i].key ? m->slots[i].value : NULL;
}

bool hmap_del(hmap_t *m, const char *key)
{
	size_t i = find(m, key, hash_str(m->seed, key));
	if(!m->slots[i].key) {
		return false;
	}
	free(m->slots[i].key);
	if(m->value_free) {
		m->value_free(m->slots[i].value);
	}
	m->slots[i].key = NULL;
	m->count--;
	/* Backward-shift the following cluster so lookups never stop early. */
	size_t mask = m->cap - 1;
	size_t j = i;
	for(;;) {
		j = (j + 1) & mask;
		if(!m->slots[j].key) {
			break;
		}
		size_t home = (size_t)m->slots[j].hash & mask;
		/* Move slot j into hole i if its home is not in (i, j]. */
		bool between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
		if(!between) {
			m->slots[i] = m->slots[j];
			m->slots[j].key = NULL;
			i = j;
		}
	}
	return true;
}

size_t hmap_count(const hmap_t *m)
{
	return m ? m->count : 0;
}

bool hmap_next(const hmap_t *m, size_t *it, const char **key, void **value)
{
	while(*it < m->cap) {
		size_t i = (*it)++;
		if(m->slots[i].key) {
			*key = m->slots[i].key;
			*value = m->slots[i].value;
			return true;
		}
	}
	return false;
}
