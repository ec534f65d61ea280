/* Growable columns and their Arrow C stream export (see columns.h). */
#include "columns.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "arrow_c.h"

/* ---- buffers ---------------------------------------------------------------------------------- */

int buf_grow(Buf *b, size_t extra) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

void buf_free(Buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- columns ---------------------------------------------------------------------------------- */

/* Make room for one more row's validity bit and set it. */
static inline int set_valid(Column *c, int valid) {
    if ((c->n & 7) == 0) { /* a new byte of the bitmap */
        if (buf_reserve(&c->valid, 1))
            return -1;
        c->valid.p[c->valid.len++] = 0;
    }
    if (valid)
        c->valid.p[c->n / 8] |= (uint8_t)(1u << (c->n % 8));
    else
        c->nulls++;
    return 0;
}

static inline int push_fixed(Column *c, const void *v, size_t width) {
    if (buf_reserve(&c->values, width))
        return -1;
    memcpy(c->values.p + c->values.len, v, width);
    c->values.len += width;
    return 0;
}

static inline int push_offset(Column *c) {
    if (c->data.len > INT32_MAX)
        return -1;
    int32_t off = (int32_t)c->data.len;
    if (buf_reserve(&c->offsets, sizeof off))
        return -1;
    memcpy(c->offsets.p + c->offsets.len, &off, sizeof off);
    c->offsets.len += sizeof off;
    return 0;
}

static inline int push_bit(Column *c, int v) {
    if ((c->n & 7) == 0) {
        if (buf_reserve(&c->values, 1))
            return -1;
        c->values.p[c->values.len++] = 0;
    }
    if (v)
        c->values.p[c->n / 8] |= (uint8_t)(1u << (c->n % 8));
    return 0;
}

int col_null(Column *c) {
    static const int64_t zero = 0;
    int rc;
    switch (c->type) {
    case COL_UTF8: rc = push_offset(c); break;
    case COL_BOOL: rc = push_bit(c, 0); break;
    case COL_I64:
    case COL_TS: rc = push_fixed(c, &zero, 8); break;
    case COL_I32: rc = push_fixed(c, &zero, 4); break;
    default: rc = push_fixed(c, &zero, 1); break;
    }
    if (rc || set_valid(c, 0))
        return -1;
    c->n++;
    return 0;
}

int col_i64(Column *c, int64_t v) {
    if (push_fixed(c, &v, sizeof v) || set_valid(c, 1))
        return -1;
    c->n++;
    return 0;
}

int col_i32(Column *c, int32_t v) {
    if (push_fixed(c, &v, sizeof v) || set_valid(c, 1))
        return -1;
    c->n++;
    return 0;
}

int col_i8(Column *c, int8_t v) {
    if (push_fixed(c, &v, sizeof v) || set_valid(c, 1))
        return -1;
    c->n++;
    return 0;
}

int col_bool(Column *c, int v) {
    if (push_bit(c, v) || set_valid(c, 1))
        return -1;
    c->n++;
    return 0;
}

uint8_t *col_str_begin(Column *c, size_t max) {
    if (buf_reserve(&c->data, max))
        return NULL;
    return c->data.p + c->data.len;
}

int col_str_end(Column *c, size_t n) {
    c->data.len += n;
    if (push_offset(c) || set_valid(c, 1))
        return -1;
    c->n++;
    return 0;
}

static void set_bit(Buf *b, int64_t row, int v) {
    if (v)
        b->p[row / 8] |= (uint8_t)(1u << (row % 8));
    else
        b->p[row / 8] &= (uint8_t)~(1u << (row % 8));
}

static void set_valid_at(Column *c, int64_t row) {
    if (!(c->valid.p[row / 8] & (1u << (row % 8)))) {
        set_bit(&c->valid, row, 1);
        c->nulls--;
    }
}

void col_set_bool(Column *c, int64_t row, int v) {
    set_bit(&c->values, row, v);
    set_valid_at(c, row);
}

void col_set_i64(Column *c, int64_t row, int64_t v) {
    memcpy(c->values.p + 8 * row, &v, 8);
    set_valid_at(c, row);
}

void col_set_i32(Column *c, int64_t row, int32_t v) {
    memcpy(c->values.p + 4 * row, &v, 4);
    set_valid_at(c, row);
}

int col_str(Column *c, const uint8_t *p, size_t n) {
    uint8_t *w = col_str_begin(c, n);
    if (!w)
        return -1;
    if (n)
        memcpy(w, p, n);
    return col_str_end(c, n);
}

int table_init(Table *t, const char *const *names, const ColType *types, int ncols) {
    t->cols = calloc((size_t)ncols, sizeof(Column));
    if (!t->cols)
        return -1;
    t->ncols = ncols;
    t->n = 0;
    for (int i = 0; i < ncols; i++) {
        Column *c = &t->cols[i];
        c->name = names[i];
        c->type = types[i];
        /* Every buffer exists even for zero rows; utf8 starts with its first offset. */
        if (buf_reserve(&c->valid, 8) || buf_reserve(&c->values, 8) || buf_reserve(&c->data, 8))
            return -1;
        if (c->type == COL_UTF8 && push_offset(c))
            return -1;
    }
    return 0;
}

void table_free(Table *t) {
    for (int i = 0; i < t->ncols; i++) {
        Column *c = &t->cols[i];
        buf_free(&c->valid);
        buf_free(&c->values);
        buf_free(&c->offsets);
        buf_free(&c->data);
    }
    free(t->cols);
    t->cols = NULL;
    t->ncols = 0;
}

Column *table_col(Table *t, const char *name) {
    for (int i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

/* ---- owner ------------------------------------------------------------------------------------ */

static atomic_long live_owners;

long owners_alive(void) { return atomic_load(&live_owners); }

Owner *owner_new(void) {
    Owner *o = calloc(1, sizeof *o);
    if (o) {
        atomic_init(&o->refs, 1);
        atomic_fetch_add(&live_owners, 1);
    }
    return o;
}

void owner_incref(Owner *o) { atomic_fetch_add(&o->refs, 1); }

static void poison_column(Column *c) {
    memset(c->valid.p, 0x5A, c->valid.cap);
    memset(c->values.p, 0x5A, c->values.cap);
    memset(c->offsets.p, 0x5A, c->offsets.cap);
    memset(c->data.p, 0x5A, c->data.cap);
}

int column_clear(Column *c, int poison) {
    if (poison)
        poison_column(c);
    size_t bits = (size_t)(c->n / 8) + 1;
    size_t width = (c->type == COL_I64 || c->type == COL_TS) ? 8 : c->type == COL_I32 ? 4 : 1;
    size_t values = c->type == COL_BOOL ? bits : c->type == COL_UTF8 ? 8 : (size_t)c->n * width + 8;
    Buf valid = {calloc(bits, 1), bits, bits};
    Buf vals = {calloc(values, 1), values, values};
    Buf offsets = {0}, data = {0};
    if (c->type == COL_UTF8) {
        size_t n = ((size_t)c->n + 1) * sizeof(int32_t);
        offsets = (Buf){calloc(n, 1), n, n};
        data = (Buf){calloc(8, 1), 0, 8};
    }
    if (!valid.p || !vals.p || (c->type == COL_UTF8 && (!offsets.p || !data.p))) {
        free(valid.p);
        free(vals.p);
        free(offsets.p);
        free(data.p);
        return -1;
    }
    buf_free(&c->valid);
    buf_free(&c->values);
    buf_free(&c->offsets);
    buf_free(&c->data);
    c->valid = valid;
    c->values = vals;
    c->offsets = offsets;
    c->data = data;
    c->nulls = c->n;
    return 0;
}

void owner_release(Owner *o, int poison) {
    if (o->released)
        return;
    for (int i = 0; i < o->ntables; i++) {
        Table *t = &o->tables[i];
        for (int j = 0; poison && j < t->ncols; j++)
            poison_column(&t->cols[j]);
        table_free(t);
    }
    o->released = 1;
}

void owner_decref(Owner *o) {
    if (atomic_fetch_sub(&o->refs, 1) == 1) {
        for (int i = 0; i < o->ntables && !o->released; i++)
            table_free(&o->tables[i]);
        free(o);
        atomic_fetch_sub(&live_owners, 1);
    }
}

/* ---- Arrow export ----------------------------------------------------------------------------- */

/* Arrow's metadata encoding: int32 pair count, then (int32 length, bytes) for each key and value. */
static const char JSON_METADATA[] =
    "\x02\x00\x00\x00"
    "\x14\x00\x00\x00" "ARROW:extension:name"
    "\x0a\x00\x00\x00" "arrow.json"
    "\x18\x00\x00\x00" "ARROW:extension:metadata"
    "\x00\x00\x00\x00";

static const char *format_of(ColType t) {
    switch (t) {
    case COL_UTF8: return "u";
    case COL_I64: return "l";
    case COL_I32: return "i";
    case COL_I8: return "c";
    case COL_TS: return "tsu:UTC";
    default: return "b";
    }
}

static void release_schema(struct ArrowSchema *s) {
    for (int64_t i = 0; i < s->n_children; i++) {
        struct ArrowSchema *ch = s->children[i];
        if (ch->release)
            ch->release(ch);
        free(ch);
    }
    free(s->children);
    s->release = NULL;
}

static void release_child_schema(struct ArrowSchema *s) { s->release = NULL; }

typedef struct {
    Owner *owner;
    const void *buffers[3];
} ArrayPrivate;

static void release_child_array(struct ArrowArray *a) {
    ArrayPrivate *priv = a->private_data;
    owner_decref(priv->owner);
    free(priv);
    a->release = NULL;
}

static void release_array(struct ArrowArray *a) {
    for (int64_t i = 0; i < a->n_children; i++) {
        struct ArrowArray *ch = a->children[i];
        if (ch->release)
            ch->release(ch);
        free(ch);
    }
    free(a->children);
    release_child_array(a);
}

typedef struct {
    Owner *owner;
    int index;
    int64_t next;       /* first row of the next batch */
    int64_t batch_rows; /* rows per batch; 0: the whole table in one */
    int done;
} StreamPrivate;

static int stream_get_schema(struct ArrowArrayStream *st, struct ArrowSchema *out) {
    StreamPrivate *sp = st->private_data;
    Table *t = &sp->owner->tables[sp->index];
    memset(out, 0, sizeof *out);
    out->format = "+s";
    out->name = "";
    out->n_children = t->ncols;
    out->children = calloc((size_t)t->ncols, sizeof(struct ArrowSchema *));
    if (!out->children)
        return 12; /* ENOMEM */
    out->release = release_schema;
    for (int i = 0; i < t->ncols; i++) {
        struct ArrowSchema *ch = calloc(1, sizeof *ch);
        if (!ch) {
            out->n_children = i;
            release_schema(out);
            return 12;
        }
        ch->format = format_of(t->cols[i].type);
        ch->name = t->cols[i].name;
        ch->metadata = t->cols[i].json ? JSON_METADATA : NULL;
        ch->flags = ARROW_FLAG_NULLABLE;
        ch->release = release_child_schema;
        out->children[i] = ch;
    }
    return 0;
}

static int fill_child(Owner *o, Column *c, int64_t start, int64_t rows, struct ArrowArray *out) {
    ArrayPrivate *priv = calloc(1, sizeof *priv);
    if (!priv)
        return -1;
    priv->owner = o;
    owner_incref(o);
    memset(out, 0, sizeof *out);
    out->length = rows;
    out->offset = start;
    /* a slice's nulls are not counted (the spec allows -1: unknown); the whole column's are */
    out->null_count = c->nulls == 0 ? 0 : (start == 0 && rows == c->n ? c->nulls : -1);
    priv->buffers[0] = c->nulls ? c->valid.p : NULL;
    if (c->type == COL_UTF8) {
        out->n_buffers = 3;
        priv->buffers[1] = c->offsets.p;
        priv->buffers[2] = c->data.p;
    } else {
        out->n_buffers = 2;
        priv->buffers[1] = c->values.p;
    }
    out->buffers = priv->buffers;
    out->private_data = priv;
    out->release = release_child_array;
    return 0;
}

static int stream_get_next(struct ArrowArrayStream *st, struct ArrowArray *out) {
    StreamPrivate *sp = st->private_data;
    memset(out, 0, sizeof *out);
    Table *t = &sp->owner->tables[sp->index];
    if (sp->done || (sp->next >= t->n && sp->next > 0))
        return 0; /* end of stream: out->release stays NULL */
    int64_t start = sp->next;
    int64_t rows = sp->batch_rows > 0 && t->n - start > sp->batch_rows ? sp->batch_rows : t->n - start;
    ArrayPrivate *priv = calloc(1, sizeof *priv);
    struct ArrowArray **children = calloc((size_t)(t->ncols ? t->ncols : 1), sizeof *children);
    if (!priv || !children) {
        free(priv);
        free(children);
        return 12;
    }
    priv->owner = sp->owner;
    owner_incref(sp->owner);
    out->length = rows;
    out->n_buffers = 1;
    priv->buffers[0] = NULL;
    out->buffers = priv->buffers;
    out->children = children;
    out->private_data = priv;
    out->release = release_array;
    for (int i = 0; i < t->ncols; i++) {
        struct ArrowArray *ch = calloc(1, sizeof *ch);
        if (!ch || fill_child(sp->owner, &t->cols[i], start, rows, ch)) {
            free(ch);
            release_array(out);
            return 12;
        }
        children[i] = ch;
        out->n_children = i + 1;
    }
    sp->next = start + rows;
    if (sp->next >= t->n)
        sp->done = 1;
    return 0;
}

static const char *stream_last_error(struct ArrowArrayStream *st) {
    (void)st;
    return "out of memory";
}

static void stream_release(struct ArrowArrayStream *st) {
    StreamPrivate *sp = st->private_data;
    owner_decref(sp->owner);
    free(sp);
    st->release = NULL;
}

int export_stream(Owner *o, int index, int64_t batch_rows, struct ArrowArrayStream *out) {
    StreamPrivate *sp = calloc(1, sizeof *sp);
    if (!sp)
        return -1;
    sp->owner = o;
    sp->index = index;
    sp->batch_rows = batch_rows;
    owner_incref(o);
    out->get_schema = stream_get_schema;
    out->get_next = stream_get_next;
    out->get_last_error = stream_last_error;
    out->release = stream_release;
    out->private_data = sp;
    return 0;
}
