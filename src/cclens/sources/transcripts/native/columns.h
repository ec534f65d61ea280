/* Growable columns and their export through the Arrow C stream interface.
 *
 * A scan fills two tables (lines, blocks) of typed columns; Python hands each table to DuckDB as an
 * object with __arrow_c_stream__ (the Arrow PyCapsule interface), so no copy and no pyarrow import.
 * The buffers belong to one Owner, freed when the last holder (the Python object or an exported
 * Arrow array that DuckDB still reads) lets go; the count is atomic because DuckDB may release an
 * array on one of its own threads, without the GIL.
 */
#ifndef CCLENS_COLUMNS_H
#define CCLENS_COLUMNS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *p;
    size_t len, cap;
} Buf;

int buf_grow(Buf *b, size_t extra);        /* the slow path of buf_reserve */
void buf_free(Buf *b);

/* Room for `extra` more bytes: 0 on success, -1 when out of memory. */
static inline int buf_reserve(Buf *b, size_t extra) {
    return b->len + extra <= b->cap ? 0 : buf_grow(b, extra);
}

typedef enum { COL_UTF8 = 'u', COL_I64 = 'l', COL_I32 = 'i', COL_I8 = 'c', COL_BOOL = 'b',
               COL_TS = 't' /* int64 microseconds since the epoch, UTC */ } ColType;

typedef struct {
    const char *name;
    ColType type;
    int json;          /* exported with the arrow.json extension type (DuckDB reads it as JSON) */
    int64_t n, nulls;
    Buf valid;         /* validity bitmap, one bit per row */
    Buf values;        /* fixed-width values, or the bit-packed booleans */
    Buf offsets;       /* utf8: int32 offsets, n + 1 of them */
    Buf data;          /* utf8: the bytes */
} Column;

typedef struct {
    Column *cols;
    int ncols;
    int64_t n;
} Table;

/* Appending one value to a column; every call adds exactly one row. 0 on success, -1 on OOM or when
 * a utf8 column would pass 2 GiB (Arrow's int32 offsets). */
int col_null(Column *c);
int col_i64(Column *c, int64_t v);
int col_i32(Column *c, int32_t v);
int col_i8(Column *c, int8_t v);
int col_bool(Column *c, int v);
int col_str(Column *c, const uint8_t *p, size_t n);
/* Overwrite the value of an existing row (it becomes valid). */
void col_set_bool(Column *c, int64_t row, int v);
void col_set_i64(Column *c, int64_t row, int64_t v);
void col_set_i32(Column *c, int64_t row, int32_t v);
/* A utf8 value written in place: col_str_begin reserves room for at most `max` bytes and returns
 * where to write them; col_str_end commits the `n` bytes actually written. */
uint8_t *col_str_begin(Column *c, size_t max);
int col_str_end(Column *c, size_t n);

int table_init(Table *t, const char *const *names, const ColType *types, int ncols);
void table_free(Table *t);
Column *table_col(Table *t, const char *name);

#define OWNER_MAX_TABLES 9 /* a scan's: lines, blocks and its parts (reduce.h) */

typedef struct {
    atomic_long refs;
    Table tables[OWNER_MAX_TABLES];
    int ntables;
    int released; /* the buffers were freed early (owner_release); the tables are empty */
} Owner;

Owner *owner_new(void);
void owner_incref(Owner *o);
void owner_decref(Owner *o);
long owners_alive(void); /* scans whose buffers are still held (by Python or by DuckDB) */
/* Free the buffers now, whoever still holds the owner (with `poison`, overwrite them first, so a
 * reader that still used them would read garbage: tests). */
void owner_release(Owner *o, int poison);
/* Replace a column by one of as many NULLs, freeing its buffers (poisoned first with `poison`).
 * 0, or -1 when memory ran out (the column is then unchanged). */
int column_clear(Column *c, int poison);

struct ArrowArrayStream;
/* Fill `out` with a stream over table `index` of `o` (which it keeps alive): record batches of
 * `batch_rows` rows (slices of the same buffers), or the whole table as one when it is 0. */
int export_stream(Owner *o, int index, int64_t batch_rows, struct ArrowArrayStream *out);

#endif
