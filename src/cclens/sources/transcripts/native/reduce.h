/* A scan's share of the model, reduced in C from its finished lines and blocks tables: the same rows
 * the loader's per-batch SQL (cclens/sources/transcripts/load.py, _reduce) makes from the batch's new
 * lines, so that DuckDB inserts a few small tables instead of running seven statements over every
 * line. The rows and the conditions under which they are exact are written out in load.py
 * (_reduce_native); tests compare the two on generated and odd batches. */
#ifndef CCLENS_REDUCE_H
#define CCLENS_REDUCE_H

#include "columns.h"

/* The tables of a scan's Owner, in order. */
enum {
    T_LINES, T_BLOCKS,
    T_REQ,             /* the best line of each request (request_best), with its first line's origin */
    T_PROMPTS,         /* the prompt lines */
    T_TOOLS,           /* tool_use blocks of assistant lines, with their line's fields */
    T_RESULTS,         /* tool_result blocks of user lines */
    T_SESSIONS,        /* each session's aggregates over the scan's new lines */
    T_AGENTS,          /* distinct (session, agent) */
    T_SESSION_PROMPTS, /* distinct (session, prompt id) of user lines */
    T_NTABLES
};

/* table_init for the tables T_REQ.. of `tables` (0, or -1 when memory ran out). */
int reduce_init(Table *tables);

/* Fill the tables T_REQ.. from tables[T_LINES] and tables[T_BLOCKS] (the request marks set). Sets
 * *ts_exact to 0 when a new line has a timestamp text the scanner did not read (SQL's cast might),
 * so the loader reduces that batch itself. Returns 0, or -1 when memory ran out. */
int reduce_parts(Table *tables, int *ts_exact);

#endif
