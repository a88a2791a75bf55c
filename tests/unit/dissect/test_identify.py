"""IT protocol identification labels flows by content, on any port, and never produces records."""

from __future__ import annotations

import pytest

from ics_monitor.dissect import DissectEngine, ParseContext, Registry, default_registry
from ics_monitor.dissect.identify import identifiers
from tests.support.lenmsg import LenMsgDissector

OPENINGS = {
    "tls": bytes.fromhex("160301020001") + b"\x00" * 40,  # handshake record, TLS 1.0 header, ClientHello
    "http": b"GET /index.html HTTP/1.1\r\nHost: plc\r\n\r\n",
    "ssh": b"SSH-2.0-OpenSSH_9.2\r\n",
    "smb": b"\x00\x00\x00\x45\xfeSMB" + b"\x00" * 60,
    "rdp": b"\x03\x00\x00\x2b\x26\xe0\x00\x00\x00\x00\x00Cookie: mstshash=eng01\r\n\x01\x00\x08\x00\x03\x00\x00\x00",
    "telnet": b"\xff\xfd\x18\xff\xfd\x20",
    "vnc": b"RFB 003.008\n",
    "mqtt": b"\x10\x16\x00\x04MQTT\x04\x02\x00\x3c\x00\x0aclient-001",
}


@pytest.mark.parametrize("protocol", sorted(OPENINGS))
def test_identified_on_an_unusual_port_without_records(protocol: str) -> None:
    engine = DissectEngine(Registry([LenMsgDissector(), *identifiers()]), strict=True)
    fd = engine.start(ParseContext("f", "tcp", "192.0.2.1", 50000, "192.0.2.2", 8081), aligned=True)
    assert fd is not None
    assert engine.feed(fd, 0, OPENINGS[protocol], 1.0, 1) is False
    assert fd.protocol == protocol and engine.events == []


def test_ics_bytes_are_not_taken_for_it() -> None:
    engine = DissectEngine(default_registry(), strict=True)
    modbus_request = bytes.fromhex("000100000006010300000002")
    s7_connect = bytes.fromhex("0300001611e00000000100c0010ac1020100c2020102")
    for payload in (modbus_request, s7_connect):
        fd = engine.start(ParseContext("f", "tcp", "192.0.2.1", 50000, "192.0.2.2", 8081), aligned=True)
        assert fd is not None
        engine.feed(fd, 0, payload, 1.0, 1)
        assert fd.protocol not in {i.name for i in identifiers()}
