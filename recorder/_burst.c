/* The relay's hot loop for a burst of output, without the interpreter in between reads.
 *
 * burst(src, dst, waits, limit, window, idle) -> (data, written, write_errno)
 *   After the relay read one chunk from src and wrote it to dst, output that keeps coming is
 *   relayed here: read src, write dst at once (the client sees every byte as soon as it is
 *   read), collect the bytes for the recording. It stops as soon as the relay has something
 *   else to do: one of the waits fds (the client's keys, the signal pipe) is readable, src
 *   stays quiet for `idle` seconds, `window` seconds have passed, `limit` bytes were read,
 *   src reports EOF or an error (left for the relay to read again and handle), or a write
 *   to dst fails. While dst is full, src is still read (up to `limit`): the program goes on
 *   while the client catches up, and the relay's interpreter is not woken for it.
 *
 *   data         every byte read (the relay records it as one event)
 *   written      how many bytes of data reached dst; the rest becomes the pump's backlog
 *   write_errno  0, or the errno of the write that failed (dst is then not written again)
 *
 * recorder/burst.py has the same loop in Python for when this module cannot be built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE 65536
#define MAX_WAITS 16

/* Bursts are read into one buffer that stays mapped (a fresh one per burst costs a page
 * fault every 4 KiB); a second thread in a burst at the same time gets its own. Without
 * memory to grow it, the burst ends with what it has. */
static char *scratch;
static Py_ssize_t scratch_size;
static int scratch_busy;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static PyObject *burst(PyObject *self, PyObject *args)
{
    int src, dst;
    PyObject *waits;
    Py_ssize_t limit;
    double window, idle;
    if (!PyArg_ParseTuple(args, "iiO!ndd", &src, &dst, &PyTuple_Type, &waits, &limit, &window, &idle))
        return NULL;
    Py_ssize_t nwaits = PyTuple_GET_SIZE(waits);
    if (nwaits > MAX_WAITS || limit < 0) {
        PyErr_SetString(PyExc_ValueError, "burst: too many fds to wait on, or a negative limit");
        return NULL;
    }
    struct pollfd fds[MAX_WAITS + 2]; /* src to read, dst to write, then the waits */
    fds[0].events = POLLIN;
    fds[1].events = POLLOUT;
    for (Py_ssize_t i = 0; i < nwaits; i++) {
        int fd = PyLong_AsLong(PyTuple_GET_ITEM(waits, i));
        if (fd == -1 && PyErr_Occurred())
            return NULL;
        fds[i + 2].fd = fd;
        fds[i + 2].events = POLLIN;
    }
    /* The buffer grows as the burst does (the raw allocator needs no GIL). */
    char *buf;
    Py_ssize_t room;
    int own = scratch_busy;
    if (own) {
        room = READ_SIZE * 4;
        buf = PyMem_RawMalloc(room);
        if (buf == NULL)
            return PyErr_NoMemory();
    }
    else {
        if (scratch == NULL && (scratch = PyMem_RawMalloc(READ_SIZE * 4)) != NULL)
            scratch_size = READ_SIZE * 4;
        if (scratch == NULL)
            return PyErr_NoMemory();
        buf = scratch;
        room = scratch_size;
        scratch_busy = 1;
    }
    int out_of_memory = 0;
    Py_ssize_t size = 0, written = 0;
    int write_errno = 0;

    Py_BEGIN_ALLOW_THREADS
    double end = now() + window;
    int src_open = 1; /* 0 after EOF or an error on src: the relay reads again and sees it */
    for (;;) {
        /* Pending output first: the client sees each chunk as soon as it is read. */
        int dst_full = 0;
        while (written < size) {
            ssize_t put = write(dst, buf + written, size - written);
            if (put >= 0) {
                written += put;
            }
            else if (errno != EINTR) {
                if (errno != EAGAIN)
                    write_errno = errno;
                dst_full = 1;
                break;
            }
        }
        if (write_errno)
            break;
        int can_read = src_open && size < limit;
        if (!can_read && !dst_full)
            break; /* the limit, or the end of src, and everything written */
        double left = end - now();
        if (left <= 0)
            break;
        if (can_read) {
            /* Read first: in a flood the next chunk is usually there already, and a poll per
             * read would double the system calls. A full dst does not stop the reading (up to
             * the limit): the program goes on while the client catches up. */
            if (size + READ_SIZE > room) {
                char *grown = PyMem_RawRealloc(buf, room * 2);
                if (grown == NULL) {
                    out_of_memory = 1;
                    break;
                }
                buf = grown;
                room *= 2;
            }
            ssize_t got = read(src, buf + size, READ_SIZE);
            if (got > 0) {
                size += got;
                continue;
            }
            if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                src_open = 0;
                continue;
            }
        }
        /* Nothing to do until src has more, dst has room, or a wait fd (keys, a signal)
         * needs the relay; src quiet for `idle` with nothing pending ends the burst. */
        fds[0].fd = can_read ? src : -1;
        fds[1].fd = dst_full ? dst : -1;
        double wait = dst_full || left < idle ? left : idle;
        struct timespec timeout = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        if (ppoll(fds, nwaits + 2, &timeout, NULL) <= 0)
            break; /* quiet, the window is over, or a signal (EINTR): the relay's turn */
        int other = fds[1].revents & (POLLERR | POLLHUP | POLLNVAL);
        for (Py_ssize_t i = 2; i < nwaits + 2; i++)
            other |= fds[i].revents != 0;
        if (other)
            break; /* keys, a signal, or dst in error: the relay's turn */
    }
    Py_END_ALLOW_THREADS

    PyObject *out = PyBytes_FromStringAndSize(buf, size);
    if (own) {
        PyMem_RawFree(buf);
    }
    else {
        scratch = buf;
        scratch_size = room;
        scratch_busy = 0;
    }
    if (out == NULL)
        return NULL;
    if (out_of_memory && size == 0) {
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    return Py_BuildValue("(Nni)", out, written, write_errno);
}

static PyMethodDef methods[] = {
    {"burst", burst, METH_VARARGS,
     "burst(src, dst, waits, limit, window, idle) -> (data, written, write_errno): relay output "
     "that keeps coming, until something else needs the relay."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_burst", NULL, -1, methods};

PyMODINIT_FUNC PyInit__burst(void)
{
    return PyModule_Create(&module);
}
