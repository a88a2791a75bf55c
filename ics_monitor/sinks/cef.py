r"""CEF over syslog (UDP, TCP, TLS) with RFC 5424 framing, for SIEMs other than Elasticsearch.

One record becomes one syslog message whose MSG is a CEF event::

    <PRI>1 TIMESTAMP HOSTNAME ics-monitor PROCID MSGID - CEF:0|ics-monitor|ics-monitor|VERSION|CLASS|NAME|SEV|EXT
     │                                          │                                       │     │    │    └ key=value ...
     │                                          └ alert | anomaly | flow | asset | event │     │    └ 0..10
     └ facility * 8 + syslog severity (from the CEF severity)                           │     └ rule title / code
                                                                                        └ rule id / anomaly code

* CEF escaping (ArcSight CEF rev. 25): in header fields ``\`` and ``|`` are escaped with a
  backslash; in extension values ``\`` and ``=`` are escaped and CR/LF become ``\r``/``\n``.
  Extension keys are fixed ASCII names below.
* Severity: alert 1 low → 3, 2 medium → 5, 3 high → 8, 4 critical → 10; anomaly info → 1,
  low → 3, medium → 5, high → 8.
* Custom keys: ``cs1`` ATT&CK technique ids, ``cs2`` tactic ids, ``cs3`` technique names, ``cs4``
  the flow id, ``cs5`` the Community ID, ``cs6`` OT detail (protocol fields or evidence, JSON),
  ``cn1`` the dedup count; each with its ``csNLabel``/``cn1Label``.  ``outcome``: success or
  failure, the device's answer to the command an alert is about, once it came.
* Transports: ``udp`` (one message per datagram), ``tcp`` and ``tls`` (RFC 6587 octet counting, as
  RFC 5425 requires for TLS; ``framing=lf`` for receivers that want newline-delimited messages).
  TLS verifies the server certificate by default (``ca=FILE``, ``verify=false`` to disable).

Sending never blocks the packet thread: a bounded queue feeds a sender thread that reconnects with
backoff; when the queue is full the record is dropped and counted (``dropped``).  No spool: the
durable path is the Elasticsearch sink; syslog receivers are fire-and-forget by design.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from ics_monitor import __version__
from ics_monitor.core.errors import ConfigError
from ics_monitor.sinks.ecs import (
    ALERT,
    ANOMALY,
    ASSET,
    EVENT,
    FLOW,
    KINDS,
    EcsMapper,
    Observer,
    event_outcome,
    iso_time,
    record_dict,
)

log = logging.getLogger(__name__)

CEF_VENDOR = "ics-monitor"
CEF_PRODUCT = "ics-monitor"
ALERT_SEVERITY = {1: 3, 2: 5, 3: 8, 4: 10}
ANOMALY_SEVERITY = {"info": 1, "low": 3, "medium": 5, "high": 8}
DEFAULT_KINDS = frozenset({ALERT, ANOMALY})
FACILITIES = {
    "kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
    "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}  # fmt: skip
# UDP: stay under the common 8 KiB receive buffers of syslog daemons; longer messages are cut.
MAX_UDP_MESSAGE = 8192
MAX_EXTENSION_VALUE = 4000
_DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}


# ---------------------------------------------------------------------------------------------
# CEF formatting (pure)


def escape_header(value: Any) -> str:
    """Escape a CEF header field: backslash and pipe; line breaks become spaces."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r", " ").replace("\n", " ")


def escape_extension(value: Any) -> str:
    """Escape a CEF extension value: backslash, equals sign, CR and LF."""
    text = "" if value is None else str(value)
    if len(text) > MAX_EXTENSION_VALUE:
        text = text[:MAX_EXTENSION_VALUE]
    return (
        text.replace("\\", "\\\\")
        .replace("=", "\\=")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def cef_severity(kind: str, data: Mapping[str, Any]) -> int:
    """CEF severity 0..10 of a record (see the module docstring)."""
    if kind == ALERT:
        return ALERT_SEVERITY.get(int(data.get("severity") or 0), 5)
    if kind == ANOMALY:
        return ANOMALY_SEVERITY.get(str(data.get("severity")), 5)
    return 1


def syslog_severity(cef: int) -> int:
    """RFC 5424 severity for a CEF severity: 10 critical(2), 8-9 error(3), 5-7 warning(4), ..."""
    if cef >= 10:
        return 2
    if cef >= 8:
        return 3
    if cef >= 5:
        return 4
    if cef >= 3:
        return 5
    return 6


_PROTOCOL_COMMON = {
    "event_type",
    "ts",
    "frame",
    "flow_id",
    "transport",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
}


def _ms(ts: Any) -> int | None:
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return round(float(ts) * 1000)
    return None


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True, slots=True)
class CefEvent:
    """A formatted record: the CEF text and the values syslog framing needs."""

    kind: str
    ts: float
    severity: int
    text: str


def cef_event(kind: str, data: Mapping[str, Any], observer: Observer) -> CefEvent:
    """Format the dict form of a record (``kind`` from ``EcsMapper.kind_of``) as CEF."""
    extension: list[tuple[str, Any]] = []
    ts = float(data.get("ts") or data.get("ts_start") or data.get("last_seen") or 0.0)
    if kind == ALERT:
        class_id, name = data.get("rule_id"), data.get("title")
        techniques = [t for t in data.get("technique") or () if isinstance(t, Mapping)]
        tactics = [t for t in data.get("tactic") or () if isinstance(t, Mapping)]
        extension += [
            ("msg", data.get("explanation")),
            ("cat", data.get("category")),
            ("externalId", data.get("alert_id")),
            ("start", _ms(data.get("ts"))),
            ("end", _ms(data.get("last_ts"))),
            ("cs1Label", "mitreTechniqueId"),
            ("cs1", ",".join(str(t.get("id")) for t in techniques) or None),
            ("cs2Label", "mitreTacticId"),
            ("cs2", ",".join(str(t.get("id")) for t in tactics) or None),
            ("cs3Label", "mitreTechniqueName"),
            ("cs3", ",".join(str(t.get("name")) for t in techniques) or None),
            ("cn1Label", "dedupCount"),
            ("cn1", data.get("count")),
            ("cs6Label", "icsEvidence"),
            ("cs6", _json(data.get("evidence")) if data.get("evidence") else None),
            ("app", data.get("protocol")),
            ("outcome", event_outcome(data.get("evidence"))),
        ]
    elif kind == ANOMALY:
        class_id, name = data.get("code"), data.get("code")
        extension += [("msg", data.get("detail")), ("cat", "anomaly"), ("app", data.get("protocol"))]
    elif kind == FLOW:
        class_id, name = "flow", f"flow {data.get('end_reason')}"
        extension += [
            ("start", _ms(data.get("ts_start"))),
            ("end", _ms(data.get("ts_end"))),
            ("out", data.get("bytes_to_server")),
            ("in", data.get("bytes_to_client")),
            ("app", data.get("app_protocol") or data.get("service")),
            ("reason", data.get("end_reason")),
        ]
    elif kind == ASSET:
        class_id, name = "asset", "asset seen"
        extension += [("cs6Label", "icsAsset"), ("cs6", _json(dict(data)))]
    else:
        protocol = str(data.get("event_type"))
        class_id = f"{protocol}.{data.get('function') or data.get('operation_name') or 'pdu'}"
        name = f"{protocol} {data.get('function') or ''}".strip()
        detail = {k: v for k, v in data.items() if k not in _PROTOCOL_COMMON and v is not None}
        extension += [("app", protocol), ("cs6Label", "icsDetail"), ("cs6", _json(detail))]
    if kind != ASSET:
        extension += [
            ("src", data.get("src_ip") or None),
            ("spt", data.get("src_port")),
            ("dst", data.get("dst_ip") or None),
            ("dpt", data.get("dst_port")),
            ("smac", data.get("src_mac")),
            ("dmac", data.get("dst_mac")),
            ("proto", (data.get("transport") or "").upper() or None),
            ("cs4Label", "flowId"),
            ("cs4", data.get("flow_id")),
            ("cs5Label", "communityId"),
            ("cs5", data.get("community_id")),
        ]
    extension += [("rt", _ms(ts)), ("dvchost", observer.hostname), ("deviceExternalId", observer.name)]
    severity = cef_severity(kind, data)
    # A label without its value is noise: drop csN/cnN pairs whose value is absent.
    present = {key for key, value in extension if value is not None and value != ""}
    parts = []
    for key, value in extension:
        if value is None or value == "":
            continue
        if key.endswith("Label") and key[: -len("Label")] not in present:
            continue
        parts.append(f"{key}={escape_extension(value)}")
    header = "|".join(
        escape_header(item)
        for item in (CEF_VENDOR, CEF_PRODUCT, __version__, class_id or kind, name or kind, severity)
    )
    return CefEvent(kind, ts, severity, f"CEF:0|{header}|{' '.join(parts)}")


def syslog_message(event: CefEvent, *, hostname: str, facility: int = 16, procid: int | None = None) -> bytes:
    """The RFC 5424 message (without transport framing) carrying ``event``."""
    pri = facility * 8 + syslog_severity(event.severity)
    stamp = iso_time(event.ts) if event.ts > 0 else "-"
    host = "".join(ch for ch in hostname if 33 <= ord(ch) <= 126)[:255] or "-"
    pid = str(os.getpid() if procid is None else procid)
    return f"<{pri}>1 {stamp} {host} ics-monitor {pid} {event.kind} - {event.text}".encode()


# ---------------------------------------------------------------------------------------------
# Transport


@dataclass(frozen=True, slots=True)
class SyslogTarget:
    """Where to send: ``cef:udp://host:514``, ``cef:tcp://host:514``, ``cef:tls://host:6514?ca=FILE``."""

    transport: str
    host: str
    port: int
    framing: str = "octet"
    facility: int = 16
    ca_file: str | None = None
    verify: bool = True
    kinds: frozenset[str] = DEFAULT_KINDS

    @classmethod
    def parse(cls, text: str) -> SyslogTarget:
        """Parse a target URL; options as query parameters (framing, facility, ca, verify, kinds)."""
        url = text[4:] if text.startswith("cef:") else text
        parts = urlsplit(url)
        transport = parts.scheme.lower()
        if transport not in _DEFAULT_PORTS:
            raise ConfigError(f"CEF target {text!r}: transport must be udp, tcp or tls")
        if not parts.hostname:
            raise ConfigError(f"CEF target {text!r}: no host")
        try:
            port = parts.port or _DEFAULT_PORTS[transport]
        except ValueError:
            raise ConfigError(f"CEF target {text!r}: bad port") from None
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        framing = options.pop("framing", "octet")
        if framing not in ("octet", "lf"):
            raise ConfigError(f"CEF target {text!r}: framing must be octet or lf")
        facility_name = options.pop("facility", "local0")
        if facility_name not in FACILITIES:
            raise ConfigError(f"CEF target {text!r}: unknown facility {facility_name!r}")
        verify = options.pop("verify", "true").lower() not in ("0", "false", "no", "off")
        ca_file = options.pop("ca", None)
        kinds_text = options.pop("kinds", None)
        kinds = frozenset(k for k in kinds_text.split(",") if k) if kinds_text else DEFAULT_KINDS
        if kinds - set(KINDS):
            raise ConfigError(f"CEF target {text!r}: unknown kinds {sorted(kinds - set(KINDS))}")
        if options:
            raise ConfigError(f"CEF target {text!r}: unknown options {sorted(options)}")
        return cls(
            transport, parts.hostname, port, framing, FACILITIES[facility_name], ca_file, verify, kinds
        )


def frame_message(message: bytes, transport: str, framing: str) -> bytes:
    """Transport framing: none for UDP; RFC 6587 octet counting or a trailing LF for TCP/TLS."""
    if transport == "udp":
        return message[:MAX_UDP_MESSAGE]
    if framing == "lf":
        return message.replace(b"\n", b" ") + b"\n"
    return str(len(message)).encode() + b" " + message


class CefSyslogSink:
    """A ``Sink`` sending CEF over syslog to one target; see the module docstring."""

    def __init__(
        self,
        target: SyslogTarget | str,
        *,
        observer_name: str | None = None,
        queue_size: int = 10_000,
        timeout: float = 5.0,
        close_timeout: float = 10.0,
    ) -> None:
        self.target = SyslogTarget.parse(target) if isinstance(target, str) else target
        hostname = socket.gethostname()
        self.observer = Observer(observer_name or hostname, hostname)
        self._kinds = EcsMapper(self.observer, kinds=self.target.kinds)
        self.timeout = timeout
        self.close_timeout = close_timeout
        self.sent: Counter[str] = Counter()
        self.dropped = 0
        self.send_errors = 0
        self.last_error: str | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._socket: socket.socket | None = None
        self._closing = False
        self._deadline = 0.0
        self._rng = random.Random()
        self._ssl_context = self._make_ssl_context() if self.target.transport == "tls" else None
        self._thread = threading.Thread(target=self._run, name="ics-monitor-cef", daemon=True)
        self._thread.start()

    def _make_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.target.ca_file)
        if not self.target.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    @property
    def protocol_events(self) -> bool:
        """Whether protocol events are among the target's kinds (``Sink``; not by default)."""
        return EVENT in self.target.kinds

    def emit(self, record: Any) -> None:
        """Queue one record (dropped and counted when the queue is full)."""
        if self._kinds.kind_of(record) not in self.target.kinds:
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Send what is queued (up to ``close_timeout``), then close the connection."""
        if self._closing:
            return
        self._closing = True
        self._deadline = time.monotonic() + self.close_timeout
        self._queue.put(None)
        self._thread.join(self.close_timeout + self.timeout + 1.0)
        self._disconnect(graceful=True)

    # -- sender thread --------------------------------------------------------------------------

    def _message(self, record: Any) -> bytes:
        kind = self._kinds.kind_of(record)
        event = cef_event(kind, record_dict(record), self.observer)
        message = syslog_message(event, hostname=self.observer.hostname, facility=self.target.facility)
        return frame_message(message, self.target.transport, self.target.framing)

    def _connect(self) -> socket.socket:
        if self._socket is not None:
            return self._socket
        target = self.target
        if target.transport == "udp":
            family = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)[0][0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.connect((target.host, target.port))
        else:
            sock = socket.create_connection((target.host, target.port), timeout=self.timeout)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=target.host)
        sock.settimeout(self.timeout)
        self._socket = sock
        return sock

    def _disconnect(self, graceful: bool = False) -> None:
        sock = self._socket
        if sock is None:
            return
        self._socket = None
        if graceful and self.target.transport != "udp":
            # Closing a socket with unread input (TLS 1.3 session tickets) sends a reset, and the
            # receiver may discard the last messages it had not read yet: say goodbye properly
            # (TLS close_notify, then FIN) and read until the receiver closes too.
            with contextlib.suppress(OSError, ValueError):
                sock.settimeout(min(self.timeout, 2.0))
                if isinstance(sock, ssl.SSLSocket):
                    sock = sock.unwrap()
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(4096):
                    pass
        with contextlib.suppress(OSError):
            sock.close()

    def _run(self) -> None:
        attempt = 0
        pending: bytes | None = None
        pending_kind = ""
        while True:
            if pending is None:
                try:
                    record = self._queue.get(timeout=0.5)
                except queue.Empty:
                    if self._closing:
                        return
                    continue
                if record is None:
                    if self._queue.empty():
                        return
                    continue
                pending = self._message(record)
                pending_kind = self._kinds.kind_of(record)
            try:
                self._connect().sendall(pending)
            except OSError as exc:
                self.send_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                self._disconnect()
                if self._closing and time.monotonic() >= self._deadline:
                    self.dropped += 1 + self._queue.qsize()
                    return
                attempt += 1
                delay = min(30.0, 0.2 * 2 ** min(attempt, 10))
                time.sleep(self._rng.uniform(delay / 2, delay))
                continue
            attempt = 0
            self.sent[pending_kind] += 1
            pending = None


def parse_targets(texts: Iterable[str]) -> list[SyslogTarget]:
    """Parse several ``cef:...`` targets (for the CLI's ``--out``)."""
    return [SyslogTarget.parse(text) for text in texts]
