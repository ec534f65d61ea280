/* A validating JSON tokenizer (see json.h). Strings are most of a transcript's bytes, so the string
 * scanner looks at eight bytes at a time and only steps byte by byte near a quote, a backslash, a
 * control character or a non-ASCII byte. */
#include "json.h"

#include <string.h>

static inline int hexval(uint8_t c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Length of the UTF-8 sequence starting at p (a byte >= 0x80), or 0 when it is not valid. */
static inline int utf8_seq(const uint8_t *p, const uint8_t *e) {
    uint8_t c = p[0];
    ptrdiff_t left = e - p;
    if (c >= 0xC2 && c <= 0xDF) {
        return left >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || (p[2] & 0xC0) != 0x80)
            return 0;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
        return p[1] >= lo && p[1] <= hi ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
        return p[1] >= lo && p[1] <= hi ? 4 : 0;
    }
    return 0;
}

int utf8_valid(const uint8_t *p, const uint8_t *e) {
    while (p < e) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        int n = utf8_seq(p, e);
        if (!n)
            return 0;
        p += n;
    }
    return 1;
}

/* Bytes that end the plain run of a string: a quote, a backslash, a control character, non-ASCII. */
static inline int special(uint8_t c) { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80; }

#if defined(__SSE2__)
#include <emmintrin.h>

/* The first special byte in [p, e), or e; sixteen bytes at a time. */
static inline const uint8_t *next_special(const uint8_t *p, const uint8_t *e) {
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1F);
    while (e - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i m = _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash));
        m = _mm_or_si128(m, _mm_cmpeq_epi8(_mm_max_epu8(x, ctl), ctl)); /* x <= 0x1F */
        int mask = _mm_movemask_epi8(m) | _mm_movemask_epi8(x);       /* | high bit: non-ASCII */
        if (mask)
            return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
    while (p < e && !special(*p))
        p++;
    return p;
}
#else
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The first special byte in [p, e), or e; eight bytes at a time where none of them may be special
 * (the test has false positives, never false negatives). */
static inline const uint8_t *next_special(const uint8_t *p, const uint8_t *e) {
    while (e - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t q = x ^ (ONES * '"'), b = x ^ (ONES * '\\');
        if (((x - ONES * 0x20) | (q - ONES) | (b - ONES) | x) & HIGHS)
            break;
        p += 8;
    }
    while (p < e && !special(*p))
        p++;
    return p;
}
#endif

const uint8_t *json_string(const uint8_t *p, const uint8_t *e, int *escaped) {
    *escaped = 0;
    for (;;) {
        p = next_special(p, e);
        if (p >= e)
            return NULL;
        uint8_t c = *p;
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            *escaped = 1;
            if (e - p < 2)
                return NULL;
            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;
            case 'u':
                if (e - p < 6 || hexval(p[2]) < 0 || hexval(p[3]) < 0 || hexval(p[4]) < 0 || hexval(p[5]) < 0)
                    return NULL;
                p += 6;
                break;
            default:
                return NULL;
            }
        } else if (c < 0x20) {
            return NULL;
        } else {
            int n = utf8_seq(p, e);
            if (!n)
                return NULL;
            p += n;
        }
    }
}

const uint8_t *json_number(const uint8_t *p, const uint8_t *e, int *integer) {
    *integer = 1;
    if (p < e && *p == '-')
        p++;
    if (p >= e)
        return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    } else {
        return NULL;
    }
    if (p < e && *p == '.') {
        *integer = 0;
        p++;
        if (p >= e || *p < '0' || *p > '9')
            return NULL;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            return NULL;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    return p;
}

static inline const uint8_t *literal(const uint8_t *p, const uint8_t *e, const char *word, size_t n) {
    return (size_t)(e - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

/* A scalar at p: string, number, true, false or null. */
static const uint8_t *scalar(const uint8_t *p, const uint8_t *e) {
    int flag;
    switch (*p) {
    case '"': return json_string(p + 1, e, &flag);
    case 't': return literal(p, e, "true", 4);
    case 'f': return literal(p, e, "false", 5);
    case 'n': return literal(p, e, "null", 4);
    default: return json_number(p, e, &flag);
    }
}


/* The container stack of json_skip: one byte per open container ('{' or '['). */
static inline int push(Buf *s, uint8_t c) {
    if (buf_reserve(s, 1))
        return -1;
    s->p[s->len++] = c;
    return 0;
}

const uint8_t *json_skip(const uint8_t *p, const uint8_t *e, Buf *stack, int *oom) {
    size_t base = stack->len;
    int flag;
    /* Each turn reads one value at p, then the separators after it until the next value starts. */
    for (;;) {
        if (p >= e)
            goto fail;
        if (*p == '{') {
            p = json_ws(p + 1, e);
            if (p < e && *p == '}') {
                p++;
            } else {
                if (push(stack, '{'))
                    goto nomem;
                goto key;
            }
        } else if (*p == '[') {
            p = json_ws(p + 1, e);
            if (p < e && *p == ']') {
                p++;
            } else {
                if (push(stack, '['))
                    goto nomem;
                continue;
            }
        } else {
            p = scalar(p, e);
            if (!p)
                goto fail;
        }
    after_value:
        if (stack->len == base)
            return p;
        p = json_ws(p, e);
        if (p >= e)
            goto fail;
        if (stack->p[stack->len - 1] == '{') {
            if (*p == '}') {
                stack->len--;
                p++;
                goto after_value;
            }
            if (*p != ',')
                goto fail;
            p = json_ws(p + 1, e);
            goto key;
        }
        if (*p == ']') {
            stack->len--;
            p++;
            goto after_value;
        }
        if (*p != ',')
            goto fail;
        p = json_ws(p + 1, e);
        continue;
    key:
        if (p >= e || *p != '"')
            goto fail;
        p = json_string(p + 1, e, &flag);
        if (!p)
            goto fail;
        p = json_ws(p, e);
        if (p >= e || *p != ':')
            goto fail;
        p = json_ws(p + 1, e);
    }
nomem:
    *oom = 1;
fail:
    stack->len = base;
    return NULL;
}

/* The code point of the \uXXXX escape at p (p[0] == '\\', p[1] == 'u'), already validated. */
static inline unsigned escape_u(const uint8_t *p) {
    return (unsigned)(hexval(p[2]) << 12 | hexval(p[3]) << 8 | hexval(p[4]) << 4 | hexval(p[5]));
}

/* A \u escape at p, with a following low surrogate when p holds a high one: the code point, and
 * in *len the bytes it spans (6 or 12). A lone surrogate is returned as is. */
static inline unsigned escape_cp(const uint8_t *p, const uint8_t *e, int *len) {
    unsigned cp = escape_u(p);
    *len = 6;
    if (cp >= 0xD800 && cp <= 0xDBFF && e - p >= 12 && p[6] == '\\' && p[7] == 'u') {
        unsigned lo = escape_u(p + 6);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            *len = 12;
            return 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
    }
    return cp;
}

static inline size_t put_utf8(uint8_t *out, unsigned cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF)
        cp = 0xFFFD;
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

size_t json_unescape(const uint8_t *p, const uint8_t *e, uint8_t *out) {
    uint8_t *w = out;
    while (p < e) {
        const uint8_t *bs = memchr(p, '\\', (size_t)(e - p));
        if (!bs) {
            memcpy(w, p, (size_t)(e - p));
            w += e - p;
            break;
        }
        memcpy(w, p, (size_t)(bs - p));
        w += bs - p;
        p = bs;
        switch (p[1]) {
        case 'b': *w++ = '\b'; p += 2; break;
        case 'f': *w++ = '\f'; p += 2; break;
        case 'n': *w++ = '\n'; p += 2; break;
        case 'r': *w++ = '\r'; p += 2; break;
        case 't': *w++ = '\t'; p += 2; break;
        case 'u': {
            int len;
            unsigned cp = escape_cp(p, e, &len);
            /* 6 escaped bytes become at most 3 (U+FFFD), 12 become 4: never longer. */
            w += put_utf8(w, cp);
            p += len;
            break;
        }
        default: *w++ = p[1]; p += 2; break; /* \" \\ \/ */
        }
    }
    return (size_t)(w - out);
}

int64_t json_string_chars(const uint8_t *p, const uint8_t *e) {
    int64_t n = 0;
    while (p < e) {
        uint8_t c = *p;
        if (c == '\\') {
            if (p[1] == 'u') {
                int len;
                escape_cp(p, e, &len);
                p += len;
            } else {
                p += 2;
            }
            n++;
        } else {
            n += (c & 0xC0) != 0x80; /* count lead bytes, not continuation bytes */
            p++;
        }
    }
    return n;
}

int json_string_equals(const uint8_t *p, const uint8_t *e, int escaped, const char *want) {
    size_t n = strlen(want);
    if (!escaped)
        return (size_t)(e - p) == n && memcmp(p, want, n) == 0;
    uint8_t buf[256];
    if ((size_t)(e - p) > sizeof buf)
        return 0; /* too long to be one of ours: every name we look for is under 40 characters,
                     so at most 240 bytes even with every character escaped as \uXXXX */
    size_t got = json_unescape(p, e, buf);
    return got == n && memcmp(buf, want, n) == 0;
}
