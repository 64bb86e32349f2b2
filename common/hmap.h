/*
 * hmap.h — a string-keyed hash map (open addressing, linear probing, FNV-1a
 * with a per-map seed).  Used for device tables, per-client state and policy
 * lookups, where a decision must cost O(1) whatever the number of entries.
 *
 * Keys are copied into the map; values are opaque pointers the caller owns
 * unless a free function is given to hmap_new.
 */
#ifndef PG_HMAP_H
#define PG_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hmap hmap_t;
typedef void (*hmap_free_fn)(void *value);

/* New empty map; value_free (may be NULL) is called on values the map drops. */
hmap_t *hmap_new(hmap_free_fn value_free);
/* Free the map, its keys, and (with value_free) its values.  NULL is fine. */
void hmap_free(hmap_t *m);

/* Insert or replace; the old value is freed with value_free.  -1 on ENOMEM. */
int hmap_put(hmap_t *m, const char *key, void *value);
/* Lookup; NULL when absent. */
void *hmap_get(const hmap_t *m, const char *key);
/* Remove; frees the value with value_free.  Returns true when it was there. */
bool hmap_del(hmap_t *m, const char *key);
size_t hmap_count(const hmap_t *m);

/* Iterate: `it` starts at 0; returns false at the end.  Do not insert or
 * delete while iterating: collect the keys first, then delete. */
bool hmap_next(const hmap_t *m, size_t *it, const char **key, void **value);

#endif
