/* prctl(2) for the recorder, which cannot afford ctypes (3 ms) on every login.
 *
 * set_child_subreaper() -> None
 *   PR_SET_CHILD_SUBREAPER: descendants orphaned by their parent (a daemon that double
 *   forks, `ssh -f`) are re-parented to the recorder instead of init, so the session's
 *   process tree, which the destination watch walks through /proc/PID/task/TID/children,
 *   stays whole. The recorder then reaps them. Optional: without this module the watch also
 *   looks for the session's orphans, less often, by scanning /proc.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <sys/prctl.h>

static PyObject *set_child_subreaper(PyObject *self, PyObject *unused)
{
#ifdef PR_SET_CHILD_SUBREAPER
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
#else
    errno = ENOSYS;
    return PyErr_SetFromErrno(PyExc_OSError);
#endif
}

static PyMethodDef methods[] = {
    {"set_child_subreaper", set_child_subreaper, METH_NOARGS,
     "Become the reaper of orphaned descendants (PR_SET_CHILD_SUBREAPER)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_proctl", NULL, -1, methods};

PyMODINIT_FUNC PyInit__proctl(void)
{
    return PyModule_Create(&module);
}
