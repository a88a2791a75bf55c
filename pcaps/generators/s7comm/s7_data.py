"""The data the S7 captures carry: server areas, the identity served by the 3.3 server, MC7 blocks.

Shared by ``s7_server.py`` and ``s7_client.py`` (which run in the python-snap7 venvs) and by
``generate.py`` (which checks the captures against it), so it must not import snap7 or
anything outside the standard library, and must not do any I/O.

Areas (the same on both servers):

  DB1   256 bytes  (0x10 + offset) & 0xFF, except the typed values
                   DBW0 INT 1234, DBD2 REAL 3.5, DBB6 0b1010_0101, DBW8 WORD 0xBEEF
  DB2    64 bytes  (0x80 + offset) & 0xFF
  DB3   600 bytes  offset & 0xFF   (block transfer source: its upload spans two PDUs)
  DB10 1024 bytes  zero            (large reads/writes, download target)
  PE     64 bytes  (1 + offset) & 0xFF      PA 64 bytes (2 + offset) & 0xFF
  MK    256 bytes  (3 + offset) & 0xFF      TM and CT 64 bytes zero
"""

from __future__ import annotations

import struct

# --- areas -------------------------------------------------------------------------------------


def area_contents() -> list[tuple[str, int, bytearray]]:
    """(area name as in snap7's SrvArea, number, initial bytes) of every registered area."""
    db1 = bytearray((0x10 + offset) & 0xFF for offset in range(256))
    struct.pack_into(">hfBxH", db1, 0, 1234, 3.5, 0b1010_0101, 0xBEEF)
    return [
        ("DB", 1, db1),
        ("DB", 2, bytearray((0x80 + offset) & 0xFF for offset in range(64))),
        ("DB", 3, bytearray(offset & 0xFF for offset in range(600))),
        ("DB", 10, bytearray(1024)),
        ("PE", 0, bytearray((1 + offset) & 0xFF for offset in range(64))),
        ("PA", 0, bytearray((2 + offset) & 0xFF for offset in range(64))),
        ("MK", 0, bytearray((3 + offset) & 0xFF for offset in range(256))),
        ("TM", 0, bytearray(64)),
        ("CT", 0, bytearray(64)),
    ]


def data_block(number: int) -> bytes:
    """The initial bytes of DB ``number``."""
    for area, area_number, contents in area_contents():
        if area == "DB" and area_number == number:
            return bytes(contents)
    raise KeyError(number)


# --- identity served by the 3.3 server with --identity ------------------------------------------

# Our values, chosen to be recognisable in tests (libsnap7's C server has fixed ones).
IDENTITY_ORDER_NUMBER = "6ES7 317-2EK14-0AB0"  # MLFB, 20 characters in the record
IDENTITY_HARDWARE_VERSION = 5  # SZL 0x0011 index 0x0001/0x0006, Ausbg
IDENTITY_FIRMWARE = (3, 2, 17)  # SZL 0x0011 index 0x0007: V3.2.17
IDENTITY_AS_NAME = "ICSM-TEST-AS"
IDENTITY_MODULE_NAME = "ICSM CPU 317-2 PN/DP"
IDENTITY_PLANT_ID = "ICSM-PLANT-7"
IDENTITY_COPYRIGHT = "Original Siemens Equipment"
IDENTITY_SERIAL = "S C-ICSM00004242"
IDENTITY_MODULE_TYPE = "CPU 317-2 PN/DP"

# BGTyp of a CPU, as the C server and S7-300 CPUs send it.
MODULE_TYPE_ID_CPU = 0x00C0


def szl_0011() -> bytes:
    """SZL 0x0011 index 0 (module identification), LENTHDR 28 and N_DR 3, as an S7-300 sends it.

    Each record: index, MlfB[20] (space padded), BGTyp, Ausbg, Ausbe.  Index 1 is the module,
    6 the basic hardware (Ausbg = hardware version, Ausbe = 1), 7 the basic firmware
    (MlfB blank, Ausbg = 'V' and major, Ausbe = minor and patch).
    """
    major, minor, patch = IDENTITY_FIRMWARE
    order_number = IDENTITY_ORDER_NUMBER.encode("ascii").ljust(20, b" ")
    module_record = struct.pack(
        ">H20sHHH", 0x0001, order_number, MODULE_TYPE_ID_CPU, IDENTITY_HARDWARE_VERSION, 1
    )
    hardware_record = struct.pack(
        ">H20sHHH", 0x0006, order_number, MODULE_TYPE_ID_CPU, IDENTITY_HARDWARE_VERSION, 1
    )
    firmware_record = struct.pack(
        ">H20sHBBBB", 0x0007, b" " * 20, MODULE_TYPE_ID_CPU, ord("V"), major, minor, patch
    )
    records = [module_record, hardware_record, firmware_record]
    return struct.pack(">HH", 28, len(records)) + b"".join(records)


def szl_001c() -> bytes:
    """SZL 0x001C index 0 (component identification), LENTHDR 34 and N_DR 6.

    Records 1-5 and 7 (AS name, module name, plant id, copyright, serial number, module type
    name), each an index and 32 bytes of NUL-padded text, as S7-300 CPUs send them.
    """
    fields = [
        (0x0001, IDENTITY_AS_NAME),
        (0x0002, IDENTITY_MODULE_NAME),
        (0x0003, IDENTITY_PLANT_ID),
        (0x0004, IDENTITY_COPYRIGHT),
        (0x0005, IDENTITY_SERIAL),
        (0x0007, IDENTITY_MODULE_TYPE),
    ]
    records = [struct.pack(">H32s", index, text.encode("ascii")) for index, text in fields]
    return struct.pack(">HH", 34, len(records)) + b"".join(records)


def szl_0424(running: bool) -> bytes:
    """SZL 0x0424 index 0 (current mode), LENTHDR 20 and N_DR 1.

    ereig 0x4305 (transition to RUN) or 0x4304 (to STOP), ae 0xFF, bzu-id 0x08 RUN or 0x04
    STOP, then anlinfo and the time stamp left zero so that regenerating gives equal bytes.
    """
    record = struct.pack(">HBB", 0x4305 if running else 0x4304, 0xFF, 0x08 if running else 0x04)
    return struct.pack(">HH", 20, 1) + record.ljust(20, b"\x00")


# --- MC7 blocks ----------------------------------------------------------------------------------

# The footer the transfer scenario appends before downloading (libsnap7's TS7BlockFooter:
# 20 unknown bytes, author[8], family[8], header/name[8], 0x11, 0x00, checksum, 8 unknown).
FOOTER_AUTHOR, FOOTER_FAMILY, FOOTER_NAME = b"ICSMON", b"TESTS", b"DB3COPY"
FOOTER_SIZE = 56
MC7_HEADER_SIZE = 36


def uploaded_block(number: int) -> bytes:
    """A DB block as the python-snap7 3.3 server uploads it: its 36-byte header, then the DB bytes.

    Header after libsnap7's TS7CompactBlockInfo: byte 2 version 1, 4 language 5 (DB), 5
    sub-block type 0x0A (DB), 6-7 number, 8-11 load-memory length, 34-35 MC7 length.  The
    server leaves the 0x7070 magic and the time stamps zero and sends no footer.
    """
    body = data_block(number)
    header = bytearray(MC7_HEADER_SIZE)
    header[2], header[4], header[5] = 0x01, 0x05, 0x0A
    struct.pack_into(">HI", header, 6, number, MC7_HEADER_SIZE + len(body))
    struct.pack_into(">H", header, 34, len(body))
    return bytes(header) + body


def downloadable(block: bytes) -> bytearray:
    """``block`` (header and MC7 code) with a footer appended, ready for libsnap7's download.

    libsnap7 checks that the load-memory length (offset 8) equals the buffer size and that
    a footer follows header + MC7 code.
    """
    footer = bytearray(FOOTER_SIZE)
    footer[20:28] = FOOTER_AUTHOR.ljust(8, b"\x00")
    footer[28:36] = FOOTER_FAMILY.ljust(8, b"\x00")
    footer[36:44] = FOOTER_NAME.ljust(8, b"\x00")
    footer[44] = 0x11
    result = bytearray(block) + footer
    struct.pack_into(">I", result, 8, len(result))
    return result


def downloaded_payload(block: bytes | bytearray, number: int) -> bytes:
    """The bytes libsnap7 sends in its Download block PDUs for ``download(block, number)``.

    It writes the target number into the header (offset 6) and zeroes the footer checksum.
    """
    result = bytearray(block)
    struct.pack_into(">H", result, 6, number)
    struct.pack_into(">H", result, len(result) - FOOTER_SIZE + 46, 0)
    return bytes(result)


def handmade_block(number: int) -> bytearray:
    """A small DB block (0x7070 header, 16 MC7 bytes, footer) for a download the C server refuses."""
    body = bytes(range(16))
    header = bytearray(MC7_HEADER_SIZE)
    struct.pack_into(">HBBBBH", header, 0, 0x7070, 0x01, 0x00, 0x05, 0x0A, number)
    struct.pack_into(">H", header, 34, len(body))
    return downloadable(bytes(header) + body)
