/* ics_monitor._records: a record whose __dict__ is a given dict, built in one C call.
 *
 * The compiled build's replacement for ics_monitor/_records.py (same function, same result).
 * Records are frozen dataclasses whose fields live in their instance dict (events/base.py); the
 * hot builders fill a dict and install it as the new instance's __dict__.  In Python that is
 * object.__new__(cls) then object.__setattr__(record, "__dict__", fields): two calls through
 * wrappers that build argument tuples, and object.__new__ sets up an instance dict that the second
 * call throws away.  Here: allocate (tracked by the cyclic collector, as object.__new__ does) and
 * set the dict as object.__setattr__ does, through the type's __dict__ descriptor (the generic
 * setattr, not the frozen class's __setattr__).  Not PyObject_GenericSetDict: on CPython 3.13 it
 * leaves the instance's inline values in place and attribute reads miss the new dict.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *dict_name; /* "__dict__", interned at import */

static PyObject *
record(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyType_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "record(cls, fields): a class and a dict");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    /* What object.__new__ refuses (a class with another __new__: type, exceptions ...; an
     * abstract class), refused here too rather than built half-initialised. */
    if (type->tp_new != PyBaseObject_Type.tp_new || (type->tp_flags & Py_TPFLAGS_IS_ABSTRACT)) {
        PyErr_Format(PyExc_TypeError, "record(): cannot build %.200s from a dict", type->tp_name);
        return NULL;
    }
    PyObject *obj = type->tp_alloc(type, 0);
    if (obj == NULL) {
        return NULL;
    }
    if (PyObject_GenericSetAttr(obj, dict_name, args[1]) < 0) {
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
    if (dict_name == NULL) {
        dict_name = PyUnicode_InternFromString("__dict__");
        if (dict_name == NULL) {
            return NULL;
        }
    }
    return PyModule_Create(&records_module);
}
