/* ics_monitor._records: a record whose __dict__ is a given dict, built in one C call.
 *
 * The compiled build's replacement for ics_monitor/_records.py (same function, same result).
 * Records are frozen dataclasses whose fields live in their instance dict (events/base.py); the
 * hot builders fill a dict and install it as the new instance's __dict__.  In Python that is
 * object.__new__(cls) then object.__setattr__(record, "__dict__", fields): two calls through
 * wrappers that build argument tuples, and object.__new__ sets up an instance dict that the second
 * call throws away.  Here: allocate (tracked by the cyclic collector, as object.__new__ does) and
 * set the dict through the public generic __dict__ setter.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
record(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyType_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "record(cls, fields): a class and a dict");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    PyObject *obj = type->tp_alloc(type, 0);
    if (obj == NULL) {
        return NULL;
    }
    if (PyObject_GenericSetDict(obj, args[1], NULL) < 0) {
        Py_DECREF(obj);
        return NULL;
    }
    return obj;
}

static PyMethodDef methods[] = {
    {"record", (PyCFunction)(void (*)(void))record, METH_FASTCALL,
     "record(cls, fields): an instance of cls whose __dict__ is fields."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef records_module = {
    PyModuleDef_HEAD_INIT, "ics_monitor._records", NULL, 0, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__records(void)
{
    return PyModule_Create(&records_module);
}
