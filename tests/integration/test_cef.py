"""CEF over syslog to real socket listeners (UDP, TCP, TLS) in the test, parsed back field by field."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.capture import open_captures
from ics_monitor.config import Config
from ics_monitor.dissect import default_registry
from ics_monitor.pipeline import Pipeline
from ics_monitor.sinks.cef import CefSyslogSink, SyslogTarget
from tests.conftest import PCAPS, need_tool
from tests.unit.sinks.test_cef import parse_cef, parse_syslog
from tests.unit.sinks.test_ecs import make_alert

CAPTURES = [PCAPS / "dnp3/crafted_anomalies.pcap", PCAPS / "modbus/crafted_anomalies.pcap"]


class Listener:
    """A syslog receiver on loopback collecting messages (octet-counted or LF framing on streams)."""

    def __init__(self, transport: str, context: ssl.SSLContext | None = None, framing: str = "octet") -> None:
        self.transport = transport
        self.framing = framing
        self.messages: list[bytes] = []
        self.errors: list[str] = []
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        if transport == "udp":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        else:
            self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.context = context
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        if self.transport == "udp":
            self.sock.settimeout(5.0)
            while True:
                try:
                    data, _ = self.sock.recvfrom(65535)
                except OSError:
                    return
                self.messages.append(data)
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return  # closed by wait()
            try:
                if self.context is not None:
                    connection = self.context.wrap_socket(connection, server_side=True)
                buffer = b""
                with connection:
                    while chunk := connection.recv(65536):
                        buffer += chunk
                        buffer = self._split(buffer)
            except (ssl.SSLError, OSError) as exc:
                self.errors.append(str(exc))
                continue
            return

    def _split(self, buffer: bytes) -> bytes:
        while True:
            if self.framing == "lf":
                line, found, rest = buffer.partition(b"\n")
                if not found:
                    return buffer
                self.messages.append(line)
                buffer = rest
                continue
            length, space, rest = buffer.partition(b" ")
            if not space or len(rest) < int(length):
                return buffer
            self.messages.append(rest[: int(length)])
            buffer = rest[int(length) :]

    def wait(self, count: int, timeout: float = 20.0) -> None:
        self.thread.join(timeout if self.transport != "udp" else 0)
        deadline = threading.Event()
        waited = 0.0
        while len(self.messages) < count and waited < timeout:
            deadline.wait(0.05)
            waited += 0.05
        self.sock.close()


def records() -> list[Any]:
    collected: list[Any] = []

    class Collect:
        def emit(self, record: Any) -> None:
            collected.append(record)

        def close(self) -> None:
            pass

    source = open_captures(str(path) for path in CAPTURES)
    Pipeline(Config(), default_registry(), event_sinks=[Collect()], flow_sinks=[Collect()]).run(source)
    alerts = [make_alert(rule_id=f"ICS-10{i:02d}", ts=1_700_000_000.0 + i) for i in range(5)]
    return collected + alerts


def expected(sent: list[Any]) -> list[Any]:
    """What the sink sends by default: alerts and anomalies, in order."""
    return [r for r in sent if r.event_type in ("alert", "anomaly")]


def check_round_trip(sent: list[Any], messages: list[bytes]) -> None:
    assert len(messages) == len(expected(sent))
    for record, message in zip(expected(sent), messages, strict=True):
        parts = parse_syslog(message)
        assert parts["app"] == "ics-monitor" and parts["msgid"] == record.event_type
        header, extension = parse_cef(parts["msg"])
        assert header[:3] == ["ics-monitor", "ics-monitor", "0.1.0"]
        if record.event_type == "alert":
            assert header[3] == record.rule_id and header[4] == record.title
            assert extension["msg"] == record.explanation
            assert extension["cs1"] == ",".join(t["id"] for t in record.technique)
            assert extension["externalId"] == record.alert_id
        else:
            assert header[3] == record.code and extension["msg"] == record.detail
            assert extension.get("cs4") == record.flow_id
        assert extension.get("src") == (record.src_ip or None)
        assert extension.get("dst") == (record.dst_ip or None)
        assert extension.get("spt") == (str(record.src_port) if record.src_port is not None else None)


def send(sink: CefSyslogSink, sent: list[Any]) -> None:
    for record in sent:
        sink.emit(record)
    sink.close()
    assert sink.dropped == 0 and sink.last_error is None


@pytest.mark.parametrize("framing", ["octet", "lf"])
def test_cef_over_tcp(framing: str) -> None:
    listener = Listener("tcp", framing=framing)
    sent = records()
    send(CefSyslogSink(f"cef:tcp://127.0.0.1:{listener.port}?framing={framing}"), sent)
    listener.wait(len(expected(sent)))
    check_round_trip(sent, listener.messages)


def test_cef_over_udp() -> None:
    listener = Listener("udp")
    # UDP has no flow control: stay well inside the receive buffer (Linux default 208 KiB) so
    # that what this test checks is the format, not the kernel dropping datagrams.
    sent = records()[:100]
    sink = CefSyslogSink(f"cef:udp://127.0.0.1:{listener.port}")
    send(sink, sent)
    listener.wait(len(expected(sent)))
    check_round_trip(sent, listener.messages)


def test_cef_over_tls_verifies_the_server(tmp_path: Path) -> None:
    openssl = need_tool("openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = Listener("tls", context)
    sent = records()
    send(CefSyslogSink(f"cef:tls://127.0.0.1:{listener.port}?ca={cert}"), sent)
    listener.wait(len(expected(sent)))
    check_round_trip(sent, listener.messages)

    # Without the CA the certificate is refused: nothing is delivered, the failure is counted.
    untrusted = Listener("tls", context)
    sink = CefSyslogSink(SyslogTarget.parse(f"cef:tls://127.0.0.1:{untrusted.port}"), close_timeout=1.0)
    sink.emit(sent[0] if sent[0].event_type == "anomaly" else sent[-1])
    sink.close()
    assert sum(sink.sent.values()) == 0 and sink.send_errors > 0
    assert "CERTIFICATE_VERIFY_FAILED" in (sink.last_error or "")
    assert untrusted.errors and "UNKNOWN_CA" in untrusted.errors[0]
    untrusted.wait(0, timeout=0)
