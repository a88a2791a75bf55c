"""DNP3 CRC and link layer: known vectors, the word table against a bitwise CRC, frame sizes."""

from __future__ import annotations

import os

import pytest

from ics_monitor.dissect.dnp3 import crc as dnp3_crc
from ics_monitor.dissect.dnp3.link import FRAME_SIZE, user_data, user_data_unchecked
from tests.unit.dissect.dnp3.frames import crc, link

RESET_LINK = bytes(
    [
        0x05, 0x64,  # start
        0x05,  # length: control + addresses only
        0xC0,  # DIR, PRM, function 0 RESET_LINK_STATES
        0x01, 0x00,  # destination 1
        0x00, 0x04,  # source 1024
        0xE9, 0x21,  # header CRC, LSB first
    ]
)  # fmt: skip


def test_check_value() -> None:
    # CRC-16/DNP catalogue check value over the ASCII digits.
    assert dnp3_crc.crc16(b"123456789") == 0xEA82


def test_known_header() -> None:
    assert dnp3_crc.header_crc_ok(RESET_LINK)
    assert not dnp3_crc.header_crc_ok(RESET_LINK[:9] + b"\x22")


@pytest.mark.parametrize("size", [0, 1, 2, 7, 15, 16])
def test_table_crc_equals_bitwise(size: int) -> None:
    for _ in range(50):
        data = os.urandom(size)
        assert dnp3_crc.crc16(data).to_bytes(2, "little") == crc(data)
        assert dnp3_crc.block_crc_ok(data + crc(data), 0, size) if size else True


def test_append_crc() -> None:
    assert dnp3_crc.append_crc(b"\x01\x02") == b"\x01\x02" + crc(b"\x01\x02")


def test_frame_sizes() -> None:
    assert FRAME_SIZE[4] == 0  # below the minimum length
    assert FRAME_SIZE[5] == 10  # header only
    assert FRAME_SIZE[6] == 13  # 1 data byte + its CRC
    assert FRAME_SIZE[21] == 28  # one full block
    assert FRAME_SIZE[22] == 31  # a full block and a 1-byte block
    assert FRAME_SIZE[255] == 292  # the largest frame


def test_user_data_blocks() -> None:
    user = bytes(range(40))  # 16 + 16 + 8
    frame = link(0x44, 10, 1, user)
    assert len(frame) == FRAME_SIZE[5 + len(user)]
    assert user_data(frame, 0, 5 + len(user)) == (user, -1)
    broken = bytearray(frame)
    broken[10 + 18 + 3] ^= 1  # a byte of the second block
    data, bad = user_data(bytes(broken), 0, 5 + len(user))
    assert bad == 1
    assert data == user[:16]
    assert user_data_unchecked(bytes(broken), 0, 5 + len(user))[16:32] != user[16:32]
