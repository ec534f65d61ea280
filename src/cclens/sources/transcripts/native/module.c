/* cclens.sources.transcripts._native: the Python face of the line scanner.
 *
 *     seen = _native.KeySet()                                   # one per ingest run
 *     scan = _native.scan([data, ...], capture_content, origins, seen)   # chunks of whole lines
 *     scan.lines, scan.blocks     # tables with __arrow_c_stream__ (DuckDB reads them in place)
 *     scan.bad()                  # [(idx, chunk, chunk_offset, byte_length, status), ...]
 *     scan.total_lines, scan.blank_lines
 *
 * The scan runs without the GIL, so a reader thread scans the next batch while DuckDB (which also
 * releases the GIL) loads this one. See cclens/sources/transcripts/scan.py for the rules.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>
#include <structmember.h>

#include "arrow_c.h"
#include "columns.h"
#include "envelope.h"
#include "reduce.h"

#ifndef CCLENS_SOURCE_HASH
#define CCLENS_SOURCE_HASH "unknown"
#endif

/* ---- a table view ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Owner *owner;
    int index;
    Py_ssize_t batch_rows;
} TableView;

static void stream_capsule_free(PyObject *capsule) {
    /* Per the Arrow PyCapsule interface: release the stream unless a consumer took it. */
    struct ArrowArrayStream *stream = PyCapsule_GetPointer(capsule, "arrow_array_stream");
    if (stream) {
        if (stream->release)
            stream->release(stream);
        PyMem_Free(stream);
    }
}

static PyObject *view_arrow_c_stream(TableView *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"requested_schema", NULL};
    PyObject *requested = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O", kwlist, &requested))
        return NULL;
    if (self->owner->released) {
        PyErr_SetString(PyExc_ValueError, "this scan was released");
        return NULL;
    }
    struct ArrowArrayStream *stream = PyMem_Calloc(1, sizeof *stream);
    if (!stream)
        return PyErr_NoMemory();
    if (export_stream(self->owner, self->index, self->batch_rows, stream)) {
        PyMem_Free(stream);
        return PyErr_NoMemory();
    }
    PyObject *capsule = PyCapsule_New(stream, "arrow_array_stream", stream_capsule_free);
    if (!capsule) {
        stream->release(stream);
        PyMem_Free(stream);
    }
    return capsule;
}

static PyObject *view_num_rows(TableView *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(self->owner->released ? 0 : self->owner->tables[self->index].n);
}

static PyObject *view_column_names(TableView *self, void *closure) {
    (void)closure;
    Table *t = &self->owner->tables[self->index];
    PyObject *names = PyList_New(t->ncols);
    if (!names)
        return NULL;
    for (int i = 0; i < t->ncols; i++) {
        PyObject *s = PyUnicode_FromString(t->cols[i].name);
        if (!s) {
            Py_DECREF(names);
            return NULL;
        }
        PyList_SET_ITEM(names, i, s);
    }
    return names;
}

static void view_dealloc(TableView *self) {
    owner_decref(self->owner);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef view_members[] = {
    {"batch_rows", T_PYSSIZET, offsetof(TableView, batch_rows), 0,
     "Rows per record batch of the exported stream (0: one batch). More batches let DuckDB scan in parallel."},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef view_methods[] = {
    {"__arrow_c_stream__", (PyCFunction)(void (*)(void))view_arrow_c_stream, METH_VARARGS | METH_KEYWORDS,
     "An Arrow C stream (PyCapsule) of one record batch over this table; the buffers are shared."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef view_getset[] = {
    {"num_rows", (getter)view_num_rows, NULL, "Rows in the table.", NULL},
    {"column_names", (getter)view_column_names, NULL, "Column names, in order.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TableViewType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cclens.sources.transcripts._native.TableView",
    .tp_basicsize = sizeof(TableView),
    .tp_dealloc = (destructor)view_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A scanned table, read by DuckDB through the Arrow PyCapsule interface.",
    .tp_methods = view_methods,
    .tp_members = view_members,
    .tp_getset = view_getset,
};

/* ---- the key set of a run ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    KeySet set;
    int busy; /* a scan is using it (without the GIL) */
} KeySetObject;

static PyObject *keyset_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "KeySet() takes no arguments");
        return NULL;
    }
    KeySetObject *self = (KeySetObject *)type->tp_alloc(type, 0);
    if (self)
        keyset_init(&self->set);
    return (PyObject *)self;
}

static void keyset_dealloc(KeySetObject *self) {
    keyset_free(&self->set);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t keyset_len(KeySetObject *self) { return (Py_ssize_t)self->set.n; }

static PySequenceMethods keyset_as_sequence = {.sq_length = (lenfunc)keyset_len};

static PyTypeObject KeySetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cclens.sources.transcripts._native.KeySet",
    .tp_basicsize = sizeof(KeySetObject),
    .tp_dealloc = (destructor)keyset_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The line keys a run has seen (their fingerprints); pass the same one to every scan of a run.",
    .tp_new = keyset_new,
    .tp_as_sequence = &keyset_as_sequence,
};

/* ---- a scan ----------------------------------------------------------------------------------- */

typedef struct {
    int32_t idx, chunk, length;
    int64_t offset;
    int status;
} BadLine;

typedef struct {
    PyObject_HEAD
    Owner *owner;
    PyObject *lines, *blocks;
    PyObject *parts[T_NTABLES - T_REQ]; /* views of the tables T_REQ.. */
    long long total_lines, blank_lines;
    int requests_exact, parts_exact;
    BadLine *bad;
    Py_ssize_t nbad;
} Scan;

static void scan_dealloc(Scan *self) {
    Py_XDECREF(self->lines);
    Py_XDECREF(self->blocks);
    for (int i = 0; i < T_NTABLES - T_REQ; i++)
        Py_XDECREF(self->parts[i]);
    if (self->owner)
        owner_decref(self->owner);
    PyMem_RawFree(self->bad);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *scan_bad(Scan *self, PyObject *unused) {
    (void)unused;
    PyObject *out = PyList_New(self->nbad);
    if (!out)
        return NULL;
    for (Py_ssize_t i = 0; i < self->nbad; i++) {
        BadLine *b = &self->bad[i];
        PyObject *t = Py_BuildValue("(iiLii)", b->idx, b->chunk, (long long)b->offset, b->length, b->status);
        if (!t) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, t);
    }
    return out;
}

static PyObject *scan_release(Scan *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"columns", "poison", NULL};
    PyObject *columns = Py_None;
    int poison = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Op", kwlist, &columns, &poison))
        return NULL;
    if (columns == Py_None) {
        owner_release(self->owner, poison);
        Py_RETURN_NONE;
    }
    if (self->owner->released) {
        PyErr_SetString(PyExc_ValueError, "this scan was released");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(columns, "columns must be a sequence of line column names");
    if (!seq)
        return NULL;
    Table *lines = &self->owner->tables[0];
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
        Column *c = name ? table_col(lines, name) : NULL;
        if (!c) {
            if (name)
                PyErr_Format(PyExc_KeyError, "no line column %s", name);
            Py_DECREF(seq);
            return NULL;
        }
        if (column_clear(c, poison)) {
            Py_DECREF(seq);
            return PyErr_NoMemory();
        }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static PyMethodDef scan_methods[] = {
    {"release", (PyCFunction)(void (*)(void))scan_release, METH_VARARGS | METH_KEYWORDS,
     "release(columns=None, poison=False): free the tables' buffers now (or only those of the named line "
     "columns, which then read as NULL). DuckDB keeps the objects a transaction read until it ends, "
     "though it copied what it stored when each statement ran; a loader that is done with (part of) a "
     "scan calls this so a long transaction does not hold every batch. Exporting a released scan "
     "raises ValueError."},
    {"bad", (PyCFunction)scan_bad, METH_NOARGS,
     "Lines that are not valid: [(idx, chunk, chunk_offset, byte_length, status)] (chunk_offset: in the chunk), status 1 = not UTF-8, "
     "2 = not JSON, 3 = not a JSON object."},
    {NULL, NULL, 0, NULL},
};

static PyObject *scan_get_lines(Scan *self, void *c) { (void)c; Py_INCREF(self->lines); return self->lines; }
static PyObject *scan_get_blocks(Scan *self, void *c) { (void)c; Py_INCREF(self->blocks); return self->blocks; }
static PyObject *scan_get_total(Scan *self, void *c) { (void)c; return PyLong_FromLongLong(self->total_lines); }
static PyObject *scan_get_blank(Scan *self, void *c) { (void)c; return PyLong_FromLongLong(self->blank_lines); }
static PyObject *scan_get_exact(Scan *self, void *c) { (void)c; return PyBool_FromLong(self->requests_exact); }
static PyObject *scan_get_parts_exact(Scan *self, void *c) { (void)c; return PyBool_FromLong(self->parts_exact); }
static PyObject *scan_get_parts(Scan *self, void *c) {
    (void)c;
    static const char *const names[T_NTABLES - T_REQ] = {"requests", "prompts", "tools", "results", "sessions",
                                                         "session_agents", "session_prompts"};
    PyObject *d = PyDict_New();
    for (int i = 0; d && i < T_NTABLES - T_REQ; i++) {
        if (PyDict_SetItemString(d, names[i], self->parts[i])) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

static PyGetSetDef scan_getset[] = {
    {"lines", (getter)scan_get_lines, NULL, "One row per line that is not blank.", NULL},
    {"blocks", (getter)scan_get_blocks, NULL, "One row per tool_use / tool_result content block.", NULL},
    {"total_lines", (getter)scan_get_total, NULL, "Lines read, blank ones included.", NULL},
    {"blank_lines", (getter)scan_get_blank, NULL, "Lines with nothing but whitespace (skipped).", NULL},
    {"requests_exact", (getter)scan_get_exact, NULL,
     "Whether the request_* columns are exact (else a request line has a timestamp or total only SQL reads).",
     NULL},
    {"parts", (getter)scan_get_parts, NULL,
     "The scan's share of the model, reduced from its new lines: {name: table} (see load._reduce_native).", NULL},
    {"parts_exact", (getter)scan_get_parts_exact, NULL,
     "Whether parts equal what the loader's SQL makes of the new lines (requests_exact, and every new line's "
     "timestamp text read by the scanner).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cclens.sources.transcripts._native.Scan",
    .tp_basicsize = sizeof(Scan),
    .tp_dealloc = (destructor)scan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The result of scan(): the lines and blocks tables and the lines that are not valid.",
    .tp_methods = scan_methods,
    .tp_getset = scan_getset,
};

static PyObject *make_view(Owner *o, int index) {
    TableView *v = PyObject_New(TableView, &TableViewType);
    if (!v)
        return NULL;
    owner_incref(o);
    v->owner = o;
    v->index = index;
    v->batch_rows = 0;
    return (PyObject *)v;
}

/* Scan every chunk, without the GIL. Returns 0, or -1 when memory ran out. */
static int scan_all(Scan *res, Py_buffer *bufs, const Origin *origins, Py_ssize_t n, int capture, KeySet *seen) {
    Owner *o = res->owner;
    Table *lines = &o->tables[0], *blocks = &o->tables[1];
    Scanner *s = scanner_new(capture);
    size_t cap_bad = 0;
    int rc = s ? 0 : -1;
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        const uint8_t *data = bufs[i].buf, *end = data + bufs[i].len, *p = data;
        while (p < end) {
            const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
            const uint8_t *le = nl ? nl : end;
            int status = scan_line(s, p, (size_t)(le - p), nl != NULL, (int32_t)i, (int64_t)(p - data), &origins[i],
                                   seen, lines, blocks);
            res->total_lines++;
            if (status == ST_NOMEM) {
                rc = -1;
                break;
            }
            if (status == ST_BLANK) {
                res->blank_lines++;
            } else if (status != ST_OK) {
                if ((size_t)res->nbad == cap_bad) {
                    size_t cap = cap_bad ? cap_bad * 2 : 16;
                    BadLine *grown = PyMem_RawRealloc(res->bad, cap * sizeof *grown);
                    if (!grown) {
                        rc = -1;
                        break;
                    }
                    res->bad = grown;
                    cap_bad = cap;
                }
                BadLine *b = &res->bad[res->nbad++];
                b->idx = (int32_t)(lines->n - 1);
                b->chunk = (int32_t)i;
                b->offset = (int64_t)(p - data);
                b->length = (int32_t)(le - p);
                b->status = status;
            }
            p = nl ? nl + 1 : end;
        }
    }
    if (rc == 0)
        res->requests_exact = !scanner_requests(s, lines);
    scanner_free(s);
    int ts_exact = 0;
    if (rc == 0)
        rc = reduce_parts(o->tables, &ts_exact);
    res->parts_exact = rc == 0 && res->requests_exact && ts_exact;
    return rc;
}

/* Fill origins[i] from the i-th (path, generation, start_offset) tuple of `seq` (NULL: no origins).
 * The path's UTF-8 stays valid while `seq` (which holds the str) lives. */
static int read_origins(PyObject *given, Py_ssize_t n, Origin *origins, PyObject **keep) {
    if (given == Py_None)
        return 0;
    PyObject *seq = PySequence_Fast(given, "origins must be a sequence of (path, generation, start_offset)");
    if (!seq)
        return -1;
    *keep = seq;
    if (PySequence_Fast_GET_SIZE(seq) != n) {
        PyErr_SetString(PyExc_ValueError, "one origin per chunk");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *path;
        int generation;
        long long start;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "UiL", &path, &generation, &start))
            return -1;
        Py_ssize_t len;
        origins[i].path = PyUnicode_AsUTF8AndSize(path, &len);
        if (!origins[i].path)
            return -1;
        origins[i].path_len = (size_t)len;
        origins[i].generation = generation;
        origins[i].start = start;
    }
    return 0;
}

static PyObject *native_scan(PyObject *module, PyObject *args, PyObject *kwargs) {
    (void)module;
    static char *kwlist[] = {"chunks", "capture_content", "origins", "seen", NULL};
    PyObject *chunks, *given_origins = Py_None, *keep_origins = NULL, *given_seen = Py_None;
    int capture = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|pOO", kwlist, &chunks, &capture, &given_origins, &given_seen))
        return NULL;
    KeySetObject *seen = NULL;
    if (given_seen != Py_None) {
        if (!PyObject_TypeCheck(given_seen, &KeySetType)) {
            PyErr_SetString(PyExc_TypeError, "seen must be a KeySet");
            return NULL;
        }
        seen = (KeySetObject *)given_seen;
        if (seen->busy) {
            PyErr_SetString(PyExc_RuntimeError, "this KeySet is in use by another scan");
            return NULL;
        }
    }
    KeySet scratch; /* without a run's set: the keys of this scan only */
    keyset_init(&scratch);
    PyObject *seq = PySequence_Fast(chunks, "scan() takes a sequence of bytes-like chunks");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Origin *origins = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Origin));
    if (!origins) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    if (read_origins(given_origins, n, origins, &keep_origins)) {
        PyMem_Free(origins);
        Py_XDECREF(keep_origins);
        Py_DECREF(seq);
        return NULL;
    }
    Py_buffer *bufs = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Py_buffer));
    Scan *res = PyObject_New(Scan, &ScanType);
    Py_ssize_t got = 0;
    if (res) {
        res->owner = NULL;
        res->lines = res->blocks = NULL;
        res->total_lines = res->blank_lines = 0;
        res->requests_exact = res->parts_exact = 0;
        for (int i = 0; i < T_NTABLES - T_REQ; i++)
            res->parts[i] = NULL;
        res->bad = NULL;
        res->nbad = 0;
    }
    if (!bufs || !res)
        goto nomem;
    for (; got < n; got++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, got), &bufs[got], PyBUF_SIMPLE))
            goto fail;
    }
    res->owner = owner_new();
    if (!res->owner)
        goto nomem;
    res->owner->ntables = T_NTABLES;
    if (table_init(&res->owner->tables[T_LINES], LINE_NAMES, LINE_TYPES, L_NCOLS)
        || table_init(&res->owner->tables[T_BLOCKS], BLOCK_NAMES, BLOCK_TYPES, B_NCOLS)
        || reduce_init(res->owner->tables))
        goto nomem;
    res->owner->tables[0].cols[L_RAW].json = 1;
    int rc;
    if (seen)
        seen->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = scan_all(res, bufs, origins, n, capture, seen ? &seen->set : &scratch);
    Py_END_ALLOW_THREADS
    if (seen)
        seen->busy = 0;
    keyset_free(&scratch);
    if (rc)
        goto nomem;
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&bufs[i]);
    PyMem_Free(bufs);
    PyMem_Free(origins);
    Py_XDECREF(keep_origins);
    Py_DECREF(seq);
    res->lines = make_view(res->owner, T_LINES);
    res->blocks = make_view(res->owner, T_BLOCKS);
    if (!res->lines || !res->blocks) {
        Py_DECREF(res);
        return NULL;
    }
    for (int i = 0; i < T_NTABLES - T_REQ; i++) {
        res->parts[i] = make_view(res->owner, T_REQ + i);
        if (!res->parts[i]) {
            Py_DECREF(res);
            return NULL;
        }
    }
    return (PyObject *)res;
nomem:
    PyErr_NoMemory();
fail:
    keyset_free(&scratch);
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&bufs[i]);
    PyMem_Free(bufs);
    PyMem_Free(origins);
    Py_XDECREF(keep_origins);
    Py_XDECREF(res);
    Py_DECREF(seq);
    return NULL;
}

static PyObject *native_count_lines(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE))
        return NULL;
    Py_ssize_t n = 0;
    const char *p = view.buf, *end = p + view.len;
    Py_BEGIN_ALLOW_THREADS
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(n);
}

static PyObject *native_scans_alive(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyLong_FromLong(owners_alive());
}

static PyMethodDef native_methods[] = {
    {"scans_alive", native_scans_alive, METH_NOARGS,
     "scans_alive() -> how many scans' buffers are still held, by Python objects or by DuckDB (tests: no leak)."},
    {"count_lines", native_count_lines, METH_O,
     "count_lines(data) -> the number of newlines in a bytes-like object (bytes.count is a byte loop)."},
    {"scan", (PyCFunction)(void (*)(void))native_scan, METH_VARARGS | METH_KEYWORDS,
     "scan(chunks, capture_content=False, origins=None) -> Scan: validate every line of the chunks "
     "(bytes-like, each a run of whole lines), read its envelope and write its landing copy. origins: one "
     "(path, generation, start_offset) per chunk, giving the path, generation and byte_offset columns "
     "(else NULL, 0 and the offset in the chunk). seen: the run's KeySet (else the keys of this scan "
     "only), which gives the seen column. Releases the GIL."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native",
    "The transcript line scanner (C). Rules and the Python reference: cclens.sources.transcripts.scan.",
    -1, native_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&TableViewType) < 0 || PyType_Ready(&ScanType) < 0 || PyType_Ready(&KeySetType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (!m)
        return NULL;
    Py_INCREF(&KeySetType);
    if (PyModule_AddObject(m, "KeySet", (PyObject *)&KeySetType) < 0
        || PyModule_AddStringConstant(m, "SOURCE_HASH", CCLENS_SOURCE_HASH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
