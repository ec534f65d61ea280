#ifndef CCLENS_MD5_H
#define CCLENS_MD5_H

#include <stddef.h>
#include <stdint.h>

/* The MD5 digest of [p, p + n): 16 bytes, or 32 lowercase hex characters (not NUL-terminated). */
void md5_digest(const uint8_t *p, size_t n, uint8_t out[16]);
void md5_hex(const uint8_t *p, size_t n, char out[32]);

#endif
