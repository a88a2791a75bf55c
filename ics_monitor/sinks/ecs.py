"""Elastic Common Schema (ECS) documents: the one place records become ECS, and the field table.

``FIELDS`` is the single source of truth for every field a document may carry: its ECS (or
``ics.*``) name, its Elasticsearch type, the document kinds that carry it and where its value comes
from.  The index templates (``index_templates``), the README field table (``markdown_table``,
``python -m ics_monitor.sinks.ecs --markdown``) and the unit tests that check every converted
document against the table are all derived from it.

Document kinds, one index family each (``<prefix>-<kind>-YYYY.MM.DD`` by capture date, UTC):

* ``alert``: detection alerts (``event.kind: alert``, ``rule.*``, ``threat.*``);
* ``asset``: one document per asset, replaced by id (``<prefix>-asset``, no date);
* ``flow``: flow records (``event.category: network``);
* ``anomaly``: dissector and decoder anomalies (stable ``ics.anomaly.code``);
* ``event``: protocol events (opt-in; ``ics.modbus.*``, ``ics.dnp3.*``, ``ics.s7comm.*`` ...);
* ``health``: the sensor's own health records of a live run (``event.kind: metric``, ``ics.health.*``:
  kernel packets and drops, internal counters, memory).

Document ids are deterministic (a replay of the same capture gives the same ids), so writing with
``op_type: create`` never duplicates.  Alerts and assets are living documents: they are written with
an external version (the alert's dedup ``count``, the asset's ``last_seen``) so a newer state
replaces an older one and a replayed one is refused as a conflict.

Only core field types (keyword, text, long, double, boolean, ip, date, object) are used, so the
templates load on every 8.x/9.x cluster.  The root mapping is ``dynamic: false``: fields not in the
table stay in ``_source`` (visible in Discover) but are not indexed, so no record can ever cause a
mapping conflict by a new key.  This module does no I/O.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from ics_monitor import __version__
from ics_monitor.alerts.record import Alert, alert_to_dict

ECS_VERSION = "8.17.0"
MODULE = "ics_monitor"
DEFAULT_PREFIX = "ics-monitor"

ALERT = "alert"
ASSET = "asset"
FLOW = "flow"
ANOMALY = "anomaly"
EVENT = "event"
HEALTH = "health"
KINDS: tuple[str, ...] = (ALERT, ASSET, FLOW, ANOMALY, EVENT, HEALTH)
ALL = KINDS
# Kinds written by default; protocol events are opt-in (one document per PDU is a lot of data).
DEFAULT_KINDS: frozenset[str] = frozenset({ALERT, ASSET, FLOW, ANOMALY, HEALTH})

# Field types; "object" here means a JSON object stored in _source but not parsed or indexed
# (``enabled: false``), for free-form payloads such as alert evidence or DNP3 object lists.
KEYWORD = "keyword"
TEXT = "text"
LONG = "long"
DOUBLE = "double"
BOOLEAN = "boolean"
IP = "ip"
DATE = "date"
OBJECT = "object"
TYPES = frozenset({KEYWORD, TEXT, LONG, DOUBLE, BOOLEAN, IP, DATE, OBJECT})

# keyword values longer than this are kept in _source but not indexed (Lucene's term limit is
# 32 KiB; 1024 is the ECS default and keeps hex dumps from bloating the terms dictionary).
IGNORE_ABOVE = 1024

ANOMALY_SEVERITY = {"info": 1, "low": 2, "medium": 3, "high": 4}
ATTACK_FRAMEWORK = "MITRE ATT&CK"
ATTACK_TACTIC_URL = "https://attack.mitre.org/tactics/{}/"
ATTACK_TECHNIQUE_URL = "https://attack.mitre.org/techniques/{}/"


@dataclass(frozen=True, slots=True)
class EcsField:
    """One row of the field table."""

    name: str
    type: str
    kinds: tuple[str, ...]
    source: str
    description: str

    @property
    def is_ecs(self) -> bool:
        """True for ECS fields, False for our own ``ics.*`` fields."""
        return not self.name.startswith("ics.")


def _f(name: str, type_: str, kinds: Iterable[str], source: str, description: str) -> EcsField:
    return EcsField(name, type_, tuple(kinds), source, description)


_A, _S, _F, _N, _E, _H = ALERT, ASSET, FLOW, ANOMALY, EVENT, HEALTH
_NET = (_A, _F, _N, _E)  # kinds that describe traffic between two endpoints
_PROTOCOL_COMMON = frozenset(
    {"event_type", "ts", "frame", "flow_id", "transport", "src_ip", "src_port", "dst_ip", "dst_port"}
)
# Keys of a protocol event that are not its protocol's own (``ics.direction``, ``ics.truncated``).
_NOT_PROTOCOL_OWN = _PROTOCOL_COMMON | {"direction", "truncated"}

FIELDS: tuple[EcsField, ...] = (
    # Base and event.*
    _f("@timestamp", DATE, ALL, "ts / ts_start / last_seen", "capture time of the record (UTC)"),
    _f("ecs.version", KEYWORD, ALL, "constant", f"ECS version followed ({ECS_VERSION})"),
    _f("message", TEXT, (_A, _N), "explanation / detail", "human-readable explanation"),
    _f("tags", KEYWORD, ALL, "constant", "always contains `ics-monitor`"),
    _f("event.kind", KEYWORD, ALL, "per kind", "alert, asset, event or metric (health)"),
    _f("event.category", KEYWORD, ALL, "per kind", "network (+ intrusion_detection for alerts), host"),
    _f("event.type", KEYWORD, ALL, "per kind", "info, connection/end, protocol"),
    _f("event.module", KEYWORD, ALL, "constant", f"`{MODULE}`"),
    _f("event.dataset", KEYWORD, ALL, "per kind", f"`{MODULE}.<kind>` or `{MODULE}.<protocol>`"),
    _f("event.id", KEYWORD, ALL, "alert_id / document id", "unique id of the record"),
    _f("event.action", KEYWORD, (_F, _N, _E), "end_reason / code / function", "what happened"),
    _f("event.severity", LONG, (_A, _N), "severity", "1 low/info .. 4 critical/high"),
    _f(
        "event.outcome",
        KEYWORD,
        (_A,),
        "evidence.outcome.result",
        "success / failure: the device accepted / refused the command alerted on",
    ),
    _f("event.start", DATE, (_A, _F), "ts / ts_start", "first seen"),
    _f("event.end", DATE, (_A, _F), "last_ts / ts_end", "last seen"),
    _f("event.duration", LONG, (_F,), "duration", "flow duration in nanoseconds"),
    # observer.*: the sensor
    _f("observer.name", KEYWORD, ALL, "setting `observer_name`", "the sensor's name"),
    _f("observer.hostname", KEYWORD, ALL, "host name", "host the sensor runs on"),
    _f("observer.type", KEYWORD, ALL, "constant", "`ids`"),
    _f("observer.vendor", KEYWORD, ALL, "constant", "`ics-monitor`"),
    _f("observer.product", KEYWORD, ALL, "constant", "`ics-monitor`"),
    _f("observer.version", KEYWORD, ALL, "package version", "ics-monitor version"),
    # source.* / destination.*
    _f("source.ip", IP, _NET, "src_ip", "client (flows) or sender (events)"),
    _f("source.port", LONG, _NET, "src_port", "source port"),
    _f("source.mac", KEYWORD, (_A, _F), "src_mac", "MAC, ECS notation (AA-BB-CC-DD-EE-FF)"),
    _f("source.bytes", LONG, (_F,), "bytes_to_server", "bytes sent by the client (whole frames)"),
    _f("source.packets", LONG, (_F,), "packets_to_server", "packets sent by the client"),
    _f("destination.ip", IP, _NET, "dst_ip", "server (flows) or receiver (events)"),
    _f("destination.port", LONG, _NET, "dst_port", "destination port"),
    _f("destination.mac", KEYWORD, (_A, _F), "dst_mac", "MAC, ECS notation"),
    _f("destination.bytes", LONG, (_F,), "bytes_to_client", "bytes sent by the server"),
    _f("destination.packets", LONG, (_F,), "packets_to_client", "packets sent by the server"),
    # network.*
    _f("network.transport", KEYWORD, _NET, "transport", "tcp, udp, icmp ..."),
    _f("network.type", KEYWORD, (_F,), "ip_version", "ipv4 or ipv6"),
    _f("network.protocol", KEYWORD, _NET, "protocol / app_protocol", "application protocol"),
    _f("network.community_id", KEYWORD, (_A, _F), "community_id", "Community ID flow hash"),
    _f("network.bytes", LONG, (_F,), "bytes both ways", "total bytes"),
    _f("network.packets", LONG, (_F,), "packets both ways", "total packets"),
    _f("network.vlan.id", KEYWORD, (_F,), "vlan[0]", "outer VLAN id"),
    _f("related.ip", IP, (_A, _S, _F, _N, _E), "all addresses", "every IP of the record"),
    # rule.* / threat.*: alerts
    _f("rule.id", KEYWORD, (_A,), "rule_id", "stable rule id (ICS-xxxx)"),
    _f("rule.name", KEYWORD, (_A,), "title", "rule title"),
    _f("rule.category", KEYWORD, (_A,), "category", "rule category"),
    _f("rule.ruleset", KEYWORD, (_A,), "constant", "`ics-monitor`"),
    _f("threat.framework", KEYWORD, (_A,), "constant", f"`{ATTACK_FRAMEWORK}` (ATT&CK for ICS ids)"),
    _f("threat.tactic.id", KEYWORD, (_A,), "tactic[].id", "ATT&CK tactic ids"),
    _f("threat.tactic.name", KEYWORD, (_A,), "tactic[].name", "ATT&CK tactic names"),
    _f("threat.tactic.reference", KEYWORD, (_A,), "tactic[].id", "ATT&CK tactic URLs"),
    _f("threat.technique.id", KEYWORD, (_A,), "technique[].id", "ATT&CK technique ids"),
    _f("threat.technique.name", KEYWORD, (_A,), "technique[].name", "ATT&CK technique names"),
    _f("threat.technique.reference", KEYWORD, (_A,), "technique[].id", "ATT&CK technique URLs"),
    # host.*: assets
    _f("host.id", KEYWORD, (_S,), "asset_id", "asset id"),
    _f("host.ip", IP, (_S,), "ip / ips", "the asset's addresses"),
    _f("host.mac", KEYWORD, (_S,), "mac / macs", "the asset's MACs, ECS notation"),
    _f("host.name", KEYWORD, (_S,), "name / hostname / ip", "a name for the asset"),
    _f("host.type", KEYWORD, (_S,), "roles[0]", "main role"),
    # ics.*: common
    _f("ics.flow_id", KEYWORD, _NET, "flow_id", "ics-monitor flow id (same in every record)"),
    _f("ics.frame", LONG, (_F, _N, _E), "frame / first_frame", "capture frame number (1-based)"),
    _f("ics.direction", KEYWORD, (_N, _E), "direction", "request/response, to_server/to_client"),
    _f("ics.truncated", BOOLEAN, (_E,), "truncated", "the PDU's end was not captured"),
    # ics.alert.*
    _f("ics.alert.id", KEYWORD, (_A,), "alert_id", "deterministic alert id"),
    _f("ics.alert.severity_name", KEYWORD, (_A,), "severity_name", "low, medium, high, critical"),
    _f("ics.alert.count", LONG, (_A,), "count", "occurrences folded into this alert"),
    _f("ics.alert.frames", LONG, (_A,), "frames", "first frames that triggered it"),
    _f("ics.alert.technique_id_v19", KEYWORD, (_A,), "technique[].id_v19", "ATT&CK v19 technique ids"),
    _f("ics.alert.evidence", OBJECT, (_A,), "evidence", "what triggered it (stored, not indexed)"),
    # ics.asset.*
    _f("ics.asset.id", KEYWORD, (_S,), "asset_id", "asset id"),
    _f("ics.asset.vendor", KEYWORD, (_S,), "vendor", "vendor (identity or MAC OUI)"),
    _f("ics.asset.product", KEYWORD, (_S,), "product", "product / order number"),
    _f("ics.asset.model", KEYWORD, (_S,), "model", "model"),
    _f("ics.asset.firmware", KEYWORD, (_S,), "firmware", "firmware / revision"),
    _f("ics.asset.serial", KEYWORD, (_S,), "serial", "serial number"),
    _f("ics.asset.roles", KEYWORD, (_S,), "roles", "roles from behaviour (plc, hmi, master ...)"),
    _f("ics.asset.purdue_level", LONG, (_S,), "purdue_level", "Purdue level guess (0-5)"),
    _f("ics.asset.protocols", KEYWORD, (_S,), "protocols", "protocols spoken"),
    _f("ics.asset.services", KEYWORD, (_S,), "services[]", "services offered (`tcp/502`)"),
    _f("ics.asset.first_seen", DATE, (_S,), "first_seen", "first seen (capture time)"),
    _f("ics.asset.last_seen", DATE, (_S,), "last_seen", "last seen (capture time)"),
    _f("ics.asset.detail", OBJECT, (_S,), "the whole asset", "every asset field (stored, not indexed)"),
    # ics.anomaly.*
    _f("ics.anomaly.code", KEYWORD, (_N,), "code", "stable anomaly code"),
    _f("ics.anomaly.severity", KEYWORD, (_N,), "severity", "info, low, medium, high"),
    _f("ics.anomaly.protocol", KEYWORD, (_N,), "protocol", "protocol concerned"),
    # ics.flow.*
    _f("ics.flow.orientation", KEYWORD, (_F,), "orientation", "how the client was decided"),
    _f("ics.flow.end_reason", KEYWORD, (_F,), "end_reason", "closed, reset, idle_timeout ..."),
    _f("ics.flow.state", KEYWORD, (_F,), "state", "TCP state at the end"),
    _f("ics.flow.service", KEYWORD, (_F,), "service", "service by port"),
    _f("ics.flow.app_protocol", KEYWORD, (_F,), "app_protocol", "protocol identified by content"),
    _f("ics.flow.tcp_flags_to_server", KEYWORD, (_F,), "tcp_flags_to_server", "TCP flags seen"),
    _f("ics.flow.tcp_flags_to_client", KEYWORD, (_F,), "tcp_flags_to_client", "TCP flags seen"),
    _f("ics.flow.icmp_types_to_server", LONG, (_F,), "icmp_types_to_server", "ICMP message types seen"),
    _f("ics.flow.icmp_types_to_client", LONG, (_F,), "icmp_types_to_client", "ICMP message types seen"),
    _f(
        "ics.flow.payload_bytes_to_server",
        LONG,
        (_F,),
        "payload_bytes_to_server",
        "transport payload bytes (mirror copies left out)",
    ),
    _f(
        "ics.flow.payload_bytes_to_client",
        LONG,
        (_F,),
        "payload_bytes_to_client",
        "transport payload bytes (mirror copies left out)",
    ),
    _f("ics.flow.missed_bytes", LONG, (_F,), "missed_bytes", "bytes missing from the capture"),
    _f("ics.flow.retransmissions", LONG, (_F,), "retransmissions", "retransmitted segments"),
    _f("ics.flow.sliced_bytes", LONG, (_F,), "sliced_bytes", "payload bytes the snap length cut off"),
    _f(
        "ics.flow.mirror_copies_to_server",
        LONG,
        (_F,),
        "mirror_copies_to_server",
        "copies the mirroring made",
    ),
    _f(
        "ics.flow.mirror_copies_to_client",
        LONG,
        (_F,),
        "mirror_copies_to_client",
        "copies the mirroring made",
    ),
    _f(
        "ics.flow.first_payload_frame_to_server",
        LONG,
        (_F,),
        "first_payload_frame_to_server",
        "first frame with payload to the server (0: none)",
    ),
    _f(
        "ics.flow.first_payload_frame_to_client",
        LONG,
        (_F,),
        "first_payload_frame_to_client",
        "first frame with payload to the client (0: none)",
    ),
    _f("ics.flow.tunnel.type", KEYWORD, (_F,), "tunnel[].type", "encapsulations opened, outermost first"),
    _f("ics.flow.tunnel.id", LONG, (_F,), "tunnel[].id", "ERSPAN session id, GRE key or VNI"),
    _f("ics.flow.tunnel.src_ip", IP, (_F,), "tunnel[].src_ip", "tunnel source (switch, VTEP)"),
    _f("ics.flow.tunnel.dst_ip", IP, (_F,), "tunnel[].dst_ip", "tunnel destination (sensor, VTEP)"),
    # ics.modbus.*
    _f("ics.modbus.transaction_id", LONG, (_E,), "transaction_id", "MBAP transaction id (none in RTU)"),
    _f("ics.modbus.unit_id", LONG, (_E,), "unit_id", "unit id (RTU: the serial address)"),
    _f("ics.modbus.length", LONG, (_E,), "length", "MBAP length (RTU: address and PDU bytes)"),
    _f("ics.modbus.framing", KEYWORD, (_E,), "framing", "mbap; rtu or ascii: serial frames over TCP/UDP"),
    _f("ics.modbus.function_code", LONG, (_E,), "function_code", "function code (exception bit off)"),
    _f("ics.modbus.function", KEYWORD, (_E,), "function", "function name"),
    _f("ics.modbus.exception_code", LONG, (_E,), "exception_code", "exception code"),
    _f("ics.modbus.exception", KEYWORD, (_E,), "exception", "exception name"),
    _f("ics.modbus.address", LONG, (_E,), "address", "first address"),
    _f("ics.modbus.quantity", LONG, (_E,), "quantity", "quantity of coils/registers"),
    _f("ics.modbus.byte_count", LONG, (_E,), "byte_count", "PDU byte count"),
    _f("ics.modbus.values", LONG, (_E,), "values", "values read or written"),
    _f("ics.modbus.request_frame", LONG, (_E,), "request_frame", "frame of the paired request"),
    _f("ics.modbus.sub_function", LONG, (_E,), "sub_function", "FC 8 sub-function / UMAS code"),
    _f("ics.modbus.sub_function_name", KEYWORD, (_E,), "sub_function_name", "its name"),
    _f("ics.modbus.mei_type", LONG, (_E,), "mei_type", "FC 43 MEI type"),
    _f("ics.modbus.mei_type_name", KEYWORD, (_E,), "mei_type_name", "its name"),
    _f("ics.modbus.session_key", LONG, (_E,), "session_key", "UMAS session key"),
    _f("ics.modbus.status", LONG, (_E,), "status", "UMAS status"),
    _f("ics.modbus.status_name", KEYWORD, (_E,), "status_name", "its name"),
    _f("ics.modbus.data", KEYWORD, (_E,), "data", "raw data (hex)"),
    _f("ics.modbus.device_id", OBJECT, (_E,), "device_id", "FC 43/14 device identification"),
    _f("ics.modbus.extra", OBJECT, (_E,), "extra", "function-specific fields"),
    # ics.dnp3.*
    _f("ics.dnp3.src", LONG, (_E,), "src", "link source address"),
    _f("ics.dnp3.dst", LONG, (_E,), "dst", "link destination address"),
    _f("ics.dnp3.function_code", LONG, (_E,), "function_code", "application function code"),
    _f("ics.dnp3.function", KEYWORD, (_E,), "function", "function name"),
    _f("ics.dnp3.sequence", LONG, (_E,), "sequence", "application sequence"),
    _f("ics.dnp3.fir", BOOLEAN, (_E,), "fir", "first fragment"),
    _f("ics.dnp3.fin", BOOLEAN, (_E,), "fin", "final fragment"),
    _f("ics.dnp3.con", BOOLEAN, (_E,), "con", "confirm requested"),
    _f("ics.dnp3.uns", BOOLEAN, (_E,), "uns", "unsolicited"),
    _f("ics.dnp3.iin", LONG, (_E,), "iin", "internal indications (responses)"),
    _f("ics.dnp3.iin_names", KEYWORD, (_E,), "iin_names", "IIN bits set"),
    _f("ics.dnp3.crc_ok", BOOLEAN, (_E,), "crc_ok", "all link CRCs good"),
    _f("ics.dnp3.frames", LONG, (_E,), "frames", "link frames in the fragment"),
    _f("ics.dnp3.length", LONG, (_E,), "length", "fragment length"),
    _f("ics.dnp3.request_function_code", LONG, (_E,), "request_function_code", "paired request"),
    _f("ics.dnp3.request_function", KEYWORD, (_E,), "request_function", "paired request name"),
    _f("ics.dnp3.request_frame", LONG, (_E,), "request_frame", "frame of the paired request"),
    _f("ics.dnp3.confirmed_frame", LONG, (_E,), "confirmed_frame", "frame confirmed"),
    _f("ics.dnp3.link", OBJECT, (_E,), "link", "link-layer control fields"),
    _f("ics.dnp3.objects", OBJECT, (_E,), "objects", "object headers and points"),
    # ics.s7comm.* / ics.s7comm_plus.*
    _f("ics.s7comm.rosctr", LONG, (_E,), "rosctr", "1 JOB, 2 ACK, 3 ACK_DATA, 7 USERDATA"),
    _f("ics.s7comm.pdu_ref", LONG, (_E,), "pdu_ref", "PDU reference"),
    _f("ics.s7comm.function_code", LONG, (_E,), "function_code", "parameter function"),
    _f("ics.s7comm.function", KEYWORD, (_E,), "function", "function name"),
    _f("ics.s7comm.error_class", LONG, (_E,), "error_class", "header error class"),
    _f("ics.s7comm.error_code", LONG, (_E,), "error_code", "header error code"),
    _f("ics.s7comm.szl_id", LONG, (_E,), "szl_id", "SZL id"),
    _f("ics.s7comm.szl_index", LONG, (_E,), "szl_index", "SZL index"),
    _f("ics.s7comm.pi_service", KEYWORD, (_E,), "pi_service", "PI service name"),
    _f("ics.s7comm.items", OBJECT, (_E,), "items", "read/write variable items"),
    _f("ics.s7comm.return_codes", OBJECT, (_E,), "return_codes", "item return codes"),
    _f("ics.s7comm.userdata", OBJECT, (_E,), "userdata", "userdata type/group/subfunction"),
    _f("ics.s7comm.block", OBJECT, (_E,), "block", "block type/number/filesystem"),
    _f("ics.s7comm_plus.version", LONG, (_E,), "version", "protocol version"),
    _f("ics.s7comm_plus.opcode", LONG, (_E,), "opcode", "opcode"),
    _f("ics.s7comm_plus.function_code", LONG, (_E,), "function_code", "function code"),
    _f("ics.s7comm_plus.function", KEYWORD, (_E,), "function", "function name"),
    _f("ics.s7comm_plus.session_id", LONG, (_E,), "session_id", "session id"),
    _f("ics.s7comm_plus.sequence", LONG, (_E,), "sequence", "sequence number"),
    _f("ics.s7comm_plus.object_id", LONG, (_E,), "object_id", "SetVariable / GetVarSubStreamed: object"),
    _f("ics.s7comm_plus.object_name", KEYWORD, (_E,), "object_name", "its name, when known"),
    _f("ics.s7comm_plus.attribute_id", LONG, (_E,), "attribute_id", "its attribute written or read"),
    _f("ics.s7comm_plus.attribute", KEYWORD, (_E,), "attribute", "its name, when known"),
    _f("ics.s7comm_plus.value", LONG, (_E,), "value", "SetVariable: the integer written"),
    # ics.asset_change.*: inventory changes (with protocol events: opt-in)
    _f("ics.asset_change.kind", KEYWORD, (_E,), "kind", "new_asset, identity_change, role_change ..."),
    _f("ics.asset_change.asset_id", KEYWORD, (_E,), "asset_id", "asset concerned"),
    _f("ics.asset_change.ip", IP, (_E,), "ip", "its address"),
    _f("ics.asset_change.mac", KEYWORD, (_E,), "mac", "its MAC"),
    _f("ics.asset_change.field", KEYWORD, (_E,), "field", "what changed"),
    _f("ics.asset_change.before", OBJECT, (_E,), "before", "value before"),
    _f("ics.asset_change.after", OBJECT, (_E,), "after", "value after"),
    # ics.arp.*
    _f("ics.arp.operation", LONG, (_E,), "operation", "1 request, 2 reply"),
    _f("ics.arp.operation_name", KEYWORD, (_E,), "operation_name", "request or reply"),
    _f("ics.arp.sender_mac", KEYWORD, (_E,), "sender_mac", "sender MAC"),
    _f("ics.arp.sender_ip", IP, (_E,), "sender_ip", "sender IP"),
    _f("ics.arp.target_mac", KEYWORD, (_E,), "target_mac", "target MAC"),
    _f("ics.arp.target_ip", IP, (_E,), "target_ip", "target IP"),
    # ics.health.*: the sensor's health during a live run (counters are totals since the start)
    _f("ics.health.final", BOOLEAN, (_H,), "final", "the record written at exit"),
    _f("ics.health.uptime_seconds", DOUBLE, (_H,), "uptime_seconds", "seconds since the run started"),
    _f("ics.health.kernel_packets", LONG, (_H,), "kernel_packets", "packets the kernel saw, all interfaces"),
    _f("ics.health.kernel_drops", LONG, (_H,), "kernel_drops", "packets the kernel dropped (buffer full)"),
    _f("ics.health.interfaces", OBJECT, (_H,), "interfaces", "per interface: name, packets, drops"),
    _f("ics.health.frames", LONG, (_H,), "frames", "frames analysed"),
    _f("ics.health.bytes", LONG, (_H,), "bytes", "their bytes on the wire"),
    _f("ics.health.events", LONG, (_H,), "events", "protocol events"),
    _f("ics.health.anomalies", LONG, (_H,), "anomalies", "anomaly events"),
    _f("ics.health.flows_active", LONG, (_H,), "flows_active", "flows tracked now"),
    _f("ics.health.flows_ended", LONG, (_H,), "flows_ended", "flow records written"),
    _f("ics.health.flow_evictions", LONG, (_H,), "flow_evictions", "flows evicted by a full table"),
    _f("ics.health.alerts", LONG, (_H,), "alerts", "distinct alerts raised"),
    _f(
        "ics.health.alert_records",
        LONG,
        (_H,),
        "alert_records",
        "alert records written: first copies and later updates, one per alert per tick",
    ),
    _f("ics.health.assets", LONG, (_H,), "assets", "assets in the inventory"),
    _f("ics.health.learning", BOOLEAN, (_H,), "learning", "the baseline is still being learned"),
    _f("ics.health.reloads", LONG, (_H,), "reloads", "rule/zone reloads done"),
    _f("ics.health.reload_failures", LONG, (_H,), "reload_failures", "reloads refused (bad file)"),
    _f("ics.health.rss_bytes", LONG, (_H,), "rss_bytes", "resident memory of the sensor"),
    _f("ics.health.sinks", OBJECT, (_H,), "sinks", "per sink: records written, backlog, drops"),
)

_NOT_PROTOCOLS = frozenset({"arp", "asset_change"})
# Keys of a health record that its document carries under ics.health (the table is the list).
_HEALTH_KEYS = tuple(f.name.removeprefix("ics.health.") for f in FIELDS if f.name.startswith("ics.health."))
FIELD_BY_NAME: dict[str, EcsField] = {field.name: field for field in FIELDS}
# Protocol sub-objects whose keys are mapped (others are stored unindexed).
_PROTOCOL_OBJECTS = frozenset(name.split(".")[1] for name in FIELD_BY_NAME if name.startswith("ics."))


@dataclass(frozen=True, slots=True)
class Observer:
    """The sensor, as written into ``observer.*`` of every document."""

    name: str
    hostname: str

    def fields(self) -> dict[str, str]:
        """The ``observer`` object."""
        return {
            "name": self.name,
            "hostname": self.hostname,
            "type": "ids",
            "vendor": "ics-monitor",
            "product": "ics-monitor",
            "version": __version__,
        }


# ``evidence.outcome.result`` (detect.commands) -> ECS ``event.outcome``.
_OUTCOMES: Final = {"accepted": "success", "refused": "failure"}


def event_outcome(evidence: Any) -> str | None:
    """ECS ``event.outcome`` (CEF ``outcome``) of an alert: the device's answer to the command."""
    outcome = evidence.get("outcome") if isinstance(evidence, Mapping) else None
    result = outcome.get("result") if isinstance(outcome, Mapping) else None
    return _OUTCOMES.get(result) if isinstance(result, str) else None


@dataclass(frozen=True, slots=True)
class Document:
    """One document ready for the bulk API.

    ``op_type`` is ``create`` for immutable records and ``index`` with an external ``version`` for
    living ones (alerts, assets): Elasticsearch refuses a version not above the stored one with a
    409, which the sink counts as delivered.
    """

    kind: str
    index: str
    id: str
    op_type: str
    version: int | None
    source: dict[str, Any]

    def action(self) -> dict[str, Any]:
        """The action dict understood by ``elasticsearch.helpers`` (plus ``_kind`` for our counters)."""
        action: dict[str, Any] = {
            "_op_type": self.op_type,
            "_index": self.index,
            "_id": self.id,
            "_kind": self.kind,
            "_source": self.source,
        }
        if self.version is not None:
            action["version"] = self.version
            action["version_type"] = "external"
        return action


# ---------------------------------------------------------------------------------------------
# Value helpers


_SECONDS: dict[int, str] = {}


def alert_version(count: int, answered: bool, ts: float, last_ts: Any) -> int:
    """The external version an alert's document is indexed with: a later copy replaces an earlier one.

    Every copy of an alert (same id) that goes out names more than the one before it: a larger
    count, the device's answer (once), or a later last-seen time with the same count (a sweep's
    alert widened).  Ordered by those three: twice the count plus one when answered, in the high
    bits; the milliseconds from first to last seen in the low 32 (capped: 49 days).
    """
    try:
        span = round((float(last_ts if last_ts is not None else ts) - ts) * 1000)
    except (TypeError, ValueError, OverflowError):
        span = 0
    span = min(max(span, 0), 0xFFFFFFFF)
    return ((2 * count + (1 if answered else 0)) << 32) | span


def iso_time(ts: float) -> str:
    """Epoch seconds as an ISO 8601 UTC string with microseconds (ES keeps milliseconds).

    The part up to the second is cached: records come in time order, many per second, and
    ``strftime`` is a tenth of the cost of a document otherwise.
    """
    second = math.floor(ts)
    micro = round((ts - second) * 1_000_000)
    if micro >= 1_000_000:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    prefix = _SECONDS.get(second)
    if prefix is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        prefix = _SECONDS[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{prefix}.{micro:06d}Z"


def ecs_mac(mac: str | None) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` as ECS writes MACs (RFC 7042: ``AA-BB-CC-DD-EE-FF``)."""
    if not mac:
        return None
    return mac.replace(":", "-").upper()


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` unless the value is empty: empty strings would be refused by ``ip`` fields."""
    if value is not None and value not in ("", [], ()):
        target[key] = value


def _related(*addresses: Any) -> list[str]:
    seen: list[str] = []
    for address in addresses:
        if address and address not in seen:
            seen.append(address)
    return seen


def _base(kind: str, dataset: str, ts: float, observer: dict[str, str]) -> dict[str, Any]:
    return {
        "@timestamp": iso_time(ts),
        "ecs": {"version": ECS_VERSION},
        "tags": ["ics-monitor"],
        "event": {
            "kind": "alert" if kind == ALERT else ("asset" if kind == ASSET else "event"),
            "module": MODULE,
            "dataset": f"{MODULE}.{dataset}",
        },
        "observer": observer,
    }


def _endpoints(doc: dict[str, Any], data: Mapping[str, Any], with_mac: bool = False) -> None:
    source: dict[str, Any] = {}
    destination: dict[str, Any] = {}
    _put(source, "ip", data.get("src_ip"))
    _put(source, "port", data.get("src_port"))
    _put(destination, "ip", data.get("dst_ip"))
    _put(destination, "port", data.get("dst_port"))
    if with_mac:
        _put(source, "mac", ecs_mac(data.get("src_mac")))
        _put(destination, "mac", ecs_mac(data.get("dst_mac")))
    if source:
        doc["source"] = source
    if destination:
        doc["destination"] = destination
    related = _related(data.get("src_ip"), data.get("dst_ip"))
    if related:
        doc["related"] = {"ip": related}


def _content_id(observer_name: str, raw: bytes) -> str:
    """A deterministic id: the record's own JSON bytes and the sensor's name, hashed."""
    digest = hashlib.blake2b(raw, digest_size=16, person=b"ics-monitor-doc")
    digest.update(b"\0")
    digest.update(observer_name.encode())
    return digest.hexdigest()


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return [item for item in value if item is not None and item != ""]
    return [value]


def _keywords(value: Any) -> list[str] | str | None:
    """Coerce to keyword(s): scalars to str, lists to lists of str (assets come from another team)."""
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple | set | frozenset):
        items = [str(item) for item in value if item is not None and not isinstance(item, dict)]
        return items or None
    if isinstance(value, dict):
        return None
    return str(value)


def _epoch(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


# ---------------------------------------------------------------------------------------------
# Converters


class EcsMapper:
    """Turns records (dataclasses or their dict form) into ``Document``s.

    Not thread-safe: one mapper per producing thread.  It keeps a little state to make ids of
    identical records unique within one frame (two equal PDUs in one TCP segment stay two
    documents, and a replay gives them the same two ids again).
    """

    def __init__(
        self,
        observer: Observer,
        prefix: str = DEFAULT_PREFIX,
        kinds: Iterable[str] = DEFAULT_KINDS,
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown document kinds: {sorted(unknown)} (known: {', '.join(KINDS)})")
        self.observer = observer
        self.prefix = prefix
        self.kinds = frozenset(kinds)
        self._observer_fields = observer.fields()
        self._day_cache: dict[int, str] = {}
        self._frame_key: tuple[str, int] | None = None
        self._frame_ids: dict[str, int] = {}
        self._dispatch: dict[str, Callable[[Mapping[str, Any], bytes], Document]] = {
            "alert": self._alert,
            "flow": self._flow,
            "anomaly": self._anomaly,
            "asset": self._asset,
            "health": self._health,
        }

    # -- naming -------------------------------------------------------------------------------

    def index_name(self, kind: str, ts: float) -> str:
        """``<prefix>-<kind>-YYYY.MM.DD`` (capture date, UTC); assets: ``<prefix>-asset``."""
        if kind == ASSET:
            return f"{self.prefix}-{ASSET}"
        day = int(ts // 86400)
        suffix = self._day_cache.get(day)
        if suffix is None:
            suffix = time.strftime("%Y.%m.%d", time.gmtime(day * 86400))
            if len(self._day_cache) > 64:
                self._day_cache.clear()
            self._day_cache[day] = suffix
        return f"{self.prefix}-{kind}-{suffix}"

    # -- entry point --------------------------------------------------------------------------

    def kind_of(self, record: Any) -> str:
        """The document kind of a record (dataclass or dict).

        An ``Asset`` (``to_dict``, ``asset_id``) is an asset; an ``AssetChange`` (``asset_id``
        and ``before``/``after``) is an event of dataset ``asset_change``.
        """
        if isinstance(record, Mapping):
            event_type = record.get("event_type")
        else:
            event_type = getattr(record, "event_type", None)
            if event_type is None and hasattr(record, "asset_id"):
                return EVENT if hasattr(record, "before") else ASSET
        if event_type in (ALERT, FLOW, ANOMALY, ASSET, HEALTH):
            return str(event_type)
        return EVENT

    def document(self, record: Any) -> Document | None:
        """The document of ``record``, or None when its kind is not selected."""
        kind = self.kind_of(record)
        if kind not in self.kinds:
            return None
        raw, data = _serialise(record)
        convert = self._dispatch.get(kind, self._protocol_event)
        return convert(data, raw)

    # -- per kind -----------------------------------------------------------------------------

    def _unique_id(self, raw: bytes, data: Mapping[str, Any]) -> str:
        doc_id = _content_id(self.observer.name, raw)
        key = (str(data.get("flow_id")), int(data.get("frame") or data.get("first_frame") or 0))
        if key != self._frame_key:
            self._frame_key = key
            self._frame_ids.clear()
        seen = self._frame_ids.get(doc_id, 0)
        self._frame_ids[doc_id] = seen + 1
        return doc_id if not seen else f"{doc_id}-{seen}"

    def _alert(self, data: Mapping[str, Any], raw: bytes) -> Document:
        ts = float(data["ts"])
        doc = _base(ALERT, ALERT, ts, self._observer_fields)
        alert_id = str(data["alert_id"])
        event = doc["event"]
        event["category"] = ["network", "intrusion_detection"]
        event["type"] = ["info"]
        event["id"] = alert_id
        event["severity"] = int(data.get("severity") or 0)
        event["start"] = iso_time(ts)
        event["end"] = iso_time(float(data.get("last_ts") or ts))
        _put(doc, "message", data.get("explanation"))
        doc["rule"] = {
            "id": data.get("rule_id"),
            "name": data.get("title"),
            "category": data.get("category"),
            "ruleset": "ics-monitor",
        }
        tactics = [t for t in data.get("tactic") or () if isinstance(t, Mapping) and t.get("id")]
        techniques = [t for t in data.get("technique") or () if isinstance(t, Mapping) and t.get("id")]
        threat: dict[str, Any] = {"framework": ATTACK_FRAMEWORK}
        if tactics:
            threat["tactic"] = {
                "id": [t["id"] for t in tactics],
                "name": [t.get("name") or "" for t in tactics],
                "reference": [ATTACK_TACTIC_URL.format(t["id"]) for t in tactics],
            }
        if techniques:
            threat["technique"] = {
                "id": [t["id"] for t in techniques],
                "name": [t.get("name") or "" for t in techniques],
                "reference": [ATTACK_TECHNIQUE_URL.format(t["id"].replace(".", "/")) for t in techniques],
            }
        doc["threat"] = threat
        _endpoints(doc, data, with_mac=True)
        network: dict[str, Any] = {}
        _put(network, "transport", data.get("transport"))
        _put(network, "protocol", data.get("protocol"))
        _put(network, "community_id", data.get("community_id"))
        if network:
            doc["network"] = network
        ics: dict[str, Any] = {}
        _put(ics, "flow_id", data.get("flow_id"))
        alert: dict[str, Any] = {
            "id": alert_id,
            "count": int(data.get("count") or 1),
        }
        _put(alert, "severity_name", data.get("severity_name"))
        _put(alert, "frames", [int(f) for f in data.get("frames") or () if isinstance(f, int)])
        _put(alert, "technique_id_v19", [t.get("id_v19") or t["id"] for t in techniques])
        evidence = data.get("evidence")
        _put(alert, "evidence", evidence or None)
        answered = isinstance(evidence, Mapping) and isinstance(evidence.get("outcome"), Mapping)
        _put(event, "outcome", event_outcome(evidence))
        ics["alert"] = alert
        doc["ics"] = ics
        version = alert_version(alert["count"], answered, ts, data.get("last_ts"))
        return Document(ALERT, self.index_name(ALERT, ts), alert_id, "index", version, _clean(doc))

    def _flow(self, data: Mapping[str, Any], raw: bytes) -> Document:
        ts_start = float(data["ts_start"])
        ts_end = float(data.get("ts_end") or ts_start)
        doc = _base(FLOW, FLOW, ts_start, self._observer_fields)
        doc_id = self._unique_id(raw, data)
        end_reason = data.get("end_reason")
        event = doc["event"]
        event["category"] = ["network"]
        event["type"] = ["connection"] if end_reason == "active_timeout" else ["connection", "end"]
        event["id"] = doc_id
        _put(event, "action", end_reason)
        event["start"] = iso_time(ts_start)
        event["end"] = iso_time(ts_end)
        event["duration"] = round(float(data.get("duration") or 0.0) * 1e9)
        _endpoints(doc, data, with_mac=True)
        to_server_bytes = int(data.get("bytes_to_server") or 0)
        to_client_bytes = int(data.get("bytes_to_client") or 0)
        to_server_packets = int(data.get("packets_to_server") or 0)
        to_client_packets = int(data.get("packets_to_client") or 0)
        doc.setdefault("source", {}).update(bytes=to_server_bytes, packets=to_server_packets)
        doc.setdefault("destination", {}).update(bytes=to_client_bytes, packets=to_client_packets)
        network: dict[str, Any] = {
            "bytes": to_server_bytes + to_client_bytes,
            "packets": to_server_packets + to_client_packets,
        }
        _put(network, "transport", data.get("transport"))
        ip_version = data.get("ip_version")
        if ip_version in (4, 6):
            network["type"] = f"ipv{ip_version}"
        _put(network, "protocol", data.get("app_protocol") or data.get("service"))
        _put(network, "community_id", data.get("community_id"))
        vlan = data.get("vlan") or ()
        if vlan:
            network["vlan"] = {"id": str(vlan[0])}
        doc["network"] = network
        flow: dict[str, Any] = {}
        for key in (
            "orientation",
            "end_reason",
            "state",
            "service",
            "app_protocol",
            "tcp_flags_to_server",
            "tcp_flags_to_client",
            "icmp_types_to_server",
            "icmp_types_to_client",
            "payload_bytes_to_server",
            "payload_bytes_to_client",
            "missed_bytes",
            "retransmissions",
            "sliced_bytes",
            "mirror_copies_to_server",
            "mirror_copies_to_client",
            "first_payload_frame_to_server",
            "first_payload_frame_to_client",
        ):
            _put(flow, key, data.get(key))
        tunnel = data.get("tunnel")
        if tunnel:
            flow["tunnel"] = list(tunnel)
        doc["ics"] = {"flow_id": data.get("flow_id"), "frame": data.get("first_frame"), "flow": flow}
        return Document(FLOW, self.index_name(FLOW, ts_start), doc_id, "create", None, doc)

    def _anomaly(self, data: Mapping[str, Any], raw: bytes) -> Document:
        ts = float(data["ts"])
        doc = _base(ANOMALY, ANOMALY, ts, self._observer_fields)
        doc_id = self._unique_id(raw, data)
        severity = str(data.get("severity") or "")
        event = doc["event"]
        event["category"] = ["network"]
        event["type"] = ["info"]
        event["id"] = doc_id
        _put(event, "action", data.get("code"))
        _put(event, "severity", ANOMALY_SEVERITY.get(severity))
        _put(doc, "message", data.get("detail"))
        _endpoints(doc, data)
        network: dict[str, Any] = {}
        _put(network, "transport", data.get("transport"))
        _put(network, "protocol", data.get("protocol"))
        if network:
            doc["network"] = network
        anomaly: dict[str, Any] = {"code": data.get("code")}
        _put(anomaly, "severity", severity)
        _put(anomaly, "protocol", data.get("protocol"))
        ics: dict[str, Any] = {"frame": data.get("frame"), "anomaly": anomaly}
        _put(ics, "flow_id", data.get("flow_id"))
        _put(ics, "direction", data.get("direction"))
        doc["ics"] = ics
        return Document(ANOMALY, self.index_name(ANOMALY, ts), doc_id, "create", None, doc)

    def _health(self, data: Mapping[str, Any], raw: bytes) -> Document:
        ts = float(data["ts"])
        doc = _base(HEALTH, HEALTH, ts, self._observer_fields)
        doc_id = _content_id(self.observer.name, raw)
        event = doc["event"]
        event["kind"] = "metric"
        event["category"] = ["host"]
        event["type"] = ["info"]
        event["id"] = doc_id
        doc["ics"] = {"health": {name: data[name] for name in _HEALTH_KEYS if data.get(name) is not None}}
        return Document(HEALTH, self.index_name(HEALTH, ts), doc_id, "create", None, doc)

    def _protocol_event(self, data: Mapping[str, Any], raw: bytes) -> Document:
        ts = float(data["ts"])
        protocol = str(data.get("event_type") or "unknown")
        doc = _base(EVENT, protocol, ts, self._observer_fields)
        doc_id = self._unique_id(raw, data)
        event = doc["event"]
        event["category"] = ["network"]
        event["type"] = ["protocol"]
        event["id"] = doc_id
        function = data.get("function") or data.get("operation_name")
        _put(event, "action", function if isinstance(function, str) else None)
        _endpoints(doc, data)
        if protocol == "arp":
            doc["related"] = {"ip": _related(data.get("sender_ip"), data.get("target_ip"))}
        elif protocol == "asset_change" and data.get("ip"):
            doc["related"] = {"ip": [data["ip"]]}
        network: dict[str, Any] = {}
        _put(network, "transport", data.get("transport"))
        if protocol not in _NOT_PROTOCOLS:
            network["protocol"] = protocol
        if network:
            doc["network"] = network
        ics: dict[str, Any] = {"frame": data.get("frame")}
        _put(ics, "flow_id", data.get("flow_id"))
        _put(ics, "direction", data.get("direction"))
        if data.get("truncated"):
            ics["truncated"] = True
        # The protocol's own keys go under ics.<protocol>: mapped ones are indexed, the rest kept
        # in _source (dynamic: false), so a new key in a dissector never breaks indexing.
        body = {k: v for k, v in data.items() if v is not None and k not in _NOT_PROTOCOL_OWN}
        if protocol == "arp":
            for key in ("sender_mac", "target_mac"):
                body[key] = ecs_mac(body.get(key))
        ics[protocol if protocol in _PROTOCOL_OBJECTS else "other"] = body
        doc["ics"] = ics
        return Document(EVENT, self.index_name(EVENT, ts), doc_id, "create", None, doc)

    def _asset(self, data: Mapping[str, Any], raw: bytes) -> Document:
        last_seen = _epoch(data.get("last_seen")) or _epoch(data.get("last_ts")) or 0.0
        first_seen = _epoch(data.get("first_seen")) or _epoch(data.get("first_ts"))
        asset_id = str(data.get("asset_id") or data.get("id") or _content_id(self.observer.name, raw))
        doc = _base(ASSET, ASSET, last_seen, self._observer_fields)
        event = doc["event"]
        event["category"] = ["host"]
        event["type"] = ["info"]
        event["id"] = asset_id
        ips = _as_list(data.get("ips")) or _as_list(data.get("ip"))
        macs = _as_list(data.get("macs")) or _as_list(data.get("mac"))
        roles = _keywords(data.get("roles") or data.get("role"))
        host: dict[str, Any] = {"id": asset_id}
        _put(host, "ip", [str(ip) for ip in ips])
        _put(host, "mac", [ecs_mac(str(mac)) for mac in macs])
        name = data.get("hostname") or data.get("name") or (ips[0] if ips else None)
        _put(host, "name", _keywords(name) if not isinstance(name, list) else None)
        if isinstance(roles, list) and roles:
            host["type"] = roles[0]
        elif isinstance(roles, str):
            host["type"] = roles
        doc["host"] = host
        _put(doc, "related", {"ip": [str(ip) for ip in ips]} if ips else None)
        raw_identity = data.get("identity")
        identity: Mapping[str, Any] = raw_identity if isinstance(raw_identity, Mapping) else {}
        asset: dict[str, Any] = {"id": asset_id}
        for key in ("vendor", "product", "firmware", "protocols"):
            _put(asset, key, _keywords(data.get(key)))
        _put(asset, "model", _keywords(data.get("model") or identity.get("model_name")))
        _put(asset, "serial", _keywords(data.get("serial") or identity.get("serial_number")))
        services = []
        for service in _as_list(data.get("services")):
            if isinstance(service, Mapping):
                services.append(f"{service.get('transport')}/{service.get('port')}")
            elif not isinstance(service, list | dict):
                services.append(str(service))
        _put(asset, "services", services)
        level = data.get("purdue_level")
        if isinstance(level, int) and not isinstance(level, bool):
            asset["purdue_level"] = level
        _put(asset, "roles", roles)
        if first_seen is not None:
            asset["first_seen"] = iso_time(first_seen)
        if last_seen:
            asset["last_seen"] = iso_time(last_seen)
        asset["detail"] = dict(data)
        doc["ics"] = {"asset": asset}
        # A newer state replaces the stored asset; a replayed older one is refused (409).  Within
        # one timestamp the things an asset accumulates (history, services, roles, identity) only
        # grow, so they order the states of that instant.
        growth = sum(len(data.get(key) or ()) for key in ("history", "services", "roles", "identity"))
        version = round(last_seen * 1e6) * 1000 + min(growth, 999) if last_seen else None
        return Document(ASSET, self.index_name(ASSET, last_seen), asset_id, "index", version, _clean(doc))


def _serialise(record: Any) -> tuple[bytes, dict[str, Any]]:
    """The record's JSON bytes (for the id) and its dict form (what the converters read)."""
    if isinstance(record, Alert):
        record = alert_to_dict(record)  # evidence may hold sets: the alert's own JSON form
    elif not isinstance(record, Mapping):
        to_dict = getattr(record, "to_dict", None)
        if to_dict is not None:
            record = to_dict()
        elif getattr(record, "event_type", None) is None and hasattr(record, "before"):
            record = {"event_type": "asset_change", **orjson.loads(orjson.dumps(record, default=_jsonable))}
    if isinstance(record, Mapping):
        raw = orjson.dumps(record, option=orjson.OPT_SORT_KEYS, default=_jsonable)
        data: dict[str, Any] = orjson.loads(raw)
        return raw, data
    # orjson does not sort dataclass fields: sort through the dict form, so a record and its JSON
    # line (re-read later) have the same bytes, hence the same document id.
    data = orjson.loads(orjson.dumps(record, default=_jsonable))
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS), data


def record_dict(record: Any) -> dict[str, Any]:
    """The JSON object of any record (event, flow, alert, asset, asset change) as a dict."""
    return _serialise(record)[1]


def _jsonable(value: Any) -> Any:
    """Fallback for orjson: sets (asset roles, evidence) as sorted lists."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop None values and empty containers (ECS documents leave absent fields out)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict) and key not in ("evidence", "detail"):
            value = _clean(value)
            if value:
                out[key] = value
        elif value is not None and value not in ([], ""):
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# Index templates and the field table


def fields_for(kind: str) -> list[EcsField]:
    """The table rows a document of ``kind`` may carry."""
    return [field for field in FIELDS if kind in field.kinds]


def _mapping_of(field: EcsField) -> dict[str, Any]:
    if field.type == OBJECT:
        return {"type": "object", "enabled": False}
    if field.type == KEYWORD:
        return {"type": "keyword", "ignore_above": IGNORE_ABOVE}
    return {"type": field.type}


def mappings(kind: str) -> dict[str, Any]:
    """The ``mappings`` of an index of ``kind``: every table field, nested, ``dynamic: false``."""
    properties: dict[str, Any] = {}
    for field in fields_for(kind):
        parts = field.name.split(".")
        node = properties
        for part in parts[:-1]:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[parts[-1]] = _mapping_of(field)
    return {"dynamic": False, "date_detection": False, "properties": properties}


def template_name(prefix: str, kind: str) -> str:
    """Name of the composable index template of ``kind``."""
    return f"{prefix}-{kind}"


def index_pattern(prefix: str, kind: str) -> str:
    """Index pattern (for searches and the template) of ``kind``."""
    return f"{prefix}-{kind}" if kind == ASSET else f"{prefix}-{kind}-*"


def index_templates(
    prefix: str = DEFAULT_PREFIX,
    *,
    data_streams: bool = False,
    replicas: str = "0-1",
) -> dict[str, dict[str, Any]]:
    """Composable index templates, by name, for every kind.

    ``replicas`` is ``index.auto_expand_replicas``: ``0-1`` keeps a single-node cluster green and
    gives larger clusters one replica.  ``data_streams`` makes the time-based kinds data streams
    (append-only kinds only: alerts and assets are updated in place, so they stay indices).
    """
    templates: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        body: dict[str, Any] = {
            "index_patterns": [index_pattern(prefix, kind)],
            "priority": 200,
            "template": {
                "settings": {"index": {"auto_expand_replicas": replicas}},
                "mappings": mappings(kind),
            },
            "_meta": {"managed_by": "ics-monitor", "ics_monitor_version": __version__, "ecs": ECS_VERSION},
        }
        if data_streams and kind in (FLOW, ANOMALY, EVENT, HEALTH):
            body["data_stream"] = {}
        templates[template_name(prefix, kind)] = body
    return templates


def markdown_table() -> str:
    """The README field table (generated: ``python -m ics_monitor.sinks.ecs --markdown``)."""
    short = {
        ALERT: "alert",
        ASSET: "asset",
        FLOW: "flow",
        ANOMALY: "anomaly",
        EVENT: "event",
        HEALTH: "health",
    }
    lines = [
        "| Field | Type | Documents | From | Meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for field in FIELDS:
        kinds = "all" if set(field.kinds) == set(KINDS) else ", ".join(short[k] for k in field.kinds)
        type_ = "object (stored, not indexed)" if field.type == OBJECT else field.type
        lines.append(f"| `{field.name}` | {type_} | {kinds} | {field.source} | {field.description} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m ics_monitor.sinks.ecs --markdown | --template KIND``."""
    parser = argparse.ArgumentParser(
        prog="python -m ics_monitor.sinks.ecs", description=__doc__.split("\n")[0]
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="print the README field table")
    group.add_argument("--template", choices=KINDS, help="print the index template of a kind (JSON)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="index prefix (default %(default)s)")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
    else:
        body = index_templates(args.prefix)[template_name(args.prefix, args.template)]
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
