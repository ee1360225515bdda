/* One pass over terminal output: validate UTF-8 and escape it as a JSON string literal.
 *
 * The pure-Python path (schema/asciicast.py: Utf8Stream.feed + json_string_bytes) makes a
 * str to validate and up to seven passes to escape; this does both in one loop. It is an
 * optional speed-up: the Python path gives the same bytes and is used when this module
 * cannot be built.
 *
 * append_event(buf: bytearray, time: float, code: int, data: bytes, final: bool)
 *   -> (consumed: int, invalid: int): the same escaping, written with its line framing
 *   straight onto the cast buffer: one call per read on the recorder's hot path.
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
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const char HEX[] = "0123456789abcdef";

/* 1 for bytes that end a plain run: controls, '"', '\\' and every non-ASCII byte. */
static unsigned char STOP[256];

static void init_stop_table(void)
{
    for (int c = 0; c < 256; c++)
        STOP[c] = c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
}

#ifndef __SSE2__
/* Nonzero when some byte of the word w needs escaping: below 0x20, '"', '\\' or non-ASCII
 * (the classic "has a byte less than n" and "has a zero byte" tricks, eight bytes at once). */
static inline uint64_t word_stops(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    uint64_t low = w - ones * 0x20;
    uint64_t zero_q = quote - ones, zero_b = backslash - ones;
    return ((low & ~w) | (zero_q & ~quote) | (zero_b & ~backslash) | w) & highs;
}

/* The end of the run of bytes that are copied as they are, starting at i. */
static inline Py_ssize_t plain_run(const unsigned char *src, Py_ssize_t i, Py_ssize_t n)
{
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        if (word_stops(w))
            break;
        i += 8;
    }
    while (i < n && !STOP[src[i]])
        i++;
    return i;
}
#endif

/* One buffer for append_event's lines, grown as needed and kept (the GIL is held throughout). */
static unsigned char *scratch;
static Py_ssize_t scratch_size;
static int scratch_busy;

/* From this size on the escaping runs without the GIL (below it the hand-over costs more). */
#define RELEASE_GIL_BYTES 16384

static unsigned char *scratch_for(Py_ssize_t size)
{
    if (size > scratch_size) {
        unsigned char *grown = PyMem_RawRealloc(scratch, size);
        if (grown == NULL)
            return NULL;
        scratch = grown;
        scratch_size = size;
    }
    return scratch;
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

/* The escape of each ASCII byte that needs one (ESC_LEN 0: copied as it is). */
static unsigned char ESC_LEN[128];
static unsigned char ESC_SEQ[128][8];

static void init_escape_table(void)
{
    for (int c = 0; c < 128; c++) {
        const char *named = NULL;
        switch (c) {
        case '"': named = "\\\""; break;
        case '\\': named = "\\\\"; break;
        case '\n': named = "\\n"; break;
        case '\r': named = "\\r"; break;
        case '\t': named = "\\t"; break;
        case '\b': named = "\\b"; break;
        case '\f': named = "\\f"; break;
        }
        if (named != NULL) {
            memcpy(ESC_SEQ[c], named, 2);
            ESC_LEN[c] = 2;
        }
        else if (c < 0x20) {
            char hex[7] = {'\\', 'u', '0', '0', HEX[c >> 4], HEX[c & 15], 0};
            memcpy(ESC_SEQ[c], hex, 6);
            ESC_LEN[c] = 6;
        }
    }
}

/* Escape src[0..n) into w (room for n * 6 + ESCAPE_SLACK bytes: the loop stores whole words
 * and moves on by what they hold): returns the end of what was written and sets *used (bytes
 * of src consumed) and *invalid (bytes replaced by U+FFFD). */
#define ESCAPE_SLACK 16
static unsigned char *escape_into(unsigned char *w, const unsigned char *src, Py_ssize_t n, int final,
                                  Py_ssize_t *used, Py_ssize_t *invalid)
{
    Py_ssize_t i = 0;
    *invalid = 0;
    while (i < n) {
#ifdef __SSE2__
        /* Sixteen bytes at a time: stored whole, kept up to the first that needs care
         * (signed compare: below 0x20 also catches every byte from 0x80 on). */
        const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
                      backslash = _mm_set1_epi8('\\');
        while (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
            __m128i stop = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                        _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
            unsigned mask = (unsigned)_mm_movemask_epi8(stop);
            _mm_storeu_si128((__m128i *)w, v);
            if (mask == 0) {
                w += 16;
                i += 16;
                continue;
            }
            unsigned k = (unsigned)__builtin_ctz(mask);
            w += k;
            i += k;
            break;
        }
#else
        Py_ssize_t run = plain_run(src, i, n);
        memcpy(w, src + i, run - i);
        w += run - i;
        i = run;
#endif
        while (i < n && !STOP[src[i]])
            *w++ = src[i++];
        if (i >= n)
            break;
        unsigned char c = src[i];
        if (c < 0x80) {
            memcpy(w, ESC_SEQ[c], 8);
            w += ESC_LEN[c];
            i++;
            continue;
        }
        Py_ssize_t len;
        if (c >= 0xC2 && c <= 0xDF && i + 1 < n && (src[i + 1] & 0xC0) == 0x80)
            len = 2; /* the common cases decided here, the rest by sequence_length */
        else if (c >= 0xE1 && c <= 0xEC && i + 2 < n && (src[i + 1] & 0xC0) == 0x80
                 && (src[i + 2] & 0xC0) == 0x80)
            len = 3;
        else
            len = sequence_length(src + i, n - i);
        if (len > 0) {
            if (i + 4 <= n)
                memcpy(w, src + i, 4); /* one store; the bytes past len are overwritten next */
            else
                memcpy(w, src + i, len);
            w += len;
            i += len;
        }
        else if (len == 0 && !final) {
            break; /* an incomplete sequence at the end: the caller keeps it for next time */
        }
        else {
            *w++ = 0xEF; *w++ = 0xBF; *w++ = 0xBD; /* U+FFFD for this one byte */
            (*invalid)++;
            i++;
        }
    }
    *used = i;
    return w;
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
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 6 + 2 + ESCAPE_SLACK);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    unsigned char *w = dst;
    Py_ssize_t used, invalid;
    *w++ = '"';
    w = escape_into(w, src, n, final, &used, &invalid);
    *w++ = '"';
    PyBuffer_Release(&view);
    if (_PyBytes_Resize(&out, w - dst) < 0)
        return NULL;
    return Py_BuildValue("(Nnn)", out, used, invalid);
}

/* append_event(buf, time, code, data, final) -> (consumed, invalid)
 *   Appends the cast line [time, "code", "escaped data"]\n to the bytearray buf in one pass
 *   (time printed as %.6f, as EventEncoder does). Nothing is appended when no byte of data
 *   makes a character yet (an incomplete sequence waits for the next read, as with escape). */
static PyObject *append_event(PyObject *self, PyObject *args)
{
    PyObject *buf, *result = NULL;
    double t;
    int code, final;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "Ydiy*p", &buf, &t, &code, &view, &final))
        return NULL;
    Py_ssize_t n = view.len;
    if (n > (PY_SSIZE_T_MAX - 64) / 6) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    /* Escaped into a buffer that stays mapped, then copied: growing the bytearray by the
     * worst case (6 bytes a byte) and shrinking it again would reallocate on every call.
     * A second thread arriving while the scratch buffer is in use gets a buffer of its own. */
    int own = scratch_busy;
    unsigned char *line = own ? PyMem_RawMalloc(n * 6 + 64 + ESCAPE_SLACK) : scratch_for(n * 6 + 64 + ESCAPE_SLACK);
    if (line == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    if (!own)
        scratch_busy = 1;
    int head = snprintf((char *)line, 48, "[%.6f, \"%c\", \"", t, code);
    if (head < 0 || head >= 48) {
        PyErr_SetString(PyExc_ValueError, "event time out of range");
        goto done;
    }
    unsigned char *body = line + head, *end;
    Py_ssize_t used, invalid;
    if (n >= RELEASE_GIL_BYTES) { /* the recorder's writer thread escapes while the relay runs */
        Py_BEGIN_ALLOW_THREADS
        end = escape_into(body, view.buf, n, final, &used, &invalid);
        Py_END_ALLOW_THREADS
    }
    else {
        end = escape_into(body, view.buf, n, final, &used, &invalid);
    }
    if (end != body) { /* else no character yet: nothing to write */
        *end++ = '"'; *end++ = ']'; *end++ = '\n';
        Py_ssize_t start = PyByteArray_GET_SIZE(buf), want = start + (end - line);
        /* Room doubles when it runs out: the bytearray's own growth (an eighth at a time)
         * would copy the whole buffer again on nearly every large append. */
        Py_ssize_t room = ((PyByteArrayObject *)buf)->ob_alloc;
        if (want >= room && PyByteArray_Resize(buf, want > 2 * room ? want : 2 * room) < 0)
            goto done;
        if (PyByteArray_Resize(buf, want) < 0)
            goto done;
        memcpy(PyByteArray_AS_STRING(buf) + start, line, end - line);
    }
    result = Py_BuildValue("(nn)", used, invalid);
done:
    PyBuffer_Release(&view);
    if (own)
        PyMem_RawFree(line);
    else
        scratch_busy = 0;
    return result;
}

/* find_osc133(data, start) -> index of b"\x1b]133;" at or after start, or -1.
 *   The recorder looks for shell marks in every burst of output: memchr on ']' (rare in
 *   terminal output, unlike ESC) runs at memory speed where bytes.find crawls. */
static PyObject *find_osc133(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "y*n", &view, &start))
        return NULL;
    const unsigned char *s = view.buf;
    Py_ssize_t n = view.len, found = -1;
    Py_ssize_t at = start < 1 ? 1 : start + 1; /* ']' is the second byte */
    while (at < n) {
        const unsigned char *p = memchr(s + at, ']', n - at);
        if (p == NULL)
            break;
        Py_ssize_t i = p - s;
        if (s[i - 1] == 0x1b && n - i >= 5 && memcmp(p + 1, "133;", 4) == 0) {
            found = i - 1;
            break;
        }
        at = i + 1;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(found);
}

static PyMethodDef methods[] = {
    {"find_osc133", find_osc133, METH_VARARGS,
     "find_osc133(data, start) -> index of the next OSC 133 mark (ESC ] 133 ;), or -1."},
    {"escape", escape, METH_VARARGS,
     "escape(data, final) -> (json_literal, consumed, invalid): validate UTF-8 and escape in one pass."},
    {"append_event", append_event, METH_VARARGS,
     "append_event(buf, time, code, data, final) -> (consumed, invalid): one cast line onto a bytearray."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastcast", "One-pass UTF-8 validation and JSON escaping.", -1, methods,
};

PyMODINIT_FUNC PyInit__fastcast(void)
{
#ifdef __GLIBC__
    /* The recorder and the collector take output in bursts of up to 256 KiB (a fresh bytes
     * object each) and empty their line buffers after every write: with glibc's defaults
     * that memory goes back to the kernel at once and every 4 KiB of output costs a page
     * fault (a tenth of the recorder's CPU in a flood). Kept instead: the few MiB they ever
     * hold at once. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
#endif
    init_stop_table();
    init_escape_table();
    return PyModule_Create(&module);
}
