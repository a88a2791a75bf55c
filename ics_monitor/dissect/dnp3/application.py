"""DNP3 application layer (IEEE 1815-2012 clause 4 and annex A): fragment header and objects.

Request and response fragment::

    +-------------+---------------+---------------------+-----------------------------------+
    | APP CONTROL | FUNCTION CODE | IIN1 IIN2           | object header, object data, ...   |
    +-------------+---------------+---------------------+-----------------------------------+
                                    responses (129-131)
    APP CONTROL: FIR(7) FIN(6) CON(5) UNS(4) SEQUENCE(3..0)

Object header (4.2.2.7 / 4.2.2.9 / 4.2.2.10)::

    +-------+-----------+-----------+---------------------------------+
    | GROUP | VARIATION | QUALIFIER | range: start/stop, count or none|
    +-------+-----------+-----------+---------------------------------+
    QUALIFIER: reserved(7) OBJECT PREFIX CODE(6..4) RANGE SPECIFIER CODE(3..0)

then, per object, an optional prefix (index of 1/2/4 bytes, or object size of 1/2/4 bytes) and the
object itself (fixed size per group/variation, packed bits, or self-sized).  Pure functions over
bytes; anomalies are collected as ``(code, detail)`` pairs.  Points and objects are plain dicts, so
sinks serialise them without conversion.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

from ics_monitor.dissect.dnp3.constants import (
    APP_TOO_SHORT,
    APP_UNKNOWN_FUNCTION,
    ATTRIBUTE_NAMES,
    ATTRIBUTE_TYPE_NAMES,
    AUTH_VARIATION_NAMES,
    COMMAND_STATUS_NAMES,
    CONTROL_OPERATION_NAMES,
    FILE_MODE_NAMES,
    FILE_STATUS_NAMES,
    FILE_VARIATION_NAMES,
    FUNCTION_NAMES,
    GROUP_NAMES,
    INVALID_QUALIFIER,
    INVALID_RANGE,
    MAX_OBJECTS,
    MAX_POINT_COUNT,
    MAX_POINTS,
    OBJECT_OVERRUN,
    POINTS_CAPPED,
    RESPONSE_FUNCTIONS,
    TOO_MANY_OBJECTS,
    TOO_MANY_POINTS,
    TRIP_CLOSE_NAMES,
    UNKNOWN,
    UNKNOWN_OBJECT,
)

Point = dict[str, Any]
DnpObject = dict[str, Any]
Anomalies = list[tuple[str, str]]
# (row, offset of the object's first field in the row, point index, common time of occurrence)
Builder = Callable[[tuple[Any, ...], int, int, float | None], Point]

_U8: Final = struct.Struct("<B")
_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_RANGE_STRUCTS: Final = {0: _U8, 1: _U16, 2: _U32, 3: _U8, 4: _U16, 5: _U32}
_START_STOP: Final = {0: struct.Struct("<BB"), 1: struct.Struct("<HH"), 2: struct.Struct("<II")}
_COUNT_STRUCTS: Final = {7: _U8, 8: _U16, 9: _U32, 0xB: _U8}
_PREFIX_SIZES: Final[tuple[int, ...]] = (0, 1, 2, 4, 1, 2, 4)
_PREFIX_FORMATS: Final[tuple[str, ...]] = ("", "B", "H", "I", "B", "H", "I")
_TIME: Final = struct.Struct("<IH")

# Functions whose request objects are headers only (no object data): READ.
HEADER_ONLY_FUNCTIONS: Final = frozenset({1})


def _ms(low: int, high: int) -> float:
    """DNP3 absolute time (48-bit ms since 1970 UTC, split as u32 + u16) in seconds."""
    return (low | high << 32) / 1000.0


# -- point builders (one per object layout) ----------------------------------------------------------


def _state(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    flags = row[o]
    return {"index": index, "value": bool(flags & 0x80), "flags": flags}


def _state_time(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    flags = row[o]
    return {"index": index, "value": bool(flags & 0x80), "flags": flags, "time": _ms(row[o + 1], row[o + 2])}


def _state_relative(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    flags = row[o]
    time = cto + row[o + 1] / 1000.0 if cto is not None else None
    return {"index": index, "value": bool(flags & 0x80), "flags": flags, "time": time}


def _double(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    flags = row[o]
    return {"index": index, "value": (flags >> 6) & 3, "flags": flags}


def _double_time(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    flags = row[o]
    return {"index": index, "value": (flags >> 6) & 3, "flags": flags, "time": _ms(row[o + 1], row[o + 2])}


def _double_relative(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    flags = row[o]
    time = cto + row[o + 1] / 1000.0 if cto is not None else None
    return {"index": index, "value": (flags >> 6) & 3, "flags": flags, "time": time}


def _command_event(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    flags = row[o]
    status = flags & 0x7F
    return {
        "index": index,
        "value": bool(flags & 0x80),
        "flags": None,
        "status": status,
        "status_name": COMMAND_STATUS_NAMES.get(status, UNKNOWN),
    }


def _command_event_time(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    point = _command_event(row, o, index, cto)
    point["time"] = _ms(row[o + 1], row[o + 2])
    return point


def _flags_value(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    return {"index": index, "value": row[o + 1], "flags": row[o]}


def _flags_value_time(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    return {"index": index, "value": row[o + 1], "flags": row[o], "time": _ms(row[o + 2], row[o + 3])}


def _value(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    return {"index": index, "value": row[o], "flags": None}


def _value_status(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    status = row[o + 1]
    return {
        "index": index,
        "value": row[o],
        "flags": None,
        "status": status,
        "status_name": COMMAND_STATUS_NAMES.get(status, UNKNOWN),
    }


def _status_value(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    status = row[o]
    return {
        "index": index,
        "value": row[o + 1],
        "flags": None,
        "status": status,
        "status_name": COMMAND_STATUS_NAMES.get(status, UNKNOWN),
    }


def _status_value_time(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    point = _status_value(row, o, index, cto)
    point["time"] = _ms(row[o + 2], row[o + 3])
    return point


def _crob(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    code, count, on_time, off_time, status = row[o : o + 5]
    return {
        "index": index,
        "value": code,
        "flags": None,
        "code": code,
        "operation": CONTROL_OPERATION_NAMES.get(code & 0x0F, UNKNOWN),
        "queue": bool(code & 0x10),
        "clear": bool(code & 0x20),
        "trip_close": TRIP_CLOSE_NAMES[code >> 6],
        "count": count,
        "on_time": on_time,
        "off_time": off_time,
        "status": status,
        "status_name": COMMAND_STATUS_NAMES.get(status, UNKNOWN),
    }


def _time(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    return {"index": index, "value": _ms(row[o], row[o + 1]), "flags": None}


def _time_interval(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    return {"index": index, "value": _ms(row[o], row[o + 1]), "flags": None, "interval": row[o + 2]}


def _time_interval_units(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    return {
        "index": index,
        "value": _ms(row[o], row[o + 1]),
        "flags": None,
        "interval": row[o + 2],
        "units": row[o + 3],
    }


def _statistic(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    return {"index": index, "value": row[o + 2], "flags": row[o], "association": row[o + 1]}


def _statistic_time(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    point = _statistic(row, o, index, cto)
    point["time"] = _ms(row[o + 3], row[o + 4])
    return point


def _auth_aggressive(row: tuple[Any, ...], o: int, index: int, cto: float | None) -> Point:
    return {"index": index, "value": row[o], "flags": None, "user": row[o + 1]}


# (group, variation) -> (struct format of one object, builder); sizes follow from the formats.
_LAYOUTS: dict[tuple[int, int], tuple[str, Builder]] = {
    (1, 2): ("B", _state),
    (2, 1): ("B", _state),
    (2, 2): ("BIH", _state_time),
    (2, 3): ("BH", _state_relative),
    (3, 2): ("B", _double),
    (4, 1): ("B", _double),
    (4, 2): ("BIH", _double_time),
    (4, 3): ("BH", _double_relative),
    (10, 2): ("B", _state),
    (11, 1): ("B", _state),
    (11, 2): ("BIH", _state_time),
    (12, 1): ("BBIIB", _crob),
    (12, 2): ("BBIIB", _crob),
    (13, 1): ("B", _command_event),
    (13, 2): ("BIH", _command_event_time),
    (20, 1): ("BI", _flags_value),
    (20, 2): ("BH", _flags_value),
    (20, 3): ("BI", _flags_value),
    (20, 4): ("BH", _flags_value),
    (20, 5): ("I", _value),
    (20, 6): ("H", _value),
    (20, 7): ("I", _value),
    (20, 8): ("H", _value),
    (21, 1): ("BI", _flags_value),
    (21, 2): ("BH", _flags_value),
    (21, 3): ("BI", _flags_value),
    (21, 4): ("BH", _flags_value),
    (21, 5): ("BIIH", _flags_value_time),
    (21, 6): ("BHIH", _flags_value_time),
    (21, 7): ("BIIH", _flags_value_time),
    (21, 8): ("BHIH", _flags_value_time),
    (21, 9): ("I", _value),
    (21, 10): ("H", _value),
    (21, 11): ("I", _value),
    (21, 12): ("H", _value),
    (30, 1): ("Bi", _flags_value),
    (30, 2): ("Bh", _flags_value),
    (30, 3): ("i", _value),
    (30, 4): ("h", _value),
    (30, 5): ("Bf", _flags_value),
    (30, 6): ("Bd", _flags_value),
    (31, 1): ("Bi", _flags_value),
    (31, 2): ("Bh", _flags_value),
    (31, 3): ("BiIH", _flags_value_time),
    (31, 4): ("BhIH", _flags_value_time),
    (31, 5): ("i", _value),
    (31, 6): ("h", _value),
    (31, 7): ("Bf", _flags_value),
    (31, 8): ("Bd", _flags_value),
    (34, 1): ("H", _value),
    (34, 2): ("I", _value),
    (34, 3): ("f", _value),
    (40, 1): ("Bi", _flags_value),
    (40, 2): ("Bh", _flags_value),
    (40, 3): ("Bf", _flags_value),
    (40, 4): ("Bd", _flags_value),
    (41, 1): ("iB", _value_status),
    (41, 2): ("hB", _value_status),
    (41, 3): ("fB", _value_status),
    (41, 4): ("dB", _value_status),
    (50, 1): ("IH", _time),
    (50, 2): ("IHI", _time_interval),
    (50, 3): ("IH", _time),
    (50, 4): ("IHIB", _time_interval_units),
    (51, 1): ("IH", _time),
    (51, 2): ("IH", _time),
    (52, 1): ("H", _value),
    (52, 2): ("H", _value),
    (102, 1): ("B", _value),
    (120, 3): ("IH", _auth_aggressive),
    (120, 4): ("H", _value),
    (121, 1): ("BHI", _statistic),
    (122, 1): ("BHI", _statistic),
    (122, 2): ("BHIIH", _statistic_time),
}
# Counter events and frozen counter events share the frozen counter's first eight layouts; the
# analog event groups share one table.
for _group in (22, 23):
    for _variation in range(1, 9):
        _LAYOUTS[(_group, _variation)] = _LAYOUTS[(21, _variation)]
_ANALOG_EVENT: dict[int, tuple[str, Builder]] = {
    1: ("Bi", _flags_value),
    2: ("Bh", _flags_value),
    3: ("BiIH", _flags_value_time),
    4: ("BhIH", _flags_value_time),
    5: ("Bf", _flags_value),
    6: ("Bd", _flags_value),
    7: ("BfIH", _flags_value_time),
    8: ("BdIH", _flags_value_time),
}
for _group in (32, 33, 42):
    for _variation, _event_layout in _ANALOG_EVENT.items():
        _LAYOUTS[(_group, _variation)] = _event_layout
for _variation, (_format, _builder) in _ANALOG_EVENT.items():
    # Analog output command events: a status octet in place of the flags.
    _LAYOUTS[(43, _variation)] = (
        _format,
        _status_value_time if _builder is _flags_value_time else _status_value,
    )

# Objects of one bit (or two) per point, packed from the range start.
_PACKED_BITS: dict[tuple[int, int], int] = {(1, 1): 1, (10, 1): 1, (12, 3): 1, (80, 1): 1, (3, 1): 2}
# Octet strings and virtual terminal blocks: the variation is the object size.
_SIZED_BY_VARIATION: Final = frozenset({110, 111, 112, 113})
# Relative-time objects use the last common time of occurrence (group 51).
_CTO_GROUPS: Final = frozenset({51})

_STRUCT_CACHE: dict[tuple[int, int, int], tuple[struct.Struct, Builder] | None] = {}


def _layout(prefix_code: int, group: int, variation: int) -> tuple[struct.Struct, Builder] | None:
    """Compiled struct for prefix + object (indexes prefixed to each object) and its builder."""
    key = (prefix_code, group, variation)
    cached = _STRUCT_CACHE.get(key, False)
    if cached is not False:
        return cached  # type: ignore[return-value]
    layout = _LAYOUTS.get((group, variation))
    result = None
    if layout is not None:
        result = (struct.Struct("<" + _PREFIX_FORMATS[prefix_code] + layout[0]), layout[1])
    _STRUCT_CACHE[key] = result
    return result


def object_size(group: int, variation: int) -> int | None:
    """Size in bytes of one fixed-size object, None when it is packed, self-sized or unknown."""
    layout = _LAYOUTS.get((group, variation))
    if layout is not None:
        return struct.calcsize("<" + layout[0])
    if group in _SIZED_BY_VARIATION and variation:
        return variation
    return None


def known_object(group: int, variation: int) -> bool:
    """True when this dissector can find the end of objects of ``group``/``variation``."""
    return (
        (group, variation) in _LAYOUTS
        or (group, variation) in _PACKED_BITS
        or group in (0, 60, 70, 120)
        or group in _SIZED_BY_VARIATION
        or variation == 0
    )


# -- self-sized objects -----------------------------------------------------------------------------


def _text(raw: bytes) -> str:
    return raw.decode("latin-1").rstrip("\x00")


def _attribute_value(data_type: int, raw: bytes) -> Any:
    """Value of a group 0 device attribute by its data type code (IEEE 1815 A.2)."""
    if data_type == 1:  # VSTR
        return _text(raw)
    if data_type == 2:  # UINT
        return int.from_bytes(raw, "little")
    if data_type == 3:  # INT
        return int.from_bytes(raw, "little", signed=True)
    if data_type == 4 and len(raw) in (4, 8):  # FLT
        return struct.unpack("<f" if len(raw) == 4 else "<d", raw)[0]
    if data_type == 7 and len(raw) == 6:  # DNP3 time
        return _ms(*_TIME.unpack(raw))
    if data_type in (254, 255):  # list of (variation, properties) pairs
        return [[raw[i], raw[i + 1]] for i in range(0, len(raw) - 1, 2)]
    return raw.hex()


def _file_object(variation: int, raw: bytes) -> dict[str, Any]:
    """Fields of a group 70 file-transfer object (IEEE 1815 A.37), file data itself left out."""
    size = len(raw)
    if variation == 3 and size >= 26:
        name_offset, name_size, low, high, permissions, auth_key, file_size, mode, block, request = (
            struct.unpack_from("<HHIHHIIHHH", raw, 0)
        )
        return {
            "file_name": _text(raw[name_offset : name_offset + name_size]),
            "created": _ms(low, high),
            "permissions": permissions,
            "auth_key": auth_key,
            "file_size": file_size,
            "mode": mode,
            "mode_name": FILE_MODE_NAMES.get(mode, UNKNOWN),
            "max_block_size": block,
            "request_id": request,
        }
    if variation == 4 and size >= 13:
        handle, file_size, block, request, status = struct.unpack_from("<IIHHB", raw, 0)
        return {
            "handle": handle,
            "file_size": file_size,
            "max_block_size": block,
            "request_id": request,
            "status": status,
            "status_name": FILE_STATUS_NAMES.get(status, UNKNOWN),
            "text": _text(raw[13:]),
        }
    if variation == 5 and size >= 8:
        handle, block = struct.unpack_from("<II", raw, 0)
        return {
            "handle": handle,
            "block": block & 0x7FFFFFFF,
            "last": bool(block & 0x80000000),
            "data_length": size - 8,
        }
    if variation == 6 and size >= 9:
        handle, block, status = struct.unpack_from("<IIB", raw, 0)
        return {
            "handle": handle,
            "block": block & 0x7FFFFFFF,
            "last": bool(block & 0x80000000),
            "status": status,
            "status_name": FILE_STATUS_NAMES.get(status, UNKNOWN),
        }
    if variation == 7 and size >= 20:
        name_offset, name_size, file_type, file_size, low, high, permissions, request = struct.unpack_from(
            "<HHHIIHHH", raw, 0
        )
        return {
            "file_name": _text(raw[name_offset : name_offset + name_size]),
            "file_type": file_type,
            "file_size": file_size,
            "created": _ms(low, high),
            "permissions": permissions,
            "request_id": request,
        }
    if variation == 2 and size >= 12:
        # The password is counted, never copied into records.
        user_offset, user_size, _password_offset, password_size, auth_key = struct.unpack_from(
            "<HHHHI", raw, 0
        )
        return {
            "user_name": _text(raw[user_offset : user_offset + user_size]),
            "password_length": password_size,
            "auth_key": auth_key,
        }
    if variation == 8:
        return {"file_name": _text(raw)}
    return {"length": size}


def _auth_object(variation: int, raw: bytes) -> dict[str, Any]:
    """Leading fields of a group 120 secure-authentication message (IEEE 1815 A.45)."""
    value: dict[str, Any] = {"kind": AUTH_VARIATION_NAMES.get(variation, UNKNOWN), "length": len(raw)}
    if variation in (1, 2, 5, 6, 7) and len(raw) >= 6:
        sequence, user = struct.unpack_from("<IH", raw, 0)
        value["sequence"] = sequence
        value["user"] = user
        if variation == 7 and len(raw) >= 9:
            value["error_code"] = raw[8]
    elif variation in (10, 11, 12, 13, 14, 15) and len(raw) >= 4:
        value["key_change_sequence"] = struct.unpack_from("<I", raw, 0)[0]
    return value


# -- the fragment -----------------------------------------------------------------------------------


class Fragment:
    """Decoded application fragment header and objects."""

    __slots__ = ("control", "function_code", "iin", "length", "objects")

    def __init__(
        self, control: int, function_code: int, iin: int | None, objects: list[DnpObject], length: int
    ) -> None:
        self.control = control
        self.function_code = function_code
        self.iin = iin
        self.objects = objects
        self.length = length


def parse_fragment(data: bytes, anomalies: Anomalies) -> Fragment | None:
    """Decode one complete application fragment; None when it is too short for its header."""
    size = len(data)
    if size < 2:
        anomalies.append((APP_TOO_SHORT, f"fragment of {size} bytes"))
        return None
    control = data[0]
    function_code = data[1]
    iin = None
    position = 2
    if function_code in RESPONSE_FUNCTIONS:
        if size < 4:
            anomalies.append((APP_TOO_SHORT, f"response fragment of {size} bytes, no IIN"))
            return Fragment(control, function_code, None, [], size)
        iin = data[2] << 8 | data[3]
        position = 4
    elif function_code not in FUNCTION_NAMES:
        anomalies.append((APP_UNKNOWN_FUNCTION, f"function code {function_code}"))
        return Fragment(control, function_code, iin, [], size)
    objects: list[DnpObject] = []
    if position < size:
        parse_objects(data, position, function_code in HEADER_ONLY_FUNCTIONS, objects, anomalies)
    return Fragment(control, function_code, iin, objects, size)


def parse_objects(
    data: bytes, position: int, header_only: bool, objects: list[DnpObject], anomalies: Anomalies
) -> None:
    """Decode object headers and data from ``position`` to the end of ``data`` into ``objects``.

    Stops (with an anomaly) at the first header it cannot get past: the rest of the fragment is
    skipped, as an outstation answering with IIN2 OBJECT_UNKNOWN or PARAMETER_ERROR would.
    """
    size = len(data)
    cto: float | None = None
    while position < size:
        if len(objects) >= MAX_OBJECTS:
            anomalies.append((TOO_MANY_OBJECTS, f"more than {MAX_OBJECTS} object headers"))
            return
        if size - position < 3:
            anomalies.append((OBJECT_OVERRUN, f"object header cut short at offset {position}"))
            return
        group = data[position]
        variation = data[position + 1]
        qualifier = data[position + 2]
        prefix_code = (qualifier >> 4) & 0x07
        range_code = qualifier & 0x0F
        position += 3
        points: list[Point] = []
        obj: DnpObject = {
            "group": group,
            "variation": variation,
            "group_name": GROUP_NAMES.get(group, UNKNOWN),
            "variation_name": _variation_name(group, variation),
            "qualifier": qualifier,
            "prefix_code": prefix_code,
            "range_code": range_code,
            "start": None,
            "stop": None,
            "count": 0,
            "points": points,
        }
        # The header goes in even when its range is broken: what was attempted stays visible.
        objects.append(obj)
        start: int | None = None
        count = 0
        if qualifier & 0x80 or prefix_code == 7:
            anomalies.append((INVALID_QUALIFIER, f"qualifier 0x{qualifier:02x} on g{group}v{variation}"))
            return
        if range_code <= 5:
            if prefix_code:
                anomalies.append(
                    (INVALID_QUALIFIER, f"qualifier 0x{qualifier:02x}: prefix with a start/stop range")
                )
                return
            pair = _START_STOP[range_code % 3]
            if size - position < pair.size:
                anomalies.append((OBJECT_OVERRUN, f"range of g{group}v{variation} cut short"))
                return
            start, stop = pair.unpack_from(data, position)
            position += pair.size
            obj["start"] = start
            obj["stop"] = stop
            if stop < start:
                anomalies.append((INVALID_RANGE, f"g{group}v{variation} range {start}-{stop}"))
                return
            count = stop - start + 1
        elif range_code == 6:
            if prefix_code:
                anomalies.append((INVALID_QUALIFIER, f"qualifier 0x{qualifier:02x}: prefix without range"))
                return
        elif range_code in _COUNT_STRUCTS:
            if range_code == 0xB and prefix_code < 4:
                anomalies.append(
                    (INVALID_QUALIFIER, f"qualifier 0x{qualifier:02x}: free format without size prefix")
                )
                return
            count_struct = _COUNT_STRUCTS[range_code]
            if size - position < count_struct.size:
                anomalies.append((OBJECT_OVERRUN, f"count of g{group}v{variation} cut short"))
                return
            (count,) = count_struct.unpack_from(data, position)
            position += count_struct.size
        else:
            anomalies.append((INVALID_QUALIFIER, f"qualifier 0x{qualifier:02x}: range code {range_code}"))
            return
        obj["count"] = count
        if count > MAX_POINT_COUNT:
            anomalies.append((TOO_MANY_POINTS, f"g{group}v{variation} claims {count} points"))
            return
        if not count:
            continue
        first = start if start is not None else 0
        if group not in GROUP_NAMES and prefix_code < 4:
            anomalies.append((UNKNOWN_OBJECT, f"group {group} unknown; {size - position} bytes skipped"))
            return
        no_data = header_only or variation == 0 or group == 60
        if prefix_code >= 4:
            position = _sized_objects(data, position, obj, anomalies)
        elif no_data:
            if prefix_code:
                index_width = _PREFIX_SIZES[prefix_code]
                end = position + count * index_width
                if end > size:
                    anomalies.append((OBJECT_OVERRUN, f"indexes of g{group}v{variation} run past the end"))
                    return
                fmt = "<" + _PREFIX_FORMATS[prefix_code]
                points.extend(
                    {"index": index, "value": None, "flags": None}
                    for (index,) in struct.iter_unpack(
                        fmt, data[position : min(end, position + MAX_POINTS * index_width)]
                    )
                )
                position = end
        elif (group, variation) in _PACKED_BITS:
            bits = _PACKED_BITS[(group, variation)]
            end = position + (count * bits + 7) // 8
            if end > size:
                anomalies.append((OBJECT_OVERRUN, f"g{group}v{variation} packed data runs past the end"))
                return
            mask = (1 << bits) - 1
            for number in range(min(count, MAX_POINTS)):
                bit = number * bits
                value = (data[position + (bit >> 3)] >> (bit & 7)) & mask
                # Two appends, not ``bool(value) if bits == 1 else value``: that expression is typed
                # int, and compiled (mypyc) it would turn the bool into 0/1.
                if bits == 1:
                    points.append({"index": first + number, "value": bool(value), "flags": None})
                else:
                    points.append({"index": first + number, "value": value, "flags": None})
            position = end
        elif group == 0:
            position = _attributes(data, position, count, first, variation, obj, anomalies)
            if position < 0:
                return
        else:
            layout = _layout(prefix_code, group, variation)
            if layout is None:
                width = object_size(group, variation)
                if width is None:
                    anomalies.append(
                        (UNKNOWN_OBJECT, f"g{group}v{variation} unknown; {size - position} bytes skipped")
                    )
                    return
                # Octet strings: one value of ``variation`` bytes per point.
                position = _octet_strings(data, position, count, first, prefix_code, width, obj, anomalies)
                if position < 0:
                    return
                continue
            row_struct, builder = layout
            end = position + count * row_struct.size
            if end > size:
                anomalies.append(
                    (OBJECT_OVERRUN, f"g{group}v{variation}: {count} objects need {end - size} more bytes")
                )
                return
            recorded = min(count, MAX_POINTS)
            rows = struct.iter_unpack(
                row_struct.format, data[position : position + recorded * row_struct.size]
            )
            # The two layouts most static data has (counters and analogs with flags; binaries with
            # flags) built here: calling a builder through its table entry is a generic call that
            # parses its four arguments, per point (compiled, a fragment of 20 such points parses
            # 10-13% faster built here).
            if builder is _flags_value:
                if prefix_code:
                    points.extend([{"index": row[0], "value": row[2], "flags": row[1]} for row in rows])
                else:
                    points.extend(
                        [
                            {"index": index, "value": row[1], "flags": row[0]}
                            for index, row in enumerate(rows, first)
                        ]
                    )
            elif builder is _state:
                if prefix_code:
                    points.extend(
                        [{"index": row[0], "value": bool(row[1] & 0x80), "flags": row[1]} for row in rows]
                    )
                else:
                    points.extend(
                        [
                            {"index": index, "value": bool(row[0] & 0x80), "flags": row[0]}
                            for index, row in enumerate(rows, first)
                        ]
                    )
            elif prefix_code:
                points.extend([builder(row, 1, row[0], cto) for row in rows])
            else:
                points.extend([builder(row, 0, index, cto) for index, row in enumerate(rows, first)])
            if group in _CTO_GROUPS and points:
                cto = points[-1]["value"]
            position = end
        if count > MAX_POINTS and len(points) >= MAX_POINTS:
            anomalies.append((POINTS_CAPPED, f"g{group}v{variation}: {count} points, {MAX_POINTS} recorded"))


def _variation_name(group: int, variation: int) -> str | None:
    if group == 0:
        return ATTRIBUTE_NAMES.get(variation, UNKNOWN)
    if group == 70:
        return FILE_VARIATION_NAMES.get(variation, UNKNOWN)
    if group == 120:
        return AUTH_VARIATION_NAMES.get(variation, UNKNOWN)
    return None


def _sized_objects(data: bytes, position: int, obj: DnpObject, anomalies: Anomalies) -> int:
    """Objects each preceded by their size (prefix codes 4-6, e.g. qualifier 0x5B); return the end."""
    group = obj["group"]
    variation = obj["variation"]
    size_struct = (_U8, _U16, _U32)[obj["prefix_code"] - 4]
    points: list[Point] = obj["points"]
    size = len(data)
    fixed = _LAYOUTS.get((group, variation))
    known = known_object(group, variation)
    for number in range(obj["count"]):
        if size - position < size_struct.size:
            anomalies.append((OBJECT_OVERRUN, f"size prefix of g{group}v{variation} cut short"))
            return size
        (length,) = size_struct.unpack_from(data, position)
        position += size_struct.size
        if length > size - position:
            anomalies.append(
                (OBJECT_OVERRUN, f"g{group}v{variation} object of {length} bytes runs past the end")
            )
            return size
        raw = data[position : position + length]
        position += length
        if number >= MAX_POINTS:
            continue
        if group == 70:
            value: Any = _file_object(variation, raw)
        elif group == 120:
            value = _auth_object(variation, raw)
        elif fixed is not None and struct.calcsize("<" + fixed[0]) == length:
            points.append(fixed[1](struct.unpack("<" + fixed[0], raw), 0, number, None))
            continue
        else:
            value = raw.hex()
        points.append({"index": number, "value": value, "flags": None})
    if not known:
        anomalies.append((UNKNOWN_OBJECT, f"g{group}v{variation} unknown (size-prefixed, skipped)"))
    return position


def _attributes(
    data: bytes, position: int, count: int, first: int, variation: int, obj: DnpObject, anomalies: Anomalies
) -> int:
    """Group 0 device attributes: data type, length, value per object; return the end or -1."""
    size = len(data)
    points: list[Point] = obj["points"]
    name = ATTRIBUTE_NAMES.get(variation, UNKNOWN)
    for number in range(count):
        if size - position < 2:
            anomalies.append((OBJECT_OVERRUN, f"g0v{variation} attribute header cut short"))
            return -1
        data_type = data[position]
        length = data[position + 1]
        position += 2
        if length > size - position:
            anomalies.append(
                (OBJECT_OVERRUN, f"g0v{variation} attribute of {length} bytes runs past the end")
            )
            return -1
        raw = data[position : position + length]
        position += length
        if number < MAX_POINTS:
            points.append(
                {
                    "index": first + number,
                    "value": _attribute_value(data_type, raw),
                    "flags": None,
                    "attribute": name,
                    "data_type": data_type,
                    "data_type_name": ATTRIBUTE_TYPE_NAMES.get(data_type, UNKNOWN),
                }
            )
    return position


def _octet_strings(
    data: bytes,
    position: int,
    count: int,
    first: int,
    prefix_code: int,
    width: int,
    obj: DnpObject,
    anomalies: Anomalies,
) -> int:
    """Octet strings (groups 110-113): ``width`` bytes each; return the end or -1."""
    prefix = _PREFIX_SIZES[prefix_code]
    end = position + count * (prefix + width)
    if end > len(data):
        anomalies.append((OBJECT_OVERRUN, f"g{obj['group']}v{obj['variation']} strings run past the end"))
        return -1
    points: list[Point] = obj["points"]
    prefix_struct = _RANGE_STRUCTS.get(prefix_code - 1) if prefix else None
    for number in range(min(count, MAX_POINTS)):
        index = first + number
        if prefix_struct is not None:
            (index,) = prefix_struct.unpack_from(data, position)
        raw = data[position + prefix : position + prefix + width]
        points.append({"index": index, "value": raw.hex(), "flags": None})
        position += prefix + width
    return end


def function_name(function_code: int) -> str:
    """Name of an application function code, ``UNKNOWN`` when undefined."""
    return FUNCTION_NAMES.get(function_code, UNKNOWN)
