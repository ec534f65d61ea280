/* One pass over a transcript line (see envelope.h; the rules are written out in scan.py). */
#include "envelope.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "md5.h"

const char *const LINE_NAMES[L_NCOLS] = {
    "idx", "chunk", "chunk_offset", "byte_length", "status", "path", "generation", "byte_offset",
    "type", "subtype", "session_id", "uuid", "timestamp", "agent_id", "cwd", "git_branch", "version",
    "entrypoint", "prompt_id", "request_id", "message_id", "model", "speed", "service_tier",
    "is_sidechain", "is_api_error", "is_meta", "is_compact_summary", "has_usage",
    "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
    "cache_creation_5m_tokens", "cache_creation_1h_tokens",
    "content_kind", "prompt_chars", "has_tool_result",
    "raw", "line_key", "prompt_text", "seen", "ts", "request_best", "request_first_ts", "request_first_idx",
};
const ColType LINE_TYPES[L_NCOLS] = {
    COL_I32, COL_I32, COL_I64, COL_I32, COL_I8, COL_UTF8, COL_I32, COL_I64,
    COL_UTF8, COL_UTF8, COL_UTF8, COL_UTF8, COL_UTF8, COL_UTF8, COL_UTF8, COL_UTF8, COL_UTF8,
    COL_UTF8, COL_UTF8, COL_UTF8, COL_UTF8, COL_UTF8, COL_UTF8, COL_UTF8,
    COL_BOOL, COL_BOOL, COL_BOOL, COL_BOOL, COL_BOOL,
    COL_I64, COL_I64, COL_I64, COL_I64, COL_I64, COL_I64,
    COL_I8, COL_I64, COL_BOOL,
    COL_UTF8, COL_UTF8, COL_UTF8, COL_BOOL, COL_TS, COL_BOOL, COL_TS, COL_I32,
};
const char *const BLOCK_NAMES[B_NCOLS] = {"line", "kind", "id", "name", "is_error"};
const ColType BLOCK_TYPES[B_NCOLS] = {COL_I32, COL_I8, COL_UTF8, COL_UTF8, COL_BOOL};

/* A value as read: where its text is and what kind of JSON it was. */
enum { V_NONE, V_STR, V_NUM, V_TRUE, V_FALSE, V_NULL, V_CONTAINER };

typedef struct {
    const uint8_t *p; /* a string's body (between the quotes), or a number's text */
    uint32_t n;
    uint8_t kind;
    uint8_t escaped; /* V_STR with a backslash escape */
    uint8_t integer; /* V_NUM without fraction or exponent */
} Val;

/* The fields we read; first occurrence of a key wins (as a JSON object lookup does). */
enum {
    F_TYPE, F_SUBTYPE, F_OPERATION, F_UUID, F_SESSIONID, F_SESSION_ID, F_TIMESTAMP, F_AGENT, F_CWD,
    F_BRANCH, F_VERSION, F_ENTRYPOINT, F_PROMPT_ID, F_REQUEST_ID,
    F_SIDECHAIN, F_API_ERROR, F_META, F_COMPACT,
    F_ATT_TYPE, F_MSG_ID, F_MODEL, F_SPEED, F_TIER,
    F_IN, F_OUT, F_CC, F_CR, F_5M, F_1H,
    F_CONTENT,
    NFIELDS
};

enum { CK_NONE = 0, CK_STRING = 1, CK_ARRAY = 2, CK_OTHER = 3 };
enum { BK_TOOL_USE = 1, BK_TOOL_RESULT = 2 };

typedef struct {
    int kind;
    Val id, name, tool_use_id, is_error;
} Block;

/* A request of the scan (see scanner_requests). */
typedef struct {
    uint64_t hash;
    size_t key, key_len;     /* in Scanner.req_keys */
    int32_t best, first;     /* rows: the best line, the first line */
    int64_t total, best_ts;  /* the best line's rank: total desc, sidechain, ts (INT64_MAX: none) */
    int sidechain;
    int64_t first_ts;        /* the earliest timestamp of its lines (INT64_MAX: none) */
} Request;

struct Scanner {
    int capture;      /* content capture on: the landing copy is the line as it is */
    Request *req;     /* open addressing by hash; req_cap slots, req_n used */
    size_t req_cap, req_n;
    Buf req_keys;
    int req_inexact;  /* a candidate's timestamp or total the scanner could not read as SQL would */
    const uint8_t *e; /* end of the current line */
    Buf stack;        /* json_skip's container stack */
    Buf out;          /* the landing copy being written (capture off) */
    Buf blocks;       /* Block records of the current line */
    int oom;
    Val f[NFIELDS];
    int has_usage, content_kind, has_tool_result;
    int seen_message, seen_attachment, seen_usage, seen_cc, seen_content;
};

Scanner *scanner_new(int capture_content) {
    Scanner *s = calloc(1, sizeof *s);
    if (s)
        s->capture = capture_content;
    return s;
}

void scanner_free(Scanner *s) {
    if (!s)
        return;
    free(s->req);
    buf_free(&s->req_keys);
    buf_free(&s->stack);
    buf_free(&s->out);
    buf_free(&s->blocks);
    free(s);
}

/* ---- keys ------------------------------------------------------------------------------------- */

enum { K_SKIP, K_FIELD, K_MESSAGE, K_ATTACHMENT, K_TOOL_USE_RESULT, K_STRIP, K_CONTENT, K_USAGE,
       K_CACHE_CREATION, K_GIT_OPERATION, K_BLOCK_TYPE, K_BLOCK_ID, K_BLOCK_NAME, K_BLOCK_TOOL_USE_ID,
       K_BLOCK_IS_ERROR };

typedef struct {
    const char *name;
    unsigned char len;
    unsigned char what;  /* K_* */
    unsigned char field; /* F_* for K_FIELD */
} Key;

#define KEY(s, what, field) {s, sizeof(s) - 1, what, field}

static const Key TOP_KEYS[] = {
    KEY("type", K_FIELD, F_TYPE), KEY("subtype", K_FIELD, F_SUBTYPE),
    KEY("operation", K_FIELD, F_OPERATION), KEY("uuid", K_FIELD, F_UUID),
    KEY("sessionId", K_FIELD, F_SESSIONID), KEY("session_id", K_FIELD, F_SESSION_ID),
    KEY("timestamp", K_FIELD, F_TIMESTAMP), KEY("agentId", K_FIELD, F_AGENT), KEY("cwd", K_FIELD, F_CWD),
    KEY("gitBranch", K_FIELD, F_BRANCH), KEY("version", K_FIELD, F_VERSION),
    KEY("entrypoint", K_FIELD, F_ENTRYPOINT), KEY("promptId", K_FIELD, F_PROMPT_ID),
    KEY("requestId", K_FIELD, F_REQUEST_ID), KEY("isSidechain", K_FIELD, F_SIDECHAIN),
    KEY("isApiErrorMessage", K_FIELD, F_API_ERROR), KEY("isMeta", K_FIELD, F_META),
    KEY("isCompactSummary", K_FIELD, F_COMPACT),
    KEY("message", K_MESSAGE, 0), KEY("attachment", K_ATTACHMENT, 0),
    KEY("toolUseResult", K_TOOL_USE_RESULT, 0),
    KEY("content", K_STRIP, 0), KEY("lastPrompt", K_STRIP, 0), KEY("summary", K_STRIP, 0),
    KEY("snapshot", K_STRIP, 0),
    {NULL, 0, 0, 0},
};
static const Key MESSAGE_KEYS[] = {
    KEY("id", K_FIELD, F_MSG_ID), KEY("model", K_FIELD, F_MODEL), KEY("content", K_CONTENT, 0),
    KEY("usage", K_USAGE, 0), {NULL, 0, 0, 0},
};
static const Key USAGE_KEYS[] = {
    KEY("input_tokens", K_FIELD, F_IN), KEY("output_tokens", K_FIELD, F_OUT),
    KEY("cache_creation_input_tokens", K_FIELD, F_CC), KEY("cache_read_input_tokens", K_FIELD, F_CR),
    KEY("speed", K_FIELD, F_SPEED), KEY("service_tier", K_FIELD, F_TIER),
    KEY("cache_creation", K_CACHE_CREATION, 0), {NULL, 0, 0, 0},
};
static const Key CACHE_CREATION_KEYS[] = {
    KEY("ephemeral_5m_input_tokens", K_FIELD, F_5M), KEY("ephemeral_1h_input_tokens", K_FIELD, F_1H),
    {NULL, 0, 0, 0},
};
static const Key ATTACHMENT_KEYS[] = {
    KEY("type", K_FIELD, F_ATT_TYPE),
    KEY("content", K_STRIP, 0), KEY("stdout", K_STRIP, 0), KEY("stderr", K_STRIP, 0),
    KEY("addedLines", K_STRIP, 0), KEY("prompt", K_STRIP, 0), KEY("file", K_STRIP, 0),
    KEY("snippet", K_STRIP, 0), {NULL, 0, 0, 0},
};
static const Key TOOL_USE_RESULT_KEYS[] = {KEY("gitOperation", K_GIT_OPERATION, 0), {NULL, 0, 0, 0}};
static const Key BLOCK_KEYS[] = {
    KEY("type", K_BLOCK_TYPE, 0), KEY("id", K_BLOCK_ID, 0), KEY("name", K_BLOCK_NAME, 0),
    KEY("tool_use_id", K_BLOCK_TOOL_USE_ID, 0), KEY("is_error", K_BLOCK_IS_ERROR, 0), {NULL, 0, 0, 0},
};

/* The entry of `keys` for the key whose string body is [p, e). */
static const Key *lookup(const Key *keys, const uint8_t *p, const uint8_t *e, int escaped) {
    size_t n = (size_t)(e - p);
    for (const Key *k = keys; k->name; k++) {
        if (escaped ? json_string_equals(p, e, 1, k->name) : (k->len == n && memcmp(p, k->name, n) == 0))
            return k;
    }
    return NULL;
}

/* ---- reading values --------------------------------------------------------------------------- */

static void out_bytes(Scanner *s, const uint8_t *p, size_t n) {
    if (s->oom || buf_reserve(&s->out, n)) {
        s->oom = 1;
        return;
    }
    memcpy(s->out.p + s->out.len, p, n);
    s->out.len += n;
}

static void out_byte(Scanner *s, uint8_t c) { out_bytes(s, &c, 1); }

/* Any value at p, validated and passed over. */
static inline const uint8_t *skip(Scanner *s, const uint8_t *p) { return json_skip(p, s->e, &s->stack, &s->oom); }

/* A value at p, validated, described in *v. */
static const uint8_t *read_value(Scanner *s, const uint8_t *p, Val *v) {
    const uint8_t *e = s->e;
    int flag;
    memset(v, 0, sizeof *v);
    switch (*p) {
    case '"': {
        const uint8_t *q = json_string(p + 1, e, &flag);
        if (!q)
            return NULL;
        v->kind = V_STR;
        v->p = p + 1;
        v->n = (uint32_t)(q - 1 - (p + 1));
        v->escaped = (uint8_t)flag;
        return q;
    }
    case 't':
        v->kind = V_TRUE;
        return (e - p >= 4 && memcmp(p, "true", 4) == 0) ? p + 4 : NULL;
    case 'f':
        v->kind = V_FALSE;
        return (e - p >= 5 && memcmp(p, "false", 5) == 0) ? p + 5 : NULL;
    case 'n':
        v->kind = V_NULL;
        return (e - p >= 4 && memcmp(p, "null", 4) == 0) ? p + 4 : NULL;
    case '{':
    case '[':
        v->kind = V_CONTAINER;
        return json_skip(p, e, &s->stack, &s->oom);
    default: {
        const uint8_t *q = json_number(p, e, &flag);
        if (!q)
            return NULL;
        v->kind = V_NUM;
        v->p = p;
        v->n = (uint32_t)(q - p);
        v->integer = (uint8_t)flag;
        return q;
    }
    }
}

/* Read the value at p into field slot `f` (kept only if this key was not seen before). */
static const uint8_t *read_field(Scanner *s, const uint8_t *p, int f, int keep) {
    Val v;
    p = read_value(s, p, &v);
    if (p && keep && s->f[f].kind == V_NONE)
        s->f[f] = v;
    return p;
}

/* ---- objects ---------------------------------------------------------------------------------- */

/* One member of an object being read. */
typedef struct {
    const uint8_t *key;    /* the key's token, quotes included */
    const uint8_t *key_end;
    const Key *known;      /* its entry in the table of keys of interest, or NULL */
    const uint8_t *value;  /* the value's first byte */
} Member;

/* At p (just after '{' or ','), read a key and the colon: fills *m, returns the value's position. */
static const uint8_t *member_start(Scanner *s, const uint8_t *p, const Key *keys, Member *m) {
    const uint8_t *e = s->e;
    int escaped;
    if (p >= e || *p != '"')
        return NULL;
    m->key = p;
    p = json_string(p + 1, e, &escaped);
    if (!p)
        return NULL;
    m->key_end = p;
    m->known = lookup(keys, m->key + 1, p - 1, escaped);
    p = json_ws(p, e);
    if (p >= e || *p != ':')
        return NULL;
    p = json_ws(p + 1, e);
    if (p >= e)
        return NULL;
    m->value = p;
    return p;
}

/* After a member's value: 1 and the next key's position after a comma, 0 and the position after
 * the closing brace, -1 on a syntax error. */
static int member_next(Scanner *s, const uint8_t **pp) {
    const uint8_t *p = json_ws(*pp, s->e);
    if (p >= s->e)
        return -1;
    if (*p == ',') {
        *pp = json_ws(p + 1, s->e);
        return 1;
    }
    if (*p == '}') {
        *pp = p + 1;
        return 0;
    }
    return -1;
}

/* Write a kept member of a rebuilt object: the key and value tokens as they were. */
static void emit_member(Scanner *s, const Member *m, const uint8_t *value_end, int *first) {
    if (!*first)
        out_byte(s, ',');
    *first = 0;
    out_bytes(s, m->key, (size_t)(m->key_end - m->key));
    out_byte(s, ':');
    out_bytes(s, m->value, (size_t)(value_end - m->value));
}

static void emit_key(Scanner *s, const Member *m, int *first) {
    if (!*first)
        out_byte(s, ',');
    *first = 0;
    out_bytes(s, m->key, (size_t)(m->key_end - m->key));
    out_byte(s, ':');
}

/* Iterate the members of the object at p ('{'), calling `on` for each; `on` returns the position
 * after the member's value. Returns the position after the closing brace. */
typedef const uint8_t *(*MemberFn)(Scanner *s, Member *m, void *ctx);

static const uint8_t *read_object(Scanner *s, const uint8_t *p, const Key *keys, MemberFn on, void *ctx) {
    p = json_ws(p + 1, s->e);
    if (p < s->e && *p == '}')
        return p + 1;
    for (;;) {
        Member m;
        if (!member_start(s, p, keys, &m))
            return NULL;
        p = on(s, &m, ctx);
        if (!p)
            return NULL;
        int more = member_next(s, &p);
        if (more < 0)
            return NULL;
        if (!more)
            return p;
    }
}

/* Context of an object being rebuilt for the landing copy. */
typedef struct {
    int keep;  /* read fields into the scanner (first occurrence of the enclosing key) */
    int emit;  /* write the landing copy */
    int first; /* no member written yet */
    int seen_git;           /* toolUseResult: a gitOperation member was read */
    const uint8_t *git;     /* its value, unless that was null */
    const uint8_t *git_end;
    Block block;
} Ctx;

static const uint8_t *on_cache_creation(Scanner *s, Member *m, void *ctx) {
    Ctx *c = ctx;
    if (m->known)
        return read_field(s, m->value, m->known->field, c->keep);
    return skip(s, m->value);
}

static const uint8_t *on_usage(Scanner *s, Member *m, void *ctx) {
    Ctx *c = ctx;
    if (!m->known)
        return skip(s, m->value);
    if (m->known->what == K_CACHE_CREATION) {
        int keep = c->keep && !s->seen_cc;
        s->seen_cc = 1;
        if (*m->value == '{') {
            Ctx sub = {.keep = keep};
            return read_object(s, m->value, CACHE_CREATION_KEYS, on_cache_creation, &sub);
        }
        return skip(s, m->value);
    }
    return read_field(s, m->value, m->known->field, c->keep);
}

static const uint8_t *on_block(Scanner *s, Member *m, void *ctx) {
    Ctx *c = ctx;
    Val v;
    if (!m->known)
        return skip(s, m->value);
    const uint8_t *p = read_value(s, m->value, &v);
    Val *slot = NULL;
    switch (m->known->what) {
    case K_BLOCK_TYPE:
        if (c->block.kind == -1) { /* first "type" decides */
            c->block.kind = 0;
            if (v.kind == V_STR) {
                if (json_string_equals(v.p, v.p + v.n, v.escaped, "tool_use"))
                    c->block.kind = BK_TOOL_USE;
                else if (json_string_equals(v.p, v.p + v.n, v.escaped, "tool_result"))
                    c->block.kind = BK_TOOL_RESULT;
            }
        }
        return p;
    case K_BLOCK_ID: slot = &c->block.id; break;
    case K_BLOCK_NAME: slot = &c->block.name; break;
    case K_BLOCK_TOOL_USE_ID: slot = &c->block.tool_use_id; break;
    case K_BLOCK_IS_ERROR: slot = &c->block.is_error; break;
    }
    if (p && slot && slot->kind == V_NONE)
        *slot = v;
    return p;
}

/* A content block (an object in message.content): remembered if it is a tool use or tool result. */
static const uint8_t *read_block(Scanner *s, const uint8_t *p, int keep) {
    Ctx c;
    memset(&c, 0, sizeof c);
    c.block.kind = -1;
    p = read_object(s, p, BLOCK_KEYS, on_block, &c);
    if (!p || !keep)
        return p;
    int kind = c.block.kind;
    if (kind == BK_TOOL_RESULT)
        s->has_tool_result = 1;
    if (kind == BK_TOOL_USE || kind == BK_TOOL_RESULT) {
        Block blk = c.block;
        if (kind == BK_TOOL_RESULT) /* a result names the tool use it answers */
            blk.id = blk.tool_use_id;
        if (buf_reserve(&s->blocks, sizeof blk)) {
            s->oom = 1;
            return NULL;
        }
        memcpy(s->blocks.p + s->blocks.len, &blk, sizeof blk);
        s->blocks.len += sizeof blk;
    }
    return p;
}

/* message.content: a string (a prompt), an array of blocks, or anything else. */
static const uint8_t *read_content(Scanner *s, const uint8_t *p, int keep) {
    Val v;
    keep = keep && !s->seen_content;
    s->seen_content = 1;
    if (*p != '[') {
        p = read_value(s, p, &v);
        if (p && keep) {
            s->content_kind = v.kind == V_STR ? CK_STRING : v.kind == V_NULL ? CK_NONE : CK_OTHER;
            if (v.kind == V_STR)
                s->f[F_CONTENT] = v;
        }
        return p;
    }
    if (keep)
        s->content_kind = CK_ARRAY;
    p = json_ws(p + 1, s->e);
    if (p < s->e && *p == ']')
        return p + 1;
    for (;;) {
        if (p >= s->e)
            return NULL;
        p = *p == '{' ? read_block(s, p, keep) : skip(s, p);
        if (!p)
            return NULL;
        p = json_ws(p, s->e);
        if (p >= s->e)
            return NULL;
        if (*p == ']')
            return p + 1;
        if (*p != ',')
            return NULL;
        p = json_ws(p + 1, s->e);
    }
}

static const uint8_t *on_message(Scanner *s, Member *m, void *ctx) {
    Ctx *c = ctx;
    const uint8_t *p;
    int what = m->known ? m->known->what : K_SKIP;
    if (what == K_CONTENT)
        return read_content(s, m->value, c->keep); /* never in the landing copy */
    if (what == K_USAGE) {
        int keep = c->keep && !s->seen_usage;
        s->seen_usage = 1;
        if (*m->value == '{') {
            if (keep)
                s->has_usage = 1;
            Ctx sub = {.keep = keep};
            p = read_object(s, m->value, USAGE_KEYS, on_usage, &sub);
        } else {
            p = skip(s, m->value);
        }
    } else if (what == K_FIELD) {
        p = read_field(s, m->value, m->known->field, c->keep);
    } else {
        p = skip(s, m->value);
    }
    if (p && c->emit)
        emit_member(s, m, p, &c->first);
    return p;
}

static const uint8_t *on_attachment(Scanner *s, Member *m, void *ctx) {
    Ctx *c = ctx;
    const uint8_t *p;
    if (m->known && m->known->what == K_STRIP)
        return skip(s, m->value);
    if (m->known)
        p = read_field(s, m->value, m->known->field, c->keep);
    else
        p = skip(s, m->value);
    if (p && c->emit)
        emit_member(s, m, p, &c->first);
    return p;
}

static const uint8_t *on_tool_use_result(Scanner *s, Member *m, void *ctx) {
    Ctx *c = ctx;
    const uint8_t *p = skip(s, m->value);
    if (p && m->known && !c->seen_git) { /* the first gitOperation, unless it is null */
        c->seen_git = 1;
        if (*m->value != 'n')
            c->git = m->value, c->git_end = p;
    }
    return p;
}

static const uint8_t *on_top(Scanner *s, Member *m, void *ctx) {
    Ctx *c = ctx;
    const uint8_t *p;
    int what = m->known ? m->known->what : K_SKIP;
    switch (what) {
    case K_FIELD:
        p = read_field(s, m->value, m->known->field, 1);
        break;
    case K_STRIP:
        return skip(s, m->value);
    case K_MESSAGE:
    case K_ATTACHMENT: {
        int *seen = what == K_MESSAGE ? &s->seen_message : &s->seen_attachment;
        int keep = !*seen;
        *seen = 1;
        if (*m->value != '{') /* an unknown shape may be content: not kept */
            return skip(s, m->value);
        Ctx sub = {.keep = keep, .emit = c->emit, .first = 1};
        if (c->emit) {
            emit_key(s, m, &c->first);
            out_byte(s, '{');
        }
        p = read_object(s, m->value, what == K_MESSAGE ? MESSAGE_KEYS : ATTACHMENT_KEYS,
                        what == K_MESSAGE ? on_message : on_attachment, &sub);
        if (c->emit)
            out_byte(s, '}');
        return p;
    }
    case K_TOOL_USE_RESULT: {
        if (*m->value != '{')
            return skip(s, m->value);
        Ctx sub = {0};
        p = read_object(s, m->value, TOOL_USE_RESULT_KEYS, on_tool_use_result, &sub);
        if (p && c->emit && sub.git) { /* the commit a Bash call made: an id, not content */
            emit_key(s, m, &c->first);
            out_bytes(s, (const uint8_t *)"{\"gitOperation\":", 16);
            out_bytes(s, sub.git, (size_t)(sub.git_end - sub.git));
            out_byte(s, '}');
        }
        return p;
    }
    default:
        p = skip(s, m->value);
        break;
    }
    if (p && c->emit)
        emit_member(s, m, p, &c->first);
    return p;
}

/* ---- writing a row ---------------------------------------------------------------------------- */

static int is_text(const Val *v) { return v->kind == V_STR || v->kind == V_NUM || v->kind == V_TRUE || v->kind == V_FALSE; }

/* The text of a value that reads as text (see is_text) written at w, which has room for v->n + 5
 * bytes; returns its length. */
static size_t text_into(const Val *v, uint8_t *w) {
    switch (v->kind) {
    case V_STR:
        if (v->escaped)
            return json_unescape(v->p, v->p + v->n, w);
        memcpy(w, v->p, v->n);
        return v->n;
    case V_NUM:
        memcpy(w, v->p, v->n);
        return v->n;
    case V_TRUE:
        memcpy(w, "true", 4);
        return 4;
    case V_FALSE:
        memcpy(w, "false", 5);
        return 5;
    default:
        return 0;
    }
}

/* A field as VARCHAR: a string's value, a number's or boolean's text; NULL otherwise. */
static int put_text(Column *col, const Val *v) {
    switch (v->kind) {
    case V_STR:
        if (!v->escaped)
            return col_str(col, v->p, v->n);
        {
            uint8_t *w = col_str_begin(col, v->n);
            return w ? col_str_end(col, json_unescape(v->p, v->p + v->n, w)) : -1;
        }
    case V_NUM: return col_str(col, v->p, v->n);
    case V_TRUE: return col_str(col, (const uint8_t *)"true", 4);
    case V_FALSE: return col_str(col, (const uint8_t *)"false", 5);
    default: return col_null(col);
    }
}


/* The first of a, b, c that reads as text (SQL coalesce). */
static const Val *first_text(const Val *a, const Val *b, const Val *c) {
    if (is_text(a))
        return a;
    if (b && is_text(b))
        return b;
    if (c && is_text(c))
        return c;
    return a;
}

static int put_bool(Column *col, const Val *v) {
    if (v->kind == V_TRUE)
        return col_bool(col, 1);
    if (v->kind == V_FALSE)
        return col_bool(col, 0);
    return col_null(col);
}

/* A field as BIGINT: an integer literal that fits; 0 (NULL) otherwise. */
static int read_int(const Val *v, int64_t *out) {
    if (v->kind != V_NUM || !v->integer)
        return 0;
    const uint8_t *p = v->p, *e = v->p + v->n;
    int neg = *p == '-';
    p += neg;
    uint64_t x = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < e; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (x > (limit - d) / 10)
            return 0; /* does not fit in 64 bits */
        x = x * 10 + d;
    }
    *out = neg ? (int64_t)(0 - x) : (int64_t)x;
    return 1;
}

static int put_int(Column *col, const Val *v) {
    int64_t x;
    return read_int(v, &x) ? col_i64(col, x) : col_null(col);
}

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const uint8_t *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

/* A timestamp with an explicit zone, "YYYY-MM-DD(T| )HH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM)", as
 * microseconds since the epoch; 0 for any other text (the loader then casts the text in SQL, so
 * this only ever gives what that cast would, faster). */
static int parse_timestamp(const Val *v, int64_t *out) {
    if (v->kind != V_STR || v->escaped || v->n < 20)
        return 0;
    const uint8_t *p = v->p, *e = v->p + v->n;
    int y, mo, d, h, mi, sec;
    if (!digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' || !digits(p + 8, 2, &d)
        || (p[10] != 'T' && p[10] != ' ') || !digits(p + 11, 2, &h) || p[13] != ':'
        || !digits(p + 14, 2, &mi) || p[16] != ':' || !digits(p + 17, 2, &sec))
        return 0;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 || sec > 59)
        return 0;
    p += 19;
    int64_t micros = 0;
    if (p < e && *p == '.') {
        p++;
        int n = 0;
        while (p + n < e && p[n] >= '0' && p[n] <= '9')
            n++;
        if (n < 1 || n > 6)
            return 0;
        int frac;
        digits(p, n, &frac);
        micros = frac;
        for (int i = n; i < 6; i++)
            micros *= 10;
        p += n;
    }
    int64_t offset = 0;
    if (p < e && *p == 'Z') {
        p++;
    } else if (e - p == 6 && (*p == '+' || *p == '-') && p[3] == ':') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return 0;
        offset = (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
        p += 6;
    } else {
        return 0;
    }
    if (p != e)
        return 0;
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    *out = secs * 1000000 + micros;
    return 1;
}

/* Whether the line is an API request: an assistant line with usage, not an API error, not the
 * <synthetic> model (the loader's rule, on the same fields). */
static int is_request(Scanner *s) {
    const Val *type = &s->f[F_TYPE], *model = &s->f[F_MODEL];
    return type->kind == V_STR && json_string_equals(type->p, type->p + type->n, type->escaped, "assistant")
           && s->has_usage && s->f[F_API_ERROR].kind != V_TRUE
           && !(model->kind == V_STR && json_string_equals(model->p, model->p + model->n, model->escaped, "<synthetic>"));
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h ? h : 1;
}

/* Record row `idx` (a request line, not seen before in the run; `line_key` its key) in the scan's
 * requests: its key is requestId, else "msg:" + message.id, else "line:" + the line key. */
static int add_request(Scanner *s, int32_t idx, const uint8_t *line_key, size_t line_key_len, int64_t ts,
                       int ts_unread) {
    const Val *rid = &s->f[F_REQUEST_ID], *mid = &s->f[F_MSG_ID];
    size_t max = (is_text(rid) ? rid->n : is_text(mid) ? mid->n : line_key_len) + 16;
    if (buf_reserve(&s->req_keys, max))
        return -1;
    uint8_t *w = s->req_keys.p + s->req_keys.len;
    size_t k;
    if (is_text(rid)) {
        k = text_into(rid, w);
    } else if (is_text(mid)) {
        memcpy(w, "msg:", 4);
        k = 4 + text_into(mid, w + 4);
    } else {
        memcpy(w, "line:", 5);
        memcpy(w + 5, line_key, line_key_len);
        k = 5 + line_key_len;
    }
    int64_t total = 0, part;
    static const int parts[4] = {F_IN, F_OUT, F_CC, F_CR};
    for (int i = 0; i < 4; i++)
        if (read_int(&s->f[parts[i]], &part) && __builtin_add_overflow(total, part, &total))
            s->req_inexact = 1; /* SQL would fail to add these: leave the batch to it */
    if (ts_unread)
        s->req_inexact = 1; /* a timestamp only SQL's cast may read */
    int sidechain = s->f[F_SIDECHAIN].kind == V_TRUE;
    if (2 * (s->req_n + 1) > s->req_cap) {
        size_t cap = s->req_cap ? 2 * s->req_cap : 1024;
        Request *grown = calloc(cap, sizeof *grown);
        if (!grown)
            return -1;
        for (size_t i = 0; i < s->req_cap; i++) {
            if (!s->req[i].hash)
                continue;
            size_t j = (size_t)s->req[i].hash & (cap - 1);
            while (grown[j].hash)
                j = (j + 1) & (cap - 1);
            grown[j] = s->req[i];
        }
        free(s->req);
        s->req = grown;
        s->req_cap = cap;
    }
    uint64_t h = fnv1a(w, k);
    size_t j = (size_t)h & (s->req_cap - 1);
    for (; s->req[j].hash; j = (j + 1) & (s->req_cap - 1)) {
        Request *r = &s->req[j];
        if (r->hash != h || r->key_len != k || memcmp(s->req_keys.p + r->key, w, k) != 0)
            continue;
        /* rows come in file order, so a later row wins only on a strictly better rank */
        if (total > r->total || (total == r->total && (sidechain < r->sidechain
                                 || (sidechain == r->sidechain && ts < r->best_ts)))) {
            r->best = idx;
            r->total = total;
            r->sidechain = sidechain;
            r->best_ts = ts;
        }
        if (ts < r->first_ts)
            r->first_ts = ts;
        return 0;
    }
    s->req[j] = (Request){.hash = h, .key = s->req_keys.len, .key_len = k, .best = idx, .first = idx,
                          .total = total, .best_ts = ts, .sidechain = sidechain, .first_ts = ts};
    s->req_keys.len += k;
    s->req_n++;
    return 0;
}

int scanner_requests(Scanner *s, Table *lines) {
    Column *c = lines->cols;
    for (size_t i = 0; i < s->req_cap; i++) {
        const Request *r = &s->req[i];
        if (!r->hash)
            continue;
        col_set_bool(&c[L_REQ_BEST], r->best, 1);
        if (r->first_ts != INT64_MAX)
            col_set_i64(&c[L_REQ_FIRST_TS], r->best, r->first_ts);
        col_set_i32(&c[L_REQ_FIRST_IDX], r->best, r->first);
    }
    return s->req_inexact;
}

static int put_row(Scanner *s, Table *t, int status, const uint8_t *line, size_t n, int has_newline,
                   int32_t chunk, int64_t offset, const Origin *o, KeySet *seen, Table *blocks) {
    Column *c = t->cols;
    int32_t idx = (int32_t)t->n;
    int rc = col_i32(&c[L_IDX], idx) | col_i32(&c[L_CHUNK], chunk) | col_i64(&c[L_OFFSET], offset)
             | col_i32(&c[L_LENGTH], (int32_t)n) | col_i8(&c[L_STATUS], (int8_t)status)
             | (o->path ? col_str(&c[L_PATH], (const uint8_t *)o->path, o->path_len) : col_null(&c[L_PATH]))
             | col_i32(&c[L_GENERATION], o->generation) | col_i64(&c[L_BYTE_OFFSET], o->start + offset);
    if (status != ST_OK) {
        for (int i = L_TYPE; i < L_NCOLS; i++)
            rc |= col_null(&c[i]);
        t->n++;
        return rc;
    }
    Val *f = s->f;
    rc |= put_text(&c[L_TYPE], &f[F_TYPE]);
    rc |= put_text(&c[L_SUBTYPE], first_text(&f[F_ATT_TYPE], &f[F_SUBTYPE], &f[F_OPERATION]));
    rc |= put_text(&c[L_SESSION], first_text(&f[F_SESSIONID], &f[F_SESSION_ID], NULL));
    rc |= put_text(&c[L_UUID], &f[F_UUID]);
    rc |= put_text(&c[L_TIMESTAMP], &f[F_TIMESTAMP]);
    rc |= put_text(&c[L_AGENT], &f[F_AGENT]);
    rc |= put_text(&c[L_CWD], &f[F_CWD]);
    rc |= put_text(&c[L_BRANCH], &f[F_BRANCH]);
    rc |= put_text(&c[L_VERSION], &f[F_VERSION]);
    rc |= put_text(&c[L_ENTRYPOINT], &f[F_ENTRYPOINT]);
    rc |= put_text(&c[L_PROMPT_ID], &f[F_PROMPT_ID]);
    rc |= put_text(&c[L_REQUEST_ID], &f[F_REQUEST_ID]);
    rc |= put_text(&c[L_MESSAGE_ID], &f[F_MSG_ID]);
    rc |= put_text(&c[L_MODEL], &f[F_MODEL]);
    rc |= put_text(&c[L_SPEED], &f[F_SPEED]);
    rc |= put_text(&c[L_TIER], &f[F_TIER]);
    rc |= put_bool(&c[L_SIDECHAIN], &f[F_SIDECHAIN]);
    rc |= put_bool(&c[L_API_ERROR], &f[F_API_ERROR]);
    rc |= put_bool(&c[L_META], &f[F_META]);
    rc |= put_bool(&c[L_COMPACT], &f[F_COMPACT]);
    rc |= col_bool(&c[L_HAS_USAGE], s->has_usage);
    rc |= put_int(&c[L_IN], &f[F_IN]);
    rc |= put_int(&c[L_OUT], &f[F_OUT]);
    rc |= put_int(&c[L_CC], &f[F_CC]);
    rc |= put_int(&c[L_CR], &f[F_CR]);
    rc |= put_int(&c[L_5M], &f[F_5M]);
    rc |= put_int(&c[L_1H], &f[F_1H]);
    rc |= col_i8(&c[L_CONTENT_KIND], (int8_t)s->content_kind);
    const Val *content = &f[F_CONTENT];
    if (s->content_kind == CK_STRING)
        rc |= col_i64(&c[L_PROMPT_CHARS], json_string_chars(content->p, content->p + content->n));
    else
        rc |= col_null(&c[L_PROMPT_CHARS]);
    rc |= col_bool(&c[L_HAS_TOOL_RESULT], s->has_tool_result);
    if (s->capture)
        rc |= col_str(&c[L_RAW], line, n);
    else
        rc |= col_str(&c[L_RAW], s->out.p, s->out.len);
    /* The line key: "<session>:<uuid>", or "<session>:h:<md5 of the line, newline included>". */
    const Val *session = first_text(&f[F_SESSIONID], &f[F_SESSION_ID], NULL);
    const Val *uuid = &f[F_UUID];
    uint8_t *w = col_str_begin(&c[L_LINE_KEY], (size_t)session->n + (size_t)uuid->n + 48);
    int again = 0;
    size_t k = 0;
    if (!w) {
        rc = -1;
    } else {
        k = is_text(session) ? text_into(session, w) : 0;
        w[k++] = ':';
        if (is_text(uuid)) {
            k += text_into(uuid, w + k);
        } else {
            w[k++] = 'h';
            w[k++] = ':';
            md5_hex(line, n + (has_newline ? 1 : 0), (char *)w + k);
            k += 32;
        }
        rc |= col_str_end(&c[L_LINE_KEY], k);
        again = keyset_add(seen, w, k); /* the key's bytes stay at w: only the offsets moved on */
        if (again < 0)
            rc = -1;
    }
    if (s->capture && s->content_kind == CK_STRING)
        rc |= put_text(&c[L_PROMPT_TEXT], content);
    else
        rc |= col_null(&c[L_PROMPT_TEXT]);
    rc |= col_bool(&c[L_SEEN], again > 0);
    int64_t ts;
    int has_ts = parse_timestamp(&f[F_TIMESTAMP], &ts);
    rc |= has_ts ? col_i64(&c[L_TS], ts) : col_null(&c[L_TS]);
    rc |= col_bool(&c[L_REQ_BEST], 0) | col_null(&c[L_REQ_FIRST_TS]) | col_null(&c[L_REQ_FIRST_IDX]);
    if (again == 0 && rc == 0 && is_request(s))
        rc |= add_request(s, idx, w, k, has_ts ? ts : INT64_MAX, !has_ts && is_text(&f[F_TIMESTAMP]));
    t->n++;

    const Block *blk = (const Block *)s->blocks.p;
    size_t nb = s->blocks.len / sizeof(Block);
    for (size_t i = 0; i < nb; i++) {
        Column *b = blocks->cols;
        rc |= col_i32(&b[B_LINE], idx) | col_i8(&b[B_KIND], (int8_t)blk[i].kind);
        rc |= put_text(&b[B_ID], &blk[i].id);
        rc |= put_text(&b[B_NAME], &blk[i].name);
        rc |= put_bool(&b[B_IS_ERROR], &blk[i].is_error);
        blocks->n++;
    }
    return rc ? -1 : 0;
}

/* ---- a line ----------------------------------------------------------------------------------- */

static void reset(Scanner *s, const uint8_t *e) {
    s->e = e;
    s->out.len = 0;
    s->blocks.len = 0;
    s->stack.len = 0;
    memset(s->f, 0, sizeof s->f);
    s->has_usage = s->content_kind = s->has_tool_result = 0;
    s->seen_message = s->seen_attachment = s->seen_usage = s->seen_cc = s->seen_content = 0;
}

static int classify(Scanner *s, const uint8_t *line, const uint8_t *e) {
    const uint8_t *p = json_ws(line, e);
    if (p == e)
        return ST_BLANK;
    reset(s, e);
    if (*p == '{') {
        Ctx top = {.keep = 1, .emit = !s->capture, .first = 1};
        if (top.emit)
            out_byte(s, '{');
        p = read_object(s, p, TOP_KEYS, on_top, &top);
        if (top.emit)
            out_byte(s, '}');
        if (s->oom)
            return ST_NOMEM;
        if (p && json_ws(p, e) == e)
            return ST_OK;
    } else {
        p = skip(s, p);
        if (p && json_ws(p, e) == e)
            return ST_NOT_OBJECT;
    }
    if (s->oom)
        return ST_NOMEM;
    return utf8_valid(line, e) ? ST_BAD_JSON : ST_BAD_UTF8;
}

int scan_line(Scanner *s, const uint8_t *p, size_t n, int has_newline, int32_t chunk, int64_t offset,
              const Origin *origin, KeySet *seen, Table *lines, Table *blocks) {
    s->oom = 0;
    int status = classify(s, p, p + n);
    if (status == ST_BLANK || status == ST_NOMEM)
        return status;
    if (put_row(s, lines, status, p, n, has_newline, chunk, offset, origin, seen, blocks))
        return ST_NOMEM;
    return status;
}
