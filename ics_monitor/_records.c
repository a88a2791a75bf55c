/* ics_monitor._records: a record whose __dict__ is a given dict, built in one C call; and a
 * batch of records taken apart and put back together for the workers' pipe (shard.py).
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

/* rebuilt(classes, items): a batch as shard.marshalled wrote it, as the parent's 4-tuples.
 *
 * classes: per class number, (cls, field names, a dict of every field: the template).  items:
 * (order, index, kind, number, payload): number < 0, payload is the 4th element as it is; else a
 * record of classes[number] from payload, a tuple of its field values in field order (the
 * template copied, its values set: the keys keep field order) or its whole field dict. */
static PyObject *
rebuilt(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "rebuilt(classes, items): two lists");
        return NULL;
    }
    PyObject *classes = args[0];
    PyObject *items = args[1];
    Py_ssize_t count = PyList_GET_SIZE(items);
    PyObject *batch = PyList_New(count);
    if (batch == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 5) {
            PyErr_SetString(PyExc_ValueError, "rebuilt(): an item is not a 5-tuple");
            goto fail;
        }
        Py_ssize_t number = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 3));
        if (number == -1 && PyErr_Occurred()) {
            goto fail;
        }
        PyObject *payload = PyTuple_GET_ITEM(item, 4);
        PyObject *value;
        if (number < 0) {
            Py_INCREF(payload);
            value = payload;
        }
        else {
            if (number >= PyList_GET_SIZE(classes)) {
                PyErr_SetString(PyExc_ValueError, "rebuilt(): a class number out of range");
                goto fail;
            }
            PyObject *known = PyList_GET_ITEM(classes, number);
            if (!PyTuple_Check(known) || PyTuple_GET_SIZE(known) != 3 || !PyTuple_Check(PyTuple_GET_ITEM(known, 1))
                || !PyDict_Check(PyTuple_GET_ITEM(known, 2))) {
                PyErr_SetString(PyExc_TypeError, "rebuilt(): a class entry is not (cls, names, template)");
                goto fail;
            }
            PyObject *fields;
            if (PyTuple_CheckExact(payload)) {
                PyObject *names = PyTuple_GET_ITEM(known, 1);
                Py_ssize_t width = PyTuple_GET_SIZE(names);
                if (PyTuple_GET_SIZE(payload) != width) {
                    PyErr_SetString(PyExc_ValueError, "rebuilt(): a record's values do not match its fields");
                    goto fail;
                }
                fields = PyDict_Copy(PyTuple_GET_ITEM(known, 2));
                if (fields == NULL) {
                    goto fail;
                }
                for (Py_ssize_t f = 0; f < width; f++) {
                    if (PyDict_SetItem(fields, PyTuple_GET_ITEM(names, f), PyTuple_GET_ITEM(payload, f)) < 0) {
                        Py_DECREF(fields);
                        goto fail;
                    }
                }
            }
            else if (PyDict_CheckExact(payload)) {
                Py_INCREF(payload);
                fields = payload;
            }
            else {
                PyErr_SetString(PyExc_TypeError, "rebuilt(): a record is neither a tuple nor a dict");
                goto fail;
            }
            PyObject *pair[2] = {PyTuple_GET_ITEM(known, 0), fields};
            value = record(NULL, pair, 2);
            Py_DECREF(fields);
            if (value == NULL) {
                goto fail;
            }
        }
        PyObject *out = PyTuple_New(4);
        if (out == NULL) {
            Py_DECREF(value);
            goto fail;
        }
        for (Py_ssize_t k = 0; k < 3; k++) {
            PyObject *part = PyTuple_GET_ITEM(item, k);
            Py_INCREF(part);
            PyTuple_SET_ITEM(out, k, part);
        }
        PyTuple_SET_ITEM(out, 3, value);
        PyList_SET_ITEM(batch, i, out);
    }
    return batch;
fail:
    Py_DECREF(batch); /* the unset slots are NULL: list dealloc skips them */
    return NULL;
}

static PyMethodDef methods[] = {
    {"record", (PyCFunction)(void (*)(void))record, METH_FASTCALL,
     "record(cls, fields): an instance of cls whose __dict__ is fields."},
    {"rebuilt", (PyCFunction)(void (*)(void))rebuilt, METH_FASTCALL,
     "rebuilt(classes, items): a marshalled batch's items as (order, index, kind, record) tuples."},
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
