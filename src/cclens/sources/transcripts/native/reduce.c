/* A scan's share of the model (see reduce.h): row filters of the lines and blocks, and per-session
 * aggregates, by the rules of load.py's per-batch SQL. */
#include "reduce.h"

#include <stdlib.h>
#include <string.h>

#include "envelope.h"

/* ---- reading a finished column ---------------------------------------------------------------- */

static inline int valid(const Column *c, int64_t r) { return (c->valid.p[r >> 3] >> (r & 7)) & 1; }

static inline int bit(const Column *c, int64_t r) { return (c->values.p[r >> 3] >> (r & 7)) & 1; }

/* A boolean as SQL's coalesce(x, false) reads it. */
static inline int truthy(const Column *c, int64_t r) { return valid(c, r) && bit(c, r); }

static inline int64_t i64_at(const Column *c, int64_t r) {
    int64_t v;
    memcpy(&v, c->values.p + 8 * r, 8);
    return v;
}

static inline int32_t i32_at(const Column *c, int64_t r) {
    int32_t v;
    memcpy(&v, c->values.p + 4 * r, 4);
    return v;
}

static inline int8_t i8_at(const Column *c, int64_t r) { return (int8_t)c->values.p[r]; }

static inline const uint8_t *str_at(const Column *c, int64_t r, size_t *n) {
    int32_t a, b;
    memcpy(&a, c->offsets.p + 4 * r, 4);
    memcpy(&b, c->offsets.p + 4 * (r + 1), 4);
    *n = (size_t)(b - a);
    return c->data.p + a;
}

/* A valid text equal to `lit`. */
static int str_is(const Column *c, int64_t r, const char *lit) {
    if (!valid(c, r))
        return 0;
    size_t n, m = strlen(lit);
    const uint8_t *p = str_at(c, r, &n);
    return n == m && memcmp(p, lit, m) == 0;
}

/* Byte order, as DuckDB compares VARCHAR: the common prefix, then the shorter first. */
static int str_cmp(const Column *c, int64_t a, int64_t b) {
    size_t na, nb;
    const uint8_t *pa = str_at(c, a, &na), *pb = str_at(c, b, &nb);
    int d = memcmp(pa, pb, na < nb ? na : nb);
    return d ? d : (na < nb ? -1 : na > nb);
}

/* Append row `r` of `src` to `dst` (same type), NULL as NULL. */
static int copy_cell(Column *dst, const Column *src, int64_t r) {
    if (!valid(src, r))
        return col_null(dst);
    switch (src->type) {
    case COL_UTF8: {
        size_t n;
        const uint8_t *p = str_at(src, r, &n);
        return col_str(dst, p, n);
    }
    case COL_I64:
    case COL_TS: return col_i64(dst, i64_at(src, r));
    case COL_I32: return col_i32(dst, i32_at(src, r));
    case COL_BOOL: return col_bool(dst, bit(src, r));
    default: return col_i8(dst, i8_at(src, r));
    }
}

/* ---- the tables --------------------------------------------------------------------------------- */

/* T_REQ: the line columns the request part reads, then the first line's origin. */
static const int REQ_SRC[] = {
    L_IDX, L_REQUEST_ID, L_MESSAGE_ID, L_LINE_KEY, L_REQ_FIRST_TS, L_IN, L_OUT, L_CC, L_CR, L_SIDECHAIN, L_TS,
    L_PATH, L_BYTE_OFFSET, L_SESSION, L_AGENT, L_MODEL, L_5M, L_1H, L_SPEED, L_TIER, L_CWD, L_BRANCH,
    L_VERSION, L_PROMPT_ID,
};
#define REQ_N ((int)(sizeof REQ_SRC / sizeof REQ_SRC[0]))
static const int PROMPT_SRC[] = {L_PROMPT_ID, L_UUID, L_SESSION, L_TS, L_PROMPT_CHARS, L_PROMPT_TEXT, L_PATH,
                                 L_BYTE_OFFSET};
#define PROMPT_N ((int)(sizeof PROMPT_SRC / sizeof PROMPT_SRC[0]))
/* T_TOOLS: the block's id and name, then these line columns. */
static const int TOOL_LINE_SRC[] = {L_SESSION, L_REQUEST_ID, L_MESSAGE_ID, L_AGENT, L_TS, L_PATH, L_BYTE_OFFSET};
#define TOOL_LINE_N ((int)(sizeof TOOL_LINE_SRC / sizeof TOOL_LINE_SRC[0]))

enum { S_SESSION, S_FIRST_TS, S_LAST_TS, S_CWD, S_CWD_TS, S_BRANCH, S_BRANCH_TS, S_VERSION, S_ENTRYPOINT,
       S_ENTRYPOINT_TS, S_PATH, S_LINES, S_NCOLS };
static const char *const SESSION_NAMES[S_NCOLS] = {
    "session_id", "first_ts", "last_ts", "cwd", "cwd_ts", "git_branch", "branch_ts", "version", "entrypoint",
    "entrypoint_ts", "transcript_path", "lines",
};
static const ColType SESSION_TYPES[S_NCOLS] = {
    COL_UTF8, COL_TS, COL_TS, COL_UTF8, COL_TS, COL_UTF8, COL_TS, COL_UTF8, COL_UTF8, COL_TS, COL_UTF8, COL_I64,
};

static int init_from_lines(Table *t, const int *src, int n, const char *const *extra_names,
                           const ColType *extra_types, int extra) {
    const char *names[32];
    ColType types[32];
    int k = 0;
    for (int i = 0; i < extra; i++, k++) {
        names[k] = extra_names[i];
        types[k] = extra_types[i];
    }
    for (int i = 0; i < n; i++, k++) {
        names[k] = LINE_NAMES[src[i]];
        types[k] = LINE_TYPES[src[i]];
    }
    return table_init(t, names, types, k);
}

int reduce_init(Table *tables) {
    static const char *const req_extra[] = {"first_path", "first_offset"};
    static const ColType req_extra_types[] = {COL_UTF8, COL_I64};
    static const char *const tool_extra[] = {"id", "name"};
    static const ColType tool_extra_types[] = {COL_UTF8, COL_UTF8};
    static const char *const result_names[] = {"id", "is_error", "ts"};
    static const ColType result_types[] = {COL_UTF8, COL_BOOL, COL_TS};
    static const char *const agent_names[] = {"session_id", "agent_id"};
    static const char *const prompt_names[] = {"session_id", "prompt_id"};
    static const ColType pair_types[] = {COL_UTF8, COL_UTF8};
    /* REQ's extra columns go last: build the name list by hand */
    const char *names[32];
    ColType types[32];
    for (int i = 0; i < REQ_N; i++) {
        names[i] = LINE_NAMES[REQ_SRC[i]];
        types[i] = LINE_TYPES[REQ_SRC[i]];
    }
    for (int i = 0; i < 2; i++) {
        names[REQ_N + i] = req_extra[i];
        types[REQ_N + i] = req_extra_types[i];
    }
    if (table_init(&tables[T_REQ], names, types, REQ_N + 2))
        return -1;
    if (init_from_lines(&tables[T_PROMPTS], PROMPT_SRC, PROMPT_N, NULL, NULL, 0)
        || init_from_lines(&tables[T_TOOLS], TOOL_LINE_SRC, TOOL_LINE_N, tool_extra, tool_extra_types, 2)
        || table_init(&tables[T_RESULTS], result_names, result_types, 3)
        || table_init(&tables[T_SESSIONS], SESSION_NAMES, SESSION_TYPES, S_NCOLS)
        || table_init(&tables[T_AGENTS], agent_names, pair_types, 2)
        || table_init(&tables[T_SESSION_PROMPTS], prompt_names, pair_types, 2))
        return -1;
    return 0;
}

/* ---- a map from byte strings (a session, a pair) to a slot ------------------------------------ */

typedef struct {
    uint64_t *hash;  /* 0: empty */
    uint32_t *value; /* index into the caller's array */
    Buf keys;        /* the keys' bytes, each prefixed by its length (uint32) */
    uint32_t *key_at;
    size_t cap, n;
} StrMap;

static uint64_t fnv(const uint8_t *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void map_free(StrMap *m) {
    free(m->hash);
    free(m->value);
    free(m->key_at);
    buf_free(&m->keys);
    memset(m, 0, sizeof *m);
}

static int map_grow(StrMap *m) {
    size_t cap = m->cap ? 2 * m->cap : 256;
    uint64_t *hash = calloc(cap, sizeof *hash);
    uint32_t *value = calloc(cap, sizeof *value), *key_at = calloc(cap, sizeof *key_at);
    if (!hash || !value || !key_at) {
        free(hash);
        free(value);
        free(key_at);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->hash[i])
            continue;
        size_t j = (size_t)m->hash[i] & (cap - 1);
        while (hash[j])
            j = (j + 1) & (cap - 1);
        hash[j] = m->hash[i];
        value[j] = m->value[i];
        key_at[j] = m->key_at[i];
    }
    free(m->hash);
    free(m->value);
    free(m->key_at);
    m->hash = hash;
    m->value = value;
    m->key_at = key_at;
    m->cap = cap;
    return 0;
}

/* The slot of the key made of `a` and, when `b` is not NULL, `b` (a pair: both lengths are part of
 * the key). *added says whether it is new; its value is then `next`. Returns the value, or -1 on OOM. */
static int64_t map_get(StrMap *m, const uint8_t *a, size_t an, const uint8_t *b, size_t bn, int pair,
                       uint32_t next, int *added) {
    if (2 * (m->n + 1) > m->cap && map_grow(m))
        return -1;
    uint32_t la = (uint32_t)an, lb = (uint32_t)bn;
    uint64_t h = fnv(a, an, 0xcbf29ce484222325ULL ^ an);
    if (pair)
        h = fnv(b, bn, h ^ (0x9e3779b97f4a7c15ULL * (bn + 1)));
    if (!h)
        h = 1;
    size_t need = 4 + an + (pair ? 4 + bn : 0);
    size_t j = (size_t)h & (m->cap - 1);
    for (; m->hash[j]; j = (j + 1) & (m->cap - 1)) {
        if (m->hash[j] != h)
            continue;
        const uint8_t *k = m->keys.p + m->key_at[j];
        uint32_t ka;
        memcpy(&ka, k, 4);
        if (ka != la || memcmp(k + 4, a, an) != 0)
            continue;
        if (pair) {
            uint32_t kb;
            memcpy(&kb, k + 4 + an, 4);
            if (kb != lb || memcmp(k + 8 + an, b, bn) != 0)
                continue;
        }
        *added = 0;
        return m->value[j];
    }
    if (buf_reserve(&m->keys, need))
        return -1;
    uint8_t *w = m->keys.p + m->keys.len;
    memcpy(w, &la, 4);
    memcpy(w + 4, a, an);
    if (pair) {
        memcpy(w + 4 + an, &lb, 4);
        memcpy(w + 8 + an, b, bn);
    }
    m->hash[j] = h;
    m->value[j] = next;
    m->key_at[j] = (uint32_t)m->keys.len;
    m->keys.len += need;
    m->n++;
    *added = 1;
    return next;
}

/* ---- per-session aggregates --------------------------------------------------------------------- */

typedef struct {
    int64_t key_row;                 /* a row with the session's id */
    int64_t first_ts, last_ts;       /* INT64_MAX / INT64_MIN: none */
    int64_t cwd_row, cwd_ts;         /* arg_min(cwd, ts) and min(ts) over rows with a cwd and a ts */
    int64_t branch_row, branch_ts;   /* arg_max(git_branch, ts), max(ts) */
    int64_t version_row;             /* max(version) */
    int64_t entry_row, entry_ts;     /* arg_min(entrypoint, ts), min(ts) */
    int64_t path_row;                /* min(path) over main-chain lines (no agent, not sidechain) */
    int64_t lines;
} Agg;

static int put_ts(Column *c, int64_t v, int has) { return has ? col_i64(c, v) : col_null(c); }

static int put_row_of(Column *dst, const Column *src, int64_t r) { return r < 0 ? col_null(dst) : copy_cell(dst, src, r); }

static int emit_sessions(Table *out, const Table *lines, const Agg *agg, size_t n) {
    const Column *c = lines->cols;
    Column *o = out->cols;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const Agg *a = &agg[i];
        rc |= copy_cell(&o[S_SESSION], &c[L_SESSION], a->key_row);
        rc |= put_ts(&o[S_FIRST_TS], a->first_ts, a->first_ts != INT64_MAX);
        rc |= put_ts(&o[S_LAST_TS], a->last_ts, a->last_ts != INT64_MIN);
        rc |= put_row_of(&o[S_CWD], &c[L_CWD], a->cwd_row);
        rc |= put_ts(&o[S_CWD_TS], a->cwd_ts, a->cwd_row >= 0);
        rc |= put_row_of(&o[S_BRANCH], &c[L_BRANCH], a->branch_row);
        rc |= put_ts(&o[S_BRANCH_TS], a->branch_ts, a->branch_row >= 0);
        rc |= put_row_of(&o[S_VERSION], &c[L_VERSION], a->version_row);
        rc |= put_row_of(&o[S_ENTRYPOINT], &c[L_ENTRYPOINT], a->entry_row);
        rc |= put_ts(&o[S_ENTRYPOINT_TS], a->entry_ts, a->entry_row >= 0);
        rc |= put_row_of(&o[S_PATH], &c[L_PATH], a->path_row);
        rc |= col_i64(&o[S_LINES], a->lines);
        out->n++;
    }
    return rc ? -1 : 0;
}

static void aggregate(Agg *a, const Column *c, int64_t r) {
    a->lines++;
    int has_ts = valid(&c[L_TS], r);
    int64_t ts = has_ts ? i64_at(&c[L_TS], r) : 0;
    if (has_ts) {
        if (ts < a->first_ts)
            a->first_ts = ts;
        if (ts > a->last_ts)
            a->last_ts = ts;
        /* strictly better only: of equal timestamps the first row wins, as DuckDB's arg_min does */
        if (valid(&c[L_CWD], r) && (a->cwd_row < 0 || ts < a->cwd_ts)) {
            a->cwd_row = r;
            a->cwd_ts = ts;
        }
        if (valid(&c[L_BRANCH], r) && (a->branch_row < 0 || ts > a->branch_ts)) {
            a->branch_row = r;
            a->branch_ts = ts;
        }
        if (valid(&c[L_ENTRYPOINT], r) && (a->entry_row < 0 || ts < a->entry_ts)) {
            a->entry_row = r;
            a->entry_ts = ts;
        }
    }
    if (valid(&c[L_VERSION], r) && (a->version_row < 0 || str_cmp(&c[L_VERSION], r, a->version_row) > 0))
        a->version_row = r;
    if (!valid(&c[L_AGENT], r) && !truthy(&c[L_SIDECHAIN], r) && valid(&c[L_PATH], r)
        && (a->path_row < 0 || str_cmp(&c[L_PATH], r, a->path_row) < 0))
        a->path_row = r;
}

/* ---- the scan's parts ------------------------------------------------------------------------- */

static inline int is_new(const Column *c, int64_t r) { return i8_at(&c[L_STATUS], r) == 0 && !bit(&c[L_SEEN], r); }

static int copy_row(Table *out, int first_col, const Column *src, const int *cols, int n, int64_t r) {
    int rc = 0;
    for (int i = 0; i < n; i++)
        rc |= copy_cell(&out->cols[first_col + i], &src[cols[i]], r);
    return rc;
}

static int add_pair(StrMap *seen, Table *out, const Column *a, const Column *b, int64_t r) {
    size_t an, bn;
    const uint8_t *pa = str_at(a, r, &an), *pb = str_at(b, r, &bn);
    int added;
    if (map_get(seen, pa, an, pb, bn, 1, 0, &added) < 0)
        return -1;
    if (!added)
        return 0;
    int rc = col_str(&out->cols[0], pa, an) | col_str(&out->cols[1], pb, bn);
    out->n++;
    return rc;
}

int reduce_parts(Table *tables, int *ts_exact) {
    const Table *lines = &tables[T_LINES], *blocks = &tables[T_BLOCKS];
    const Column *c = lines->cols, *b = blocks->cols;
    Table *req = &tables[T_REQ], *prompts = &tables[T_PROMPTS], *tools = &tables[T_TOOLS];
    Table *results = &tables[T_RESULTS];
    StrMap sessions = {0}, agents = {0}, session_prompts = {0};
    Agg *agg = NULL;
    size_t nagg = 0, cap_agg = 0;
    int rc = 0;
    *ts_exact = 1;
    for (int64_t r = 0; r < lines->n && rc == 0; r++) {
        if (!is_new(c, r))
            continue;
        if (valid(&c[L_TIMESTAMP], r) && !valid(&c[L_TS], r))
            *ts_exact = 0;
        if (truthy(&c[L_REQ_BEST], r)) {
            rc |= copy_row(req, 0, c, REQ_SRC, REQ_N, r);
            int64_t first = valid(&c[L_REQ_FIRST_IDX], r) ? i32_at(&c[L_REQ_FIRST_IDX], r) : r;
            rc |= copy_cell(&req->cols[REQ_N], &c[L_PATH], first);
            rc |= copy_cell(&req->cols[REQ_N + 1], &c[L_BYTE_OFFSET], first);
            req->n++;
        }
        int user = str_is(&c[L_TYPE], r, "user");
        if (user && !truthy(&c[L_META], r) && !truthy(&c[L_COMPACT], r)
            && (valid(&c[L_PROMPT_ID], r) || valid(&c[L_UUID], r)) && valid(&c[L_CONTENT_KIND], r)
            && (i8_at(&c[L_CONTENT_KIND], r) == 1 || i8_at(&c[L_CONTENT_KIND], r) == 2)
            && valid(&c[L_HAS_TOOL_RESULT], r) && !bit(&c[L_HAS_TOOL_RESULT], r)) {
            rc |= copy_row(prompts, 0, c, PROMPT_SRC, PROMPT_N, r);
            prompts->n++;
        }
        if (!valid(&c[L_SESSION], r))
            continue;
        size_t sn;
        const uint8_t *sp = str_at(&c[L_SESSION], r, &sn);
        int added;
        int64_t slot = map_get(&sessions, sp, sn, NULL, 0, 0, (uint32_t)nagg, &added);
        if (slot < 0) {
            rc = -1;
            break;
        }
        if (added) {
            if (nagg == cap_agg) {
                size_t cap = cap_agg ? 2 * cap_agg : 64;
                Agg *grown = realloc(agg, cap * sizeof *grown);
                if (!grown) {
                    rc = -1;
                    break;
                }
                agg = grown;
                cap_agg = cap;
            }
            agg[nagg++] = (Agg){.key_row = r, .first_ts = INT64_MAX, .last_ts = INT64_MIN, .cwd_row = -1,
                                .branch_row = -1, .version_row = -1, .entry_row = -1, .path_row = -1};
        }
        aggregate(&agg[slot], c, r);
        if (valid(&c[L_AGENT], r))
            rc |= add_pair(&agents, &tables[T_AGENTS], &c[L_SESSION], &c[L_AGENT], r);
        if (user && valid(&c[L_PROMPT_ID], r))
            rc |= add_pair(&session_prompts, &tables[T_SESSION_PROMPTS], &c[L_SESSION], &c[L_PROMPT_ID], r);
    }
    for (int64_t i = 0; i < blocks->n && rc == 0; i++) {
        int8_t kind = i8_at(&b[B_KIND], i);
        int64_t r = i32_at(&b[B_LINE], i);
        if ((kind != 1 && kind != 2) || !valid(&b[B_ID], i) || !is_new(c, r))
            continue;
        if (kind == 1 && str_is(&c[L_TYPE], r, "assistant")) {
            rc |= copy_cell(&tools->cols[0], &b[B_ID], i) | copy_cell(&tools->cols[1], &b[B_NAME], i);
            rc |= copy_row(tools, 2, c, TOOL_LINE_SRC, TOOL_LINE_N, r);
            tools->n++;
        } else if (kind == 2 && str_is(&c[L_TYPE], r, "user")) {
            rc |= copy_cell(&results->cols[0], &b[B_ID], i) | copy_cell(&results->cols[1], &b[B_IS_ERROR], i);
            rc |= copy_cell(&results->cols[2], &c[L_TS], r);
            results->n++;
        }
    }
    if (rc == 0)
        rc = emit_sessions(&tables[T_SESSIONS], lines, agg, nagg);
    free(agg);
    map_free(&sessions);
    map_free(&agents);
    map_free(&session_prompts);
    return rc ? -1 : 0;
}
