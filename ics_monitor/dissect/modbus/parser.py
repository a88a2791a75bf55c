"""Modbus PDU decoding: pure functions over a buffer, one per function code and direction.

Modbus/TCP ADU (Messaging on TCP/IP Implementation Guide 3.1.3), big-endian::

    +----------------+-------------+----------+---------+---------------+------------------+
    | TRANSACTION ID | PROTOCOL ID | LENGTH   | UNIT ID | FUNCTION CODE | DATA             |
    | 2              | 2 (0)       | 2 (N+2)  | 1       | 1             | N (0..252)       |
    +----------------+-------------+----------+---------+---------------+------------------+
    '-------------------- MBAP header (7) --------------------'---------- PDU -----------'

Every decoder takes ``(data, start, end)`` where ``data[start:end]`` is the PDU data after the
function code, and responses also the pending request (``Request``: its frame, time, function code,
address, quantity and sub-function) or None.  It returns ``Parsed``::

    (address, quantity, byte_count, values, own, problems)

``own`` is None for functions whose record is a plain ``ModbusEvent``, else the subclass-own field
values in ``events.modbus.OWN_FIELDS`` order; ``problems`` is a tuple of ``(anomaly code, detail)``.
Decoders never raise on short or long input: what is there is decoded and the rest is a problem.
No I/O, no records, no state.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

from ics_monitor.dissect.modbus.constants import (
    ADDRESS_OVERFLOW,
    BAD_COIL_VALUE,
    BAD_READ_DEVICE_ID_CODE,
    BAD_REFERENCE_TYPE,
    BYTE_COUNT_MISMATCH,
    CONFORMITY_LEVEL_NAMES,
    DIAGNOSTIC_NAMES,
    EXCEPTION_NAMES,
    FILE_REFERENCE_TYPE,
    LENGTH_MISMATCH,
    MAX_DEVICE_OBJECTS,
    MAX_FIFO_COUNT,
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    MAX_READ_WRITE_REGISTERS,
    MAX_WRITE_BITS,
    MAX_WRITE_REGISTERS,
    MEI_NAMES,
    OBJECT_NAMES,
    QUANTITY_OUT_OF_RANGE,
    READ_DEVICE_ID_NAMES,
    RUN_INDICATOR_NAMES,
    TRUNCATED_PDU,
    UMAS_NAMES,
    UMAS_STATUS_NAMES,
    UNKNOWN,
    UNKNOWN_EXCEPTION,
    UNKNOWN_MEI_TYPE,
    UNKNOWN_SUB_FUNCTION,
    DiagnosticSubFunction,
    MeiType,
)

Problems = tuple[tuple[str, str], ...]
# (address, quantity, byte_count, values, own fields or None, problems)
Parsed = tuple[int | None, int | None, int | None, tuple[int, ...] | None, tuple[Any, ...] | None, Problems]
# A pending request: (frame, ts, function code, address, quantity, sub-function / UMAS code).
Request = tuple[int, float, int, int | None, int | None, int | None]
Buffer = memoryview | bytes
RequestDecoder = Callable[[Buffer, int, int], Parsed]
ResponseDecoder = Callable[[Buffer, int, int, Request | None], Parsed]

MBAP: Final = struct.Struct(">HHHBB")  # transaction id, protocol id, length, unit id, function code
_U16: Final = struct.Struct(">H")
_U16_PAIR: Final = struct.Struct(">HH")
_U16_TRIPLE: Final = struct.Struct(">HHH")
_READ_WRITE: Final = struct.Struct(">HHHHB")  # FC 23 request
_FILE_GROUP: Final = struct.Struct(">BHHH")  # FC 20/21 sub-request: reference type, file, record, length
_DEVICE_ID_HEAD: Final = struct.Struct(">BBBBB")  # read code, conformity, more follows, next id, count
_unpack_u16: Final = _U16.unpack_from
_unpack_pair: Final = _U16_PAIR.unpack_from

NONE: Problems = ()
_REGISTER_STRUCTS: Final = [struct.Struct(f">{count}H") for count in range(128)]
# Each byte as eight 0/1 bytes, least significant bit first (coil order, Application Protocol 6.1).
_BITS: Final = [bytes((value >> bit) & 1 for bit in range(8)) for value in range(256)]


def registers(data: Buffer, start: int, count: int) -> tuple[int, ...]:
    """``count`` big-endian 16-bit registers from ``data[start:]`` (the caller checked the size)."""
    if count < 128:
        return _REGISTER_STRUCTS[count].unpack_from(data, start)
    return struct.unpack_from(f">{count}H", data, start)


def bits(data: Buffer, start: int, end: int, quantity: int | None) -> tuple[int, ...]:
    """The bits of ``data[start:end]`` as 0/1 ints, LSB of the first byte first, cut to ``quantity``."""
    table = _BITS
    if end - start == 1:
        packed = table[data[start]]
    else:
        packed = b"".join([table[value] for value in data[start:end]])
    return tuple(packed[:quantity] if quantity is not None else packed)


def hex_of(data: Buffer, start: int, end: int) -> str:
    """Lower-case hex of ``data[start:end]``."""
    return bytes(data[start:end]).hex()


def _address_only(data: Buffer, start: int, size: int) -> int | None:
    """The leading address of a PDU cut short, when its two bytes arrived (what is there is decoded)."""
    return _unpack_u16(data, start)[0] if size >= 2 else None


def _fixed(size: int, expected: int, what: str) -> Problems:
    """Problems of a PDU whose data must be exactly ``expected`` bytes."""
    if size == expected:
        return NONE
    if size < expected:
        return ((TRUNCATED_PDU, f"{what}: {size} data bytes, needs {expected}"),)
    return ((LENGTH_MISMATCH, f"{what}: {size} data bytes, expected {expected}"),)


def _counted(size: int, byte_count: int, head: int, what: str) -> Problems:
    """Problems of a PDU with ``head`` fixed bytes then ``byte_count`` bytes."""
    if size == head + byte_count:
        return NONE
    if size < head + byte_count:
        return ((TRUNCATED_PDU, f"{what}: byte count {byte_count}, only {size - head} bytes"),)
    return ((LENGTH_MISMATCH, f"{what}: byte count {byte_count} but {size - head} bytes follow"),)


def _range(address: int, quantity: int, low: int, high: int, what: str) -> Problems:
    """Problems of a (starting address, quantity) pair limited to ``low..high``."""
    if quantity < low or quantity > high:
        return ((QUANTITY_OUT_OF_RANGE, f"{what}: quantity {quantity} outside {low}..{high}"),)
    if address + quantity > 0x10000:
        return ((ADDRESS_OVERFLOW, f"{what}: address {address} + quantity {quantity} > 65536"),)
    return NONE


# -- reads: FC 1, 2, 3, 4 ---------------------------------------------------------------------------------


def _read_request(limit: int, what: str) -> RequestDecoder:
    """FC 1-4 request.

    Layout::

        +------------------+----------+
        | STARTING ADDRESS | QUANTITY |
        | 2                | 2        |
        +------------------+----------+
    """

    def decode(data: Buffer, start: int, end: int) -> Parsed:
        size = end - start
        if size == 4:
            address, quantity = _unpack_pair(data, start)
            if 1 <= quantity <= limit and address + quantity <= 0x10000:
                return address, quantity, None, None, None, NONE
            return address, quantity, None, None, None, _range(address, quantity, 1, limit, what)
        if size < 4:
            return _address_only(data, start, size), None, None, None, None, _fixed(size, 4, what)
        address, quantity = _unpack_pair(data, start)
        return (
            address,
            quantity,
            None,
            None,
            None,
            _fixed(size, 4, what) + _range(address, quantity, 1, limit, what),
        )

    return decode


def read_bits_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 1, 2 response (Application Protocol 6.1, 6.2).

    Layout::

        +------------+---------------------------------------+
        | BYTE COUNT | STATUS: N bytes, bit 0 of byte 0 first |
        | 1 (N)      | N = ceil(quantity / 8)                 |
        +------------+---------------------------------------+
    """
    size = end - start
    if size < 1:
        return None, None, None, None, None, ((TRUNCATED_PDU, "read bits response: no byte count"),)
    byte_count = data[start]
    stop = min(end, start + 1 + byte_count)
    problems = NONE if size == 1 + byte_count else _counted(size, byte_count, 1, "read bits response")
    if request is None:
        return None, None, byte_count, bits(data, start + 1, stop, None), None, problems
    quantity = request[4]
    if quantity is not None and byte_count != (quantity + 7) >> 3:
        problems += (
            (BYTE_COUNT_MISMATCH, f"read bits response: byte count {byte_count} for quantity {quantity}"),
        )
    return request[3], quantity, byte_count, bits(data, start + 1, stop, quantity), None, problems


def read_registers_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 3, 4 response (Application Protocol 6.3, 6.4); FC 23 response too.

    Layout::

        +------------+-------------------------------+
        | BYTE COUNT | REGISTER VALUES: N / 2 x u16  |
        | 1 (N)      | N = 2 x quantity              |
        +------------+-------------------------------+
    """
    size = end - start
    if size < 1:
        return None, None, None, None, None, ((TRUNCATED_PDU, "read registers response: no byte count"),)
    byte_count = data[start]
    available = min(size - 1, byte_count)
    values = registers(data, start + 1, available >> 1)
    if request is None:
        if size == 1 + byte_count and not byte_count & 1:
            return None, None, byte_count, values, None, NONE
        problems = _counted(size, byte_count, 1, "read registers response")
        if byte_count & 1:
            problems += ((BYTE_COUNT_MISMATCH, f"read registers response: odd byte count {byte_count}"),)
        return None, None, byte_count, values, None, problems
    quantity = request[4]
    if size == 1 + byte_count and quantity is not None and byte_count == quantity << 1:
        return request[3], quantity, byte_count, values, None, NONE
    problems = _counted(size, byte_count, 1, "read registers response")
    if quantity is not None and byte_count != quantity << 1:
        problems += (
            (
                BYTE_COUNT_MISMATCH,
                f"read registers response: byte count {byte_count} for quantity {quantity}",
            ),
        )
    return request[3], quantity, byte_count, values, None, problems


# -- single writes: FC 5, 6 ----------------------------------------------------------------------------------


def write_coil(data: Buffer, start: int, end: int, request: Request | None = None) -> Parsed:
    """FC 5 request and (echo) response (Application Protocol 6.5).

    Layout::

        +----------------+---------------------------------+
        | OUTPUT ADDRESS | OUTPUT VALUE: 0xFF00 ON, 0 OFF  |
        | 2              | 2                               |
        +----------------+---------------------------------+
    """
    size = end - start
    if size < 4:
        return _address_only(data, start, size), None, None, None, None, _fixed(size, 4, "write single coil")
    address, value = _unpack_pair(data, start)
    problems = NONE if size == 4 else _fixed(size, 4, "write single coil")
    if value == 0xFF00:
        return address, 1, None, (1,), None, problems
    if value == 0:
        return address, 1, None, (0,), None, problems
    return address, 1, None, (value,), None, (*problems, (BAD_COIL_VALUE, f"coil value 0x{value:04x}"))


def write_register(data: Buffer, start: int, end: int, request: Request | None = None) -> Parsed:
    """FC 6 request and (echo) response (Application Protocol 6.6).

    Layout::

        +------------------+----------------+
        | REGISTER ADDRESS | REGISTER VALUE |
        | 2                | 2              |
        +------------------+----------------+
    """
    size = end - start
    if size < 4:
        return (
            _address_only(data, start, size),
            None,
            None,
            None,
            None,
            _fixed(size, 4, "write single register"),
        )
    address, value = _unpack_pair(data, start)
    return address, 1, None, (value,), None, NONE if size == 4 else _fixed(size, 4, "write single register")


# -- multiple writes: FC 15, 16 -------------------------------------------------------------------------------


def write_coils_request(data: Buffer, start: int, end: int) -> Parsed:
    """FC 15 request (Application Protocol 6.11).

    Layout::

        +------------------+----------+------------+--------------------------------+
        | STARTING ADDRESS | QUANTITY | BYTE COUNT | OUTPUT VALUES, LSB first       |
        | 2                | 2        | 1 (N)      | N = ceil(quantity / 8)         |
        +------------------+----------+------------+--------------------------------+
    """
    size = end - start
    if size < 5:
        return _short_write(data, start, size, "write multiple coils")
    address, quantity = _unpack_pair(data, start)
    byte_count = data[start + 4]
    values = bits(data, start + 5, min(end, start + 5 + byte_count), quantity)
    problems = _range(address, quantity, 1, MAX_WRITE_BITS, "write multiple coils")
    if byte_count != (quantity + 7) >> 3:
        problems += (
            (BYTE_COUNT_MISMATCH, f"write multiple coils: byte count {byte_count} for quantity {quantity}"),
        )
    if size != 5 + byte_count:
        problems += _counted(size, byte_count, 5, "write multiple coils")
    return address, quantity, byte_count, values, None, problems


def write_registers_request(data: Buffer, start: int, end: int) -> Parsed:
    """FC 16 request (Application Protocol 6.12).

    Layout::

        +------------------+----------+------------+------------------------------+
        | STARTING ADDRESS | QUANTITY | BYTE COUNT | REGISTER VALUES: N / 2 x u16 |
        | 2                | 2        | 1 (N)      | N = 2 x quantity             |
        +------------------+----------+------------+------------------------------+
    """
    size = end - start
    if size < 5:
        return _short_write(data, start, size, "write multiple registers")
    address, quantity = _unpack_pair(data, start)
    byte_count = data[start + 4]
    values = registers(data, start + 5, min(size - 5, byte_count) >> 1)
    if (
        size == 5 + byte_count
        and byte_count == quantity << 1
        and 1 <= quantity <= MAX_WRITE_REGISTERS
        and address + quantity <= 0x10000
    ):
        return address, quantity, byte_count, values, None, NONE
    problems = _range(address, quantity, 1, MAX_WRITE_REGISTERS, "write multiple registers")
    if byte_count != quantity << 1:
        problems += (
            (
                BYTE_COUNT_MISMATCH,
                f"write multiple registers: byte count {byte_count} for quantity {quantity}",
            ),
        )
    if size != 5 + byte_count:
        problems += _counted(size, byte_count, 5, "write multiple registers")
    return address, quantity, byte_count, values, None, problems


def _short_write(data: Buffer, start: int, size: int, what: str) -> Parsed:
    if size >= 4:
        address, quantity = _unpack_pair(data, start)
        return address, quantity, None, None, None, _fixed(size, 5, what)
    return _address_only(data, start, size), None, None, None, None, _fixed(size, 5, what)


def write_multiple_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 15, 16 response (Application Protocol 6.11, 6.12).

    Layout::

        +------------------+----------+
        | STARTING ADDRESS | QUANTITY |
        | 2                | 2        |
        +------------------+----------+
    """
    size = end - start
    if size < 4:
        return (
            _address_only(data, start, size),
            None,
            None,
            None,
            None,
            _fixed(size, 4, "write multiple response"),
        )
    address, quantity = _unpack_pair(data, start)
    return (
        address,
        quantity,
        None,
        None,
        None,
        NONE if size == 4 else _fixed(size, 4, "write multiple response"),
    )


# -- FC 7, 11, 12, 17: serial-line status functions ---------------------------------------------------------


def empty_request(data: Buffer, start: int, end: int) -> Parsed:
    """FC 7, 11, 12, 17 requests: the function code alone."""
    extra: dict[str, Any] = {}
    if end == start:
        return None, None, None, None, (extra,), NONE
    extra["data"] = hex_of(data, start, end)
    return None, None, None, None, (extra,), _fixed(end - start, 0, "request without data")


def exception_status_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 7 response (Application Protocol 6.7): one byte, the eight exception status outputs."""
    size = end - start
    if size < 1:
        return None, None, None, None, ({},), _fixed(size, 1, "read exception status response")
    extra = {"exception_status": data[start]}
    return None, None, None, None, (extra,), _fixed(size, 1, "read exception status response")


def event_counter_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 11 response (Application Protocol 6.9).

    Layout::

        +--------------------------+-------------+
        | STATUS (0xFFFF busy, 0)  | EVENT COUNT |
        | 2                        | 2           |
        +--------------------------+-------------+
    """
    size = end - start
    if size < 4:
        return None, None, None, None, ({},), _fixed(size, 4, "get comm event counter response")
    status, count = _unpack_pair(data, start)
    extra = {"status": status, "event_count": count}
    return None, None, None, None, (extra,), _fixed(size, 4, "get comm event counter response")


def event_log_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 12 response (Application Protocol 6.10).

    Layout::

        +------------+--------+-------------+---------------+------------------------+
        | BYTE COUNT | STATUS | EVENT COUNT | MESSAGE COUNT | EVENTS: N - 6 x 1 byte |
        | 1 (N)      | 2      | 2           | 2             | most recent first      |
        +------------+--------+-------------+---------------+------------------------+
    """
    size = end - start
    if size < 1:
        return None, None, None, None, ({},), _fixed(size, 1, "get comm event log response")
    byte_count = data[start]
    problems = _counted(size, byte_count, 1, "get comm event log response")
    if byte_count < 6 or size < 7:
        problems += ((BYTE_COUNT_MISMATCH, f"get comm event log response: byte count {byte_count} < 6"),)
        return None, None, byte_count, None, ({},), problems
    status, event_count, message_count = _U16_TRIPLE.unpack_from(data, start + 1)
    extra = {
        "status": status,
        "event_count": event_count,
        "message_count": message_count,
        "events": list(data[start + 7 : min(end, start + 1 + byte_count)]),
    }
    return None, None, byte_count, None, (extra,), problems


def server_id_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 17 response (Application Protocol 6.13).

    Layout::

        +------------+-----------------------------+---------------------------+-----------------+
        | BYTE COUNT | SERVER ID (device-specific) | RUN INDICATOR (0 / 0xFF)  | ADDITIONAL DATA |
        | 1 (N)      | usually 1                   | 1                         | rest            |
        +------------+-----------------------------+---------------------------+-----------------+

    The server id's size is device-specific: taken as one byte when the second byte is a run
    indicator (0x00/0xFF), else as everything before a final 0x00/0xFF (pymodbus sends its
    identity text and then the run indicator), else everything.
    """
    size = end - start
    if size < 1:
        return None, None, None, None, ({},), _fixed(size, 1, "report server id response")
    byte_count = data[start]
    stop = min(end, start + 1 + byte_count)
    problems = _counted(size, byte_count, 1, "report server id response")
    body = bytes(data[start + 1 : stop])
    if len(body) >= 2 and body[1] in RUN_INDICATOR_NAMES:
        server_id, run, additional = body[:1], body[1], body[2:]
    elif body and body[-1] in RUN_INDICATOR_NAMES:
        server_id, run, additional = body[:-1], body[-1], b""
    else:
        server_id, run, additional = body, None, b""
    extra = {
        "server_id": server_id.hex(),
        "server_id_text": _printable(server_id),
        "run_indicator": run,
        "run_indicator_name": RUN_INDICATOR_NAMES.get(run, UNKNOWN) if run is not None else None,
        "additional_data": additional.hex(),
    }
    return None, None, byte_count, None, (extra,), problems


def _printable(raw: bytes) -> str | None:
    """``raw`` as text when it is printable ASCII, else None."""
    if raw and all(0x20 <= value < 0x7F for value in raw):
        return raw.decode("ascii")
    return None


# -- FC 8: diagnostics -------------------------------------------------------------------------------------

# Sub-functions whose data field is not one 16-bit word: 0 echoes any data, 21 returns statistics.
_FREE_SIZED_DIAGNOSTICS: Final = frozenset({DiagnosticSubFunction.RETURN_QUERY_DATA, 21})


def diagnostics(data: Buffer, start: int, end: int, request: Request | None = None) -> Parsed:
    """FC 8 request and response (Application Protocol 6.8).

    Layout::

        +--------------+--------------------------------------------+
        | SUB-FUNCTION | DATA (one 16-bit word for most of them)    |
        | 2            | N x 2                                      |
        +--------------+--------------------------------------------+
    """
    size = end - start
    if size < 2:
        own = (None, None, hex_of(data, start, end))
        return None, None, None, None, own, ((TRUNCATED_PDU, "diagnostics: no sub-function"),)
    sub_function = _unpack_u16(data, start)[0]
    name = DIAGNOSTIC_NAMES.get(sub_function)
    values = registers(data, start + 2, (size - 2) >> 1) if not size & 1 else None
    problems = NONE
    if name is None:
        name = UNKNOWN
        problems = ((UNKNOWN_SUB_FUNCTION, f"diagnostics sub-function {sub_function}"),)
    elif size != 4 and sub_function not in _FREE_SIZED_DIAGNOSTICS:
        problems = _fixed(size, 4, f"diagnostics {name}")
    return None, None, None, values, (sub_function, name, hex_of(data, start + 2, end)), problems


# -- FC 20, 21: file records ---------------------------------------------------------------------------------


def read_file_request(data: Buffer, start: int, end: int) -> Parsed:
    """FC 20 request (Application Protocol 6.14).

    Layout::

        +------------+------------------------------------------------------------------+
        | BYTE COUNT | sub-requests, 7 bytes each:                                      |
        | 1 (N)      | REFERENCE TYPE (6) 1, FILE 2, RECORD 2, RECORD LENGTH (words) 2  |
        +------------+------------------------------------------------------------------+
    """
    size = end - start
    if size < 1:
        return None, None, None, None, ({"records": []},), _fixed(size, 1, "read file record")
    byte_count = data[start]
    problems = _counted(size, byte_count, 1, "read file record")
    if byte_count % 7 or not 7 <= byte_count <= 0xF5:
        problems += ((BYTE_COUNT_MISMATCH, f"read file record: byte count {byte_count}"),)
    records: list[dict[str, int]] = []
    position = start + 1
    stop = min(end, start + 1 + byte_count)
    while position + 7 <= stop:
        reference, file_number, record_number, record_length = _FILE_GROUP.unpack_from(data, position)
        if reference != FILE_REFERENCE_TYPE:
            problems += ((BAD_REFERENCE_TYPE, f"read file record: reference type {reference}"),)
        records.append(
            {
                "reference_type": reference,
                "file_number": file_number,
                "record_number": record_number,
                "record_length": record_length,
            }
        )
        position += 7
    return None, None, byte_count, None, ({"records": records},), problems


def read_file_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 20 response (Application Protocol 6.14).

    Layout::

        +---------------+--------------------------------------------------------------+
        | RESP. LENGTH  | sub-responses: FILE RESP. LENGTH 1 (N), REFERENCE TYPE 1,    |
        | 1             | RECORD DATA N - 1 bytes (16-bit words)                       |
        +---------------+--------------------------------------------------------------+
    """
    size = end - start
    if size < 1:
        return None, None, None, None, ({"records": []},), _fixed(size, 1, "read file record response")
    byte_count = data[start]
    problems = _counted(size, byte_count, 1, "read file record response")
    records: list[dict[str, Any]] = []
    position = start + 1
    declared = start + 1 + byte_count
    stop = min(end, declared)
    while position + 2 <= stop:
        length = data[position]
        reference = data[position + 1]
        if reference != FILE_REFERENCE_TYPE:
            problems += ((BAD_REFERENCE_TYPE, f"read file record response: reference type {reference}"),)
        if length < 1 or position + 1 + length > stop:
            # Past the byte count: the counts disagree.  Past only the bytes there are: the PDU
            # is short, which ``_counted`` reported.
            if length < 1 or position + 1 + length > declared:
                problems += (
                    (BYTE_COUNT_MISMATCH, f"read file record response: sub-response length {length}"),
                )
            break
        records.append(
            {
                "reference_type": reference,
                "length": length,
                "values": list(registers(data, position + 2, (length - 1) >> 1)),
            }
        )
        position += 1 + length
    return None, None, byte_count, None, ({"records": records},), problems


def write_file(data: Buffer, start: int, end: int, request: Request | None = None) -> Parsed:
    """FC 21 request and (echo) response (Application Protocol 6.15).

    Layout::

        +------------+---------------------------------------------------------------------+
        | BYTE COUNT | sub-requests: REFERENCE TYPE (6) 1, FILE 2, RECORD 2, RECORD LENGTH |
        | 1 (N)      | (words) 2, RECORD DATA 2 x record length                            |
        +------------+---------------------------------------------------------------------+
    """
    size = end - start
    if size < 1:
        return None, None, None, None, ({"records": []},), _fixed(size, 1, "write file record")
    byte_count = data[start]
    problems = _counted(size, byte_count, 1, "write file record")
    records: list[dict[str, Any]] = []
    position = start + 1
    declared = start + 1 + byte_count
    stop = min(end, declared)
    while position + 7 <= stop:
        reference, file_number, record_number, record_length = _FILE_GROUP.unpack_from(data, position)
        if reference != FILE_REFERENCE_TYPE:
            problems += ((BAD_REFERENCE_TYPE, f"write file record: reference type {reference}"),)
        available = min(record_length, (stop - position - 7) >> 1)
        if position + 7 + 2 * record_length > declared:  # not only past the bytes there are
            problems += ((BYTE_COUNT_MISMATCH, f"write file record: record length {record_length}"),)
        records.append(
            {
                "reference_type": reference,
                "file_number": file_number,
                "record_number": record_number,
                "record_length": record_length,
                "values": list(registers(data, position + 7, available)),
            }
        )
        position += 7 + 2 * record_length
    if position < stop == declared:
        problems += ((BYTE_COUNT_MISMATCH, f"write file record: {stop - position} bytes after the records"),)
    return None, None, byte_count, None, ({"records": records},), problems


# -- FC 22, 23, 24 ----------------------------------------------------------------------------------------------


def mask_write(data: Buffer, start: int, end: int, request: Request | None = None) -> Parsed:
    """FC 22 request and (echo) response (Application Protocol 6.16).

    Layout::

        +-------------------+----------+---------+
        | REFERENCE ADDRESS | AND MASK | OR MASK |
        | 2                 | 2        | 2       |
        +-------------------+----------+---------+
    """
    size = end - start
    if size < 6:
        return None, None, None, None, ({},), _fixed(size, 6, "mask write register")
    address, and_mask, or_mask = _U16_TRIPLE.unpack_from(data, start)
    extra = {"and_mask": and_mask, "or_mask": or_mask}
    return address, None, None, None, (extra,), _fixed(size, 6, "mask write register")


def read_write_request(data: Buffer, start: int, end: int) -> Parsed:
    """FC 23 request (Application Protocol 6.17).

    Layout::

        +--------------+-----------+---------------+----------------+------------+-------------------+
        | READ ADDRESS | READ QTY  | WRITE ADDRESS | WRITE QTY      | BYTE COUNT | WRITE VALUES      |
        | 2            | 2 (1-125) | 2             | 2 (1-121)      | 1 (N)      | N = 2 x write qty |
        +--------------+-----------+---------------+----------------+------------+-------------------+
    """
    size = end - start
    if size < 9:
        return None, None, None, None, ({},), _fixed(size, 9, "read/write multiple registers")
    read_address, read_quantity, write_address, write_quantity, byte_count = _READ_WRITE.unpack_from(
        data, start
    )
    values = registers(data, start + 9, min(size - 9, byte_count) >> 1)
    problems = _range(read_address, read_quantity, 1, MAX_READ_REGISTERS, "read/write read range")
    problems += _range(write_address, write_quantity, 1, MAX_READ_WRITE_REGISTERS, "read/write write range")
    if byte_count != write_quantity << 1:
        problems += (
            (BYTE_COUNT_MISMATCH, f"read/write: byte count {byte_count} for write quantity {write_quantity}"),
        )
    problems += _counted(size, byte_count, 9, "read/write multiple registers")
    extra = {"write_address": write_address, "write_quantity": write_quantity, "write_values": list(values)}
    return read_address, read_quantity, byte_count, None, (extra,), problems


def read_write_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 23 response: as FC 3 (byte count, then the registers of the read range)."""
    address, quantity, byte_count, values, _own, problems = read_registers_response(data, start, end, request)
    return address, quantity, byte_count, values, ({},), problems


def fifo_request(data: Buffer, start: int, end: int) -> Parsed:
    """FC 24 request (Application Protocol 6.18): the FIFO pointer address (2 bytes)."""
    size = end - start
    if size < 2:
        return None, None, None, None, ({},), _fixed(size, 2, "read FIFO queue")
    return _unpack_u16(data, start)[0], None, None, None, ({},), _fixed(size, 2, "read FIFO queue")


def fifo_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 24 response (Application Protocol 6.18).

    Layout::

        +-----------------+------------+------------------------------+
        | BYTE COUNT      | FIFO COUNT | FIFO VALUES: count x u16     |
        | 2 (2 + 2 count) | 2 (<= 31)  |                              |
        +-----------------+------------+------------------------------+
    """
    size = end - start
    if size < 4:
        return None, None, None, None, ({},), _fixed(size, 4, "read FIFO queue response")
    byte_count, fifo_count = _unpack_pair(data, start)
    values = registers(data, start + 4, min(fifo_count, (size - 4) >> 1))
    problems = _counted(size, byte_count, 2, "read FIFO queue response")
    if byte_count != 2 + 2 * fifo_count:
        problems += ((BYTE_COUNT_MISMATCH, f"read FIFO: byte count {byte_count} for {fifo_count} values"),)
    if fifo_count > MAX_FIFO_COUNT:
        problems += ((QUANTITY_OUT_OF_RANGE, f"read FIFO: count {fifo_count} > {MAX_FIFO_COUNT}"),)
    address = request[3] if request is not None else None
    return address, fifo_count, byte_count, values, ({"fifo_count": fifo_count},), problems


# -- FC 43: encapsulated interface transport ---------------------------------------------------------------


def mei_request(data: Buffer, start: int, end: int) -> Parsed:
    """FC 43 request (Application Protocol 6.19-6.21).

    Layout::

        +----------+----------------------------------------------------+
        | MEI TYPE | MEI 14: READ DEVICE ID CODE (1-4) 1, OBJECT ID 1   |
        | 1        | MEI 13: CANopen data                               |
        +----------+----------------------------------------------------+
    """
    size = end - start
    if size < 1:
        return None, None, None, None, (None, None, None, None), _fixed(size, 1, "encapsulated interface")
    mei_type = data[start]
    name = MEI_NAMES.get(mei_type, UNKNOWN)
    if mei_type != MeiType.READ_DEVICE_IDENTIFICATION:
        problems = NONE if mei_type in MEI_NAMES else ((UNKNOWN_MEI_TYPE, f"MEI type {mei_type}"),)
        return None, None, None, None, (mei_type, name, None, hex_of(data, start + 1, end)), problems
    if size < 3:
        return None, None, None, None, (mei_type, name, None, None), _fixed(size, 3, "read device id")
    read_code = data[start + 1]
    object_id = data[start + 2]
    device_id = {
        "read_code": read_code,
        "read_code_name": READ_DEVICE_ID_NAMES.get(read_code, UNKNOWN),
        "object_id": object_id,
        "object_name": OBJECT_NAMES[object_id],
    }
    problems = _fixed(size, 3, "read device id")
    if read_code not in READ_DEVICE_ID_NAMES:
        problems += ((BAD_READ_DEVICE_ID_CODE, f"read device id code {read_code}"),)
    return None, None, None, None, (mei_type, name, device_id, None), problems


def mei_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 43/14 response (Application Protocol 6.21).

    Layout::

        +-----------+------------+--------------+--------------+-------------+------------------------+
        | READ CODE | CONFORMITY | MORE FOLLOWS | NEXT OBJECT  | NUMBER OF   | objects: ID 1,         |
        | 1         | LEVEL 1    | 1 (0 / 0xFF) | ID 1         | OBJECTS 1   | LENGTH 1 (N), VALUE N  |
        +-----------+------------+--------------+--------------+-------------+------------------------+

    preceded by the MEI type (1).  Object values are text (UTF-8 with backslash escapes for
    undecodable bytes); private objects (0x80-0xFF) are decoded the same way.
    """
    size = end - start
    if size < 1:
        return None, None, None, None, (None, None, None, None), _fixed(size, 1, "encapsulated interface")
    mei_type = data[start]
    name = MEI_NAMES.get(mei_type, UNKNOWN)
    if mei_type != MeiType.READ_DEVICE_IDENTIFICATION:
        problems = NONE if mei_type in MEI_NAMES else ((UNKNOWN_MEI_TYPE, f"MEI type {mei_type}"),)
        return None, None, None, None, (mei_type, name, None, hex_of(data, start + 1, end)), problems
    if size < 6:
        return (
            None,
            None,
            None,
            None,
            (mei_type, name, None, None),
            _fixed(size, 6, "read device id response"),
        )
    read_code, conformity, more_follows, next_object_id, count = _DEVICE_ID_HEAD.unpack_from(data, start + 1)
    problems = NONE
    if read_code not in READ_DEVICE_ID_NAMES:
        problems = ((BAD_READ_DEVICE_ID_CODE, f"read device id code {read_code}"),)
    objects: list[dict[str, Any]] = []
    position = start + 6
    for _index in range(min(count, MAX_DEVICE_OBJECTS)):
        if position + 2 > end:
            break
        object_id = data[position]
        length = data[position + 1]
        if position + 2 + length > end:
            break
        value = bytes(data[position + 2 : position + 2 + length]).decode("utf-8", "backslashreplace")
        objects.append({"id": object_id, "name": OBJECT_NAMES[object_id], "value": value})
        position += 2 + length
    if len(objects) < count:
        problems += ((TRUNCATED_PDU, f"read device id response: {len(objects)} of {count} objects"),)
    elif position != end:
        problems += ((LENGTH_MISMATCH, f"read device id response: {end - position} bytes after the objects"),)
    device_id = {
        "read_code": read_code,
        "read_code_name": READ_DEVICE_ID_NAMES.get(read_code, UNKNOWN),
        "conformity_level": conformity,
        "conformity_level_name": CONFORMITY_LEVEL_NAMES.get(conformity, UNKNOWN),
        "more_follows": more_follows == 0xFF,
        "next_object_id": next_object_id,
        "number_of_objects": count,
        "objects": objects,
    }
    return None, None, None, None, (mei_type, name, device_id, None), problems


# -- FC 90: Schneider UMAS ---------------------------------------------------------------------------------


def umas_request(data: Buffer, start: int, end: int) -> Parsed:
    """FC 90 request (Schneider UMAS; not a public spec).

    Layout::

        +-------------+---------------+------------------+
        | SESSION KEY | UMAS FUNCTION | DATA             |
        | 1           | 1             | rest             |
        +-------------+---------------+------------------+
    """
    own: tuple[Any, ...]
    if end - start < 2:
        own = (None, None, None, None, None, hex_of(data, start, end))
        return None, None, None, None, own, ((TRUNCATED_PDU, "UMAS: no session key and function"),)
    code = data[start + 1]
    own = (code, UMAS_NAMES.get(code, UNKNOWN), data[start], None, None, hex_of(data, start + 2, end))
    return None, None, None, None, own, NONE


def umas_response(data: Buffer, start: int, end: int, request: Request | None) -> Parsed:
    """FC 90 response: SESSION KEY 1, STATUS 1 (0xFE OK, 0xFD ERROR), DATA; the UMAS function is the request's."""
    own: tuple[Any, ...]
    if end - start < 2:
        own = (None, None, None, None, None, hex_of(data, start, end))
        return None, None, None, None, own, ((TRUNCATED_PDU, "UMAS response: no session key and status"),)
    status = data[start + 1]
    code = request[5] if request is not None else None
    name = UMAS_NAMES.get(code, UNKNOWN) if code is not None else None
    own = (
        code,
        name,
        data[start],
        status,
        UMAS_STATUS_NAMES.get(status, UNKNOWN),
        hex_of(data, start + 2, end),
    )
    return None, None, None, None, own, NONE


# -- anything else -----------------------------------------------------------------------------------------


def opaque(data: Buffer, start: int, end: int, request: Request | None = None) -> Parsed:
    """User-defined, reserved and unknown functions: the data as hex."""
    return None, None, None, None, ({"data": hex_of(data, start, end)},), NONE


def exception_response(data: Buffer, start: int, end: int) -> tuple[int | None, str | None, Problems]:
    """Exception response (Application Protocol 7): FUNCTION CODE | 0x80 (1), EXCEPTION CODE (1)."""
    size = end - start
    if size < 1:
        return None, None, ((TRUNCATED_PDU, "exception response without exception code"),)
    code = data[start]
    name = EXCEPTION_NAMES.get(code)
    problems = NONE if size == 1 else _fixed(size, 1, "exception response")
    if name is None:
        return code, UNKNOWN, (*problems, (UNKNOWN_EXCEPTION, f"exception code {code}"))
    return code, name, problems


REQUEST_DECODERS: dict[int, RequestDecoder] = {
    1: _read_request(MAX_READ_BITS, "read coils"),
    2: _read_request(MAX_READ_BITS, "read discrete inputs"),
    3: _read_request(MAX_READ_REGISTERS, "read holding registers"),
    4: _read_request(MAX_READ_REGISTERS, "read input registers"),
    5: write_coil,
    6: write_register,
    7: empty_request,
    8: diagnostics,
    11: empty_request,
    12: empty_request,
    15: write_coils_request,
    16: write_registers_request,
    17: empty_request,
    20: read_file_request,
    21: write_file,
    22: mask_write,
    23: read_write_request,
    24: fifo_request,
    43: mei_request,
    90: umas_request,
}

RESPONSE_DECODERS: dict[int, ResponseDecoder] = {
    1: read_bits_response,
    2: read_bits_response,
    3: read_registers_response,
    4: read_registers_response,
    5: write_coil,
    6: write_register,
    7: exception_status_response,
    8: diagnostics,
    11: event_counter_response,
    12: event_log_response,
    15: write_multiple_response,
    16: write_multiple_response,
    17: server_id_response,
    20: read_file_response,
    21: write_file,
    22: mask_write,
    23: read_write_response,
    24: fifo_response,
    43: mei_response,
    90: umas_response,
}
