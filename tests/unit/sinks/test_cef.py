"""CEF formatting and RFC 5424 framing, checked by parsing the output back with an independent parser.

The parser here follows the CEF specification (ArcSight "Implementing ArcSight CEF", rev. 25):
header fields split on unescaped pipes, the extension on ``key=`` at unescaped positions.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ics_monitor.core.errors import ConfigError
from ics_monitor.events import AnomalyEvent
from ics_monitor.sinks.cef import (
    CefSyslogSink,
    SyslogTarget,
    cef_event,
    cef_severity,
    escape_extension,
    escape_header,
    frame_message,
    syslog_message,
    syslog_severity,
)
from ics_monitor.sinks.ecs import Observer, record_dict
from tests.unit.sinks.test_ecs import make_alert

OBSERVER = Observer("sensor-1", "host-1")
SYSLOG = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<timestamp>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) - (?P<msg>.*)$",
    re.DOTALL,
)


def _unescape(text: str) -> str:
    out = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            out.append({"n": "\n", "r": "\r"}.get(following, following))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def parse_cef(text: str) -> tuple[list[str], dict[str, str]]:
    """(the 6 header fields after ``CEF:0``, the extension as a dict), unescaped."""
    assert text.startswith("CEF:0|"), text
    header: list[str] = []
    current = []
    index = len("CEF:0|")
    while len(header) < 6:
        char = text[index]
        if char == "\\":
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == "|":
            header.append(_unescape("".join(current)))
            current = []
        else:
            current.append(char)
        index += 1
    extension_text = text[index:]
    # Keys start at the beginning or after a space, and end at the first unescaped '='.
    starts = [
        m.start(1)
        for m in re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", extension_text)
        if not _escaped(extension_text, m.end() - 1)
    ]
    extension: dict[str, str] = {}
    for number, start in enumerate(starts):
        end = starts[number + 1] - 1 if number + 1 < len(starts) else len(extension_text)
        key, _, value = extension_text[start:end].partition("=")
        extension[key] = _unescape(value)
    return header, extension


def _escaped(text: str, position: int) -> bool:
    backslashes = 0
    position -= 1
    while position >= 0 and text[position] == "\\":
        backslashes += 1
        position -= 1
    return backslashes % 2 == 1


def parse_syslog(message: bytes) -> dict[str, Any]:
    match = SYSLOG.match(message.decode())
    assert match, message
    return match.groupdict()


def test_header_escaping_round_trips() -> None:
    assert escape_header("a|b\\c") == "a\\|b\\\\c"
    assert escape_header("line\nbreak") == "line break"


def test_extension_escaping_round_trips() -> None:
    assert escape_extension("a=b\\c\nd|e") == "a\\=b\\\\c\\nd|e"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=60))
def test_any_text_survives_escaping(text: str) -> None:
    event = cef_event(
        "anomaly",
        {"code": "x.y", "detail": text, "severity": "low", "ts": 1.0, "src_ip": "10.0.0.1"},
        OBSERVER,
    )
    header, extension = parse_cef(event.text)
    if text.strip():
        assert extension["msg"] == text[:4000]
    assert header[3] == "x.y" and extension["src"] == "10.0.0.1"


def test_alert_fields_parse_back() -> None:
    alert = make_alert(title="Write | odd \\ name")
    data = record_dict(alert)
    event = cef_event("alert", data, OBSERVER)
    header, extension = parse_cef(event.text)
    assert header == ["ics-monitor", "ics-monitor", "0.1.0", "ICS-1001", "Write | odd \\ name", "8"]
    assert extension["msg"] == alert.explanation
    assert extension["cs1Label"] == "mitreTechniqueId" and extension["cs1"] == "T0855,T0836"
    assert extension["cs2"] == "TA0106"
    assert extension["cs3"] == "Unauthorized Command Message,Modify Parameter"
    assert extension["externalId"] == alert.alert_id
    assert (extension["src"], extension["spt"], extension["dst"], extension["dpt"]) == (
        "10.0.0.1",
        "40000",
        "10.0.0.2",
        "502",
    )
    assert extension["smac"] == "00:1a:2b:3c:4d:5e" and "dmac" not in extension
    assert extension["app"] == "modbus" and "proto" not in extension  # alerts carry no transport
    assert json.loads(extension["cs6"]) == {"addresses": [1, 2], "frames": [3, 4], "function_code": 16}
    assert extension["cn1"] == "1" and extension["cs4"] == alert.flow_id
    assert extension["rt"] == str(round(alert.ts * 1000)) and extension["dvchost"] == "host-1"


@pytest.mark.parametrize(("severity", "cef", "syslog"), [(1, 3, 5), (2, 5, 4), (3, 8, 3), (4, 10, 2)])
def test_alert_severity_mapping(severity: int, cef: int, syslog: int) -> None:
    assert cef_severity("alert", {"severity": severity}) == cef
    assert syslog_severity(cef) == syslog


@pytest.mark.parametrize(("name", "cef"), [("info", 1), ("low", 3), ("medium", 5), ("high", 8)])
def test_anomaly_severity_mapping(name: str, cef: int) -> None:
    assert cef_severity("anomaly", {"severity": name}) == cef


def test_rfc5424_message_and_framing() -> None:
    anomaly = AnomalyEvent(
        ts=1_700_000_000.5,
        frame=3,
        code="modbus.length_mismatch",
        severity="high",
        detail="bad",
        src_ip="10.0.0.1",
    )
    event = cef_event("anomaly", record_dict(anomaly), OBSERVER)
    message = syslog_message(event, hostname="host 1", facility=16, procid=42)
    parts = parse_syslog(message)
    assert parts["pri"] == str(16 * 8 + 3)
    assert parts["timestamp"] == "2023-11-14T22:13:20.500000Z"
    assert (parts["host"], parts["app"], parts["procid"], parts["msgid"]) == (
        "host1",
        "ics-monitor",
        "42",
        "anomaly",
    )
    assert parts["msg"] == event.text
    framed = frame_message(message, "tcp", "octet")
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) and rest == message
    assert frame_message(message, "tls", "lf") == message + b"\n"
    assert frame_message(message, "udp", "octet") == message


def test_protocol_events_are_asked_for_only_when_selected() -> None:
    # The pipeline hands protocol events only to sinks that take them (Pipeline.protocol_sinks).
    default = CefSyslogSink("cef:udp://127.0.0.1:9")
    events = CefSyslogSink("cef:udp://127.0.0.1:9?kinds=alert,event")
    try:
        assert not default.protocol_events and events.protocol_events
    finally:
        default.close()
        events.close()


def test_target_parsing() -> None:
    target = SyslogTarget.parse("cef:tls://siem.example:6514?ca=/tmp/ca.pem&facility=local4&kinds=alert,flow")
    assert (target.transport, target.host, target.port, target.facility) == ("tls", "siem.example", 6514, 20)
    assert target.ca_file == "/tmp/ca.pem" and target.verify and target.kinds == {"alert", "flow"}
    assert SyslogTarget.parse("cef:udp://127.0.0.1").port == 514
    assert SyslogTarget.parse("tcp://h:1?framing=lf&verify=false").framing == "lf"
    for bad in (
        "cef:http://h",
        "cef:tcp://",
        "cef:tcp://h?framing=x",
        "cef:tcp://h?x=1",
        "cef:udp://h?kinds=zz",
    ):
        with pytest.raises(ConfigError):
            SyslogTarget.parse(bad)
