/* A validating JSON tokenizer over one line of bytes (RFC 8259, strict).
 *
 * Every function takes the current position `p` and the end of the line `e`, and returns the
 * position after what it read, or NULL when the bytes are not valid JSON there (which includes
 * invalid UTF-8 inside a string). Nothing is allocated except the container stack of json_skip.
 */
#ifndef CCLENS_JSON_H
#define CCLENS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "columns.h"

/* Skip JSON whitespace (space, tab, CR, LF). */
static inline const uint8_t *json_ws(const uint8_t *p, const uint8_t *e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* `p` is just after an opening quote: returns just after the closing quote. `*escaped` is set when
 * the string holds a backslash escape (its bytes are then not its value). */
const uint8_t *json_string(const uint8_t *p, const uint8_t *e, int *escaped);

/* A number at `p` (strict grammar); `*integer` is set when it has no fraction and no exponent. */
const uint8_t *json_number(const uint8_t *p, const uint8_t *e, int *integer);

/* Any value at `p` (no leading whitespace), containers included, validated; `stack` is scratch.
 * NULL with *oom set when the stack could not grow. */
const uint8_t *json_skip(const uint8_t *p, const uint8_t *e, Buf *stack, int *oom);

/* Whether [p, e) is valid UTF-8 (strict: no overlongs, no surrogates, nothing above U+10FFFF). */
int utf8_valid(const uint8_t *p, const uint8_t *e);

/* The value of a validated string body [p, e) (between its quotes), UTF-8 encoded into `out`, which
 * must have room for e - p bytes (a value is never longer than its escaped form). An escaped lone
 * surrogate becomes U+FFFD. Returns the number of bytes written. */
size_t json_unescape(const uint8_t *p, const uint8_t *e, uint8_t *out);

/* The number of Unicode code points in the value of a validated string body [p, e): an escaped
 * surrogate pair counts one, a lone escaped surrogate counts one (as Python's json module does). */
int64_t json_string_chars(const uint8_t *p, const uint8_t *e);

/* Whether the value of string body [p, e) (escaped or not) equals the NUL-terminated `want`. */
int json_string_equals(const uint8_t *p, const uint8_t *e, int escaped, const char *want);

#endif
