/* One pass over a transcript line: validate it, pick out the envelope fields the model needs and
 * write the landing copy with content removed. The rules (which fields, which content, how a wrong
 * type reads) are in cclens/sources/transcripts/scan.py; scan_reference.py holds the reference
 * implementation in Python that tests compare this one with. */
#ifndef CCLENS_ENVELOPE_H
#define CCLENS_ENVELOPE_H

#include "columns.h"
#include "keyset.h"

enum { ST_OK = 0, ST_BAD_UTF8 = 1, ST_BAD_JSON = 2, ST_NOT_OBJECT = 3, ST_BLANK = 4, ST_NOMEM = -1 };

/* Line table columns (the order of LINE_NAMES / LINE_TYPES). */
enum {
    L_IDX, L_CHUNK, L_OFFSET, L_LENGTH, L_STATUS, L_PATH, L_GENERATION, L_BYTE_OFFSET,
    L_TYPE, L_SUBTYPE, L_SESSION, L_UUID, L_TIMESTAMP, L_AGENT, L_CWD, L_BRANCH, L_VERSION, L_ENTRYPOINT,
    L_PROMPT_ID, L_REQUEST_ID, L_MESSAGE_ID, L_MODEL, L_SPEED, L_TIER,
    L_SIDECHAIN, L_API_ERROR, L_META, L_COMPACT, L_HAS_USAGE,
    L_IN, L_OUT, L_CC, L_CR, L_5M, L_1H,
    L_CONTENT_KIND, L_PROMPT_CHARS, L_HAS_TOOL_RESULT,
    L_RAW, L_LINE_KEY, L_PROMPT_TEXT, L_SEEN, L_TS, L_REQ_BEST, L_REQ_FIRST_TS, L_REQ_FIRST_IDX,
    L_NCOLS
};
enum { B_LINE, B_KIND, B_ID, B_NAME, B_IS_ERROR, B_NCOLS };

extern const char *const LINE_NAMES[L_NCOLS];
extern const ColType LINE_TYPES[L_NCOLS];
extern const char *const BLOCK_NAMES[B_NCOLS];
extern const ColType BLOCK_TYPES[B_NCOLS];

typedef struct Scanner Scanner;

Scanner *scanner_new(int capture_content);
void scanner_free(Scanner *s);

/* Where a chunk's lines come from: its file (UTF-8, may be NULL), generation and byte offset. */
typedef struct {
    const char *path;
    size_t path_len;
    int32_t generation;
    int64_t start;
} Origin;

/* Scan one line [p, p + n) (without its newline; `has_newline` says whether one follows it in the
 * data) of chunk `chunk`, `offset` bytes into it, appending a row to `lines` (and its tool blocks to
 * `blocks`) unless the line is blank. A valid line's key goes into `seen` (its `seen` column says
 * whether it was there already). Returns the line's status (ST_NOMEM when memory ran out). */
int scan_line(Scanner *s, const uint8_t *p, size_t n, int has_newline, int32_t chunk, int64_t offset,
              const Origin *origin, KeySet *seen, Table *lines, Table *blocks);

/* After the last line of a scan: mark each request's best line, with the earliest timestamp and the
 * first row among its lines (request_best, request_first_ts, request_first_idx). Returns 1 when a
 * request line had a timestamp or token total only SQL reads, so the loader reduces that batch
 * itself; 0 when the marks are exact. */
int scanner_requests(Scanner *s, Table *lines);

#endif
