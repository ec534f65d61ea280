/* The set of line keys seen in a run (see keyset.h): open addressing with linear probing. */
#include "keyset.h"

#include <stdlib.h>
#include <string.h>

/* MurmurHash3 x64 128 (Austin Appleby, public domain): a fast, well-mixed fingerprint. */
static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static void murmur3_128(const uint8_t *p, size_t n, uint64_t *h1out, uint64_t *h2out) {
    const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    uint64_t h1 = 0, h2 = 0; /* seed 0 */
    size_t blocks = n / 16;
    for (size_t i = 0; i < blocks; i++) {
        uint64_t k1, k2;
        memcpy(&k1, p + 16 * i, 8);
        memcpy(&k2, p + 16 * i + 8, 8);
        k1 *= c1; k1 = rotl64(k1, 31); k1 *= c2; h1 ^= k1;
        h1 = rotl64(h1, 27); h1 += h2; h1 = h1 * 5 + 0x52dce729;
        k2 *= c2; k2 = rotl64(k2, 33); k2 *= c1; h2 ^= k2;
        h2 = rotl64(h2, 31); h2 += h1; h2 = h2 * 5 + 0x38495ab5;
    }
    const uint8_t *tail = p + 16 * blocks;
    uint64_t k1 = 0, k2 = 0;
    switch (n & 15) {
    case 15: k2 ^= (uint64_t)tail[14] << 48; /* fall through */
    case 14: k2 ^= (uint64_t)tail[13] << 40; /* fall through */
    case 13: k2 ^= (uint64_t)tail[12] << 32; /* fall through */
    case 12: k2 ^= (uint64_t)tail[11] << 24; /* fall through */
    case 11: k2 ^= (uint64_t)tail[10] << 16; /* fall through */
    case 10: k2 ^= (uint64_t)tail[9] << 8; /* fall through */
    case 9: k2 ^= (uint64_t)tail[8];
        k2 *= c2; k2 = rotl64(k2, 33); k2 *= c1; h2 ^= k2;
        /* fall through */
    case 8: k1 ^= (uint64_t)tail[7] << 56; /* fall through */
    case 7: k1 ^= (uint64_t)tail[6] << 48; /* fall through */
    case 6: k1 ^= (uint64_t)tail[5] << 40; /* fall through */
    case 5: k1 ^= (uint64_t)tail[4] << 32; /* fall through */
    case 4: k1 ^= (uint64_t)tail[3] << 24; /* fall through */
    case 3: k1 ^= (uint64_t)tail[2] << 16; /* fall through */
    case 2: k1 ^= (uint64_t)tail[1] << 8; /* fall through */
    case 1: k1 ^= (uint64_t)tail[0];
        k1 *= c1; k1 = rotl64(k1, 31); k1 *= c2; h1 ^= k1;
    }
    h1 ^= (uint64_t)n;
    h2 ^= (uint64_t)n;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    *h1out = h1;
    *h2out = h2;
}

void keyset_init(KeySet *s) { memset(s, 0, sizeof *s); }

void keyset_free(KeySet *s) {
    free(s->slots);
    memset(s, 0, sizeof *s);
}

static void put(uint64_t *slots, size_t cap, uint64_t a, uint64_t b) {
    size_t i = (size_t)a & (cap - 1);
    while (slots[2 * i] | slots[2 * i + 1])
        i = (i + 1) & (cap - 1);
    slots[2 * i] = a;
    slots[2 * i + 1] = b;
}

static int grow(KeySet *s) {
    size_t cap = s->cap ? s->cap * 2 : 1024;
    uint64_t *slots = calloc(cap, 2 * sizeof(uint64_t));
    if (!slots)
        return -1;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[2 * i] | s->slots[2 * i + 1])
            put(slots, cap, s->slots[2 * i], s->slots[2 * i + 1]);
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int keyset_add(KeySet *s, const uint8_t *p, size_t n) {
    uint64_t a, b;
    murmur3_128(p, n, &a, &b);
    if (!(a | b))
        b = 1; /* (0, 0) marks an empty slot */
    if (2 * (s->n + 1) > s->cap && grow(s))
        return -1;
    size_t i = (size_t)a & (s->cap - 1);
    while (s->slots[2 * i] | s->slots[2 * i + 1]) {
        if (s->slots[2 * i] == a && s->slots[2 * i + 1] == b)
            return 1;
        i = (i + 1) & (s->cap - 1);
    }
    s->slots[2 * i] = a;
    s->slots[2 * i + 1] = b;
    s->n++;
    return 0;
}
