/* A set of line keys, by 128-bit fingerprint (MurmurHash3), kept across the batches of one ingest so
 * that a line key seen before in the run marks the line as not new: this is how copies of a line
 * (a file read twice, replies copied into resumed sessions) land once, without asking DuckDB. */
#ifndef CCLENS_KEYSET_H
#define CCLENS_KEYSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *slots; /* two words per slot; (0, 0) is empty */
    size_t cap;      /* slots, a power of two */
    size_t n;
} KeySet;

void keyset_init(KeySet *s);
void keyset_free(KeySet *s);

/* Add the key [p, p + n): 1 if it was already there, 0 if added, -1 when memory ran out. */
int keyset_add(KeySet *s, const uint8_t *p, size_t n);

#endif
