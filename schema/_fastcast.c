/* One pass over terminal output: validate UTF-8 and escape it as a JSON string literal.
 *
 * The pure-Python path (schema/asciicast.py: Utf8Stream.feed + json_string_bytes) makes a
 * str to validate and up to seven passes to escape; this does both in one loop. It is an
 * optional speed-up: the Python path gives the same bytes and is used when this module
 * cannot be built.
 *
 * escape(data: bytes, final: bool) -> (literal: bytes, consumed: int, invalid: int)
 *   literal   "..." with every byte of a valid UTF-8 sequence kept as is, each invalid byte
 *             replaced by U+FFFD, and ", \ and control characters escaped.
 *   consumed  how many bytes of data were used; the rest is an incomplete sequence at the
 *             end (only when final is false) to be prepended to the next read.
 *   invalid   how many bytes were replaced.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static const char HEX[] = "0123456789abcdef";

/* 1 for bytes that end a plain run: controls, '"', '\\' and every non-ASCII byte. */
static unsigned char STOP[256];

static void init_stop_table(void)
{
    for (int c = 0; c < 256; c++)
        STOP[c] = c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
}

/* Length of the valid UTF-8 sequence starting at s (n bytes available):
 * >0 valid sequence length, 0 incomplete but valid so far (needs more bytes), -1 invalid. */
static Py_ssize_t sequence_length(const unsigned char *s, Py_ssize_t n)
{
    unsigned char c = s[0];
    Py_ssize_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    }
    else
        return -1;
    for (Py_ssize_t i = 1; i < need; i++) {
        if (i >= n)
            return 0;
        unsigned char b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
            return -1;
    }
    return need;
}

static PyObject *escape(PyObject *self, PyObject *args)
{
    Py_buffer view;
    int final;
    if (!PyArg_ParseTuple(args, "y*p", &view, &final))
        return NULL;
    const unsigned char *src = view.buf;
    Py_ssize_t n = view.len;
    if (n > (PY_SSIZE_T_MAX - 2) / 6) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 6 + 2);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    unsigned char *w = dst;
    Py_ssize_t i = 0, invalid = 0;
    *w++ = '"';
    while (i < n) {
        /* The common case: a run of printable ASCII copied in one go. */
        Py_ssize_t run = i;
        while (run < n && !STOP[src[run]])
            run++;
        if (run > i) {
            memcpy(w, src + i, run - i);
            w += run - i;
            i = run;
            if (i >= n)
                break;
        }
        unsigned char c = src[i];
        if (c < 0x80) {
            *w++ = '\\';
            switch (c) {
            case '"': *w++ = '"'; break;
            case '\\': *w++ = '\\'; break;
            case '\n': *w++ = 'n'; break;
            case '\r': *w++ = 'r'; break;
            case '\t': *w++ = 't'; break;
            case '\b': *w++ = 'b'; break;
            case '\f': *w++ = 'f'; break;
            default:
                *w++ = 'u'; *w++ = '0'; *w++ = '0';
                *w++ = HEX[c >> 4]; *w++ = HEX[c & 15];
            }
            i++;
            continue;
        }
        Py_ssize_t len = sequence_length(src + i, n - i);
        if (len > 0) {
            memcpy(w, src + i, len);
            w += len;
            i += len;
        }
        else if (len == 0 && !final) {
            break; /* an incomplete sequence at the end: the caller keeps it for next time */
        }
        else {
            *w++ = 0xEF; *w++ = 0xBF; *w++ = 0xBD; /* U+FFFD for this one byte */
            invalid++;
            i++;
        }
    }
    *w++ = '"';
    PyBuffer_Release(&view);
    if (_PyBytes_Resize(&out, w - dst) < 0)
        return NULL;
    return Py_BuildValue("(Nnn)", out, i, invalid);
}

static PyMethodDef methods[] = {
    {"escape", escape, METH_VARARGS,
     "escape(data, final) -> (json_literal, consumed, invalid): validate UTF-8 and escape in one pass."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastcast", "One-pass UTF-8 validation and JSON escaping.", -1, methods,
};

PyMODINIT_FUNC PyInit__fastcast(void)
{
    init_stop_table();
    return PyModule_Create(&module);
}
