"""Captures as a sensor with a short snap length records them (``tcpdump -s N``, a slicing TAP).

``sliced`` rewrites a classic pcap file keeping the first ``snaplen`` bytes of each frame and its
original length, as ``editcap -s`` does, so the tests need no Wireshark tool to make one.
"""

from __future__ import annotations

import struct
from pathlib import Path

_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<",
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",
    b"\xa1\xb2\x3c\x4d": ">",
}


def sliced(source: Path, target: Path, snaplen: int) -> Path:
    """Write ``target``: ``source`` (classic pcap) with every frame cut to ``snaplen`` bytes."""
    raw = source.read_bytes()
    order = _MAGICS[raw[:4]]
    header = bytearray(raw[:24])
    struct.pack_into(order + "I", header, 16, snaplen)
    out = [bytes(header)]
    position = 24
    while position + 16 <= len(raw):
        sec, frac, incl, orig = struct.unpack_from(order + "IIII", raw, position)
        data = raw[position + 16 : position + 16 + incl]
        kept = data[:snaplen]
        out.append(struct.pack(order + "IIII", sec, frac, len(kept), orig))
        out.append(kept)
        position += 16 + incl
    target.write_bytes(b"".join(out))
    return target
