"""The catalogue of anomaly codes: stable names for everything odd found in traffic.

A code never changes meaning once published: analysts write rules and dashboards against it.  Every
component that raises an anomaly uses a code from this table (a test checks it), so the table is also
the documentation.  Protocol dissectors add their rows here.  No I/O in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Severity(IntEnum):
    """How much an anomaly matters on its own, before any detector weighs it."""

    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4


@dataclass(frozen=True, slots=True)
class AnomalyInfo:
    """One catalogue row."""

    code: str
    severity: Severity
    description: str


_ROWS: tuple[tuple[str, Severity, str], ...] = (
    # The capture itself
    (
        "capture.time_backwards",
        Severity.LOW,
        "a frame stamped more than a second before an earlier one: the capture clock stepped back",
    ),
    ("capture.time_gap", Severity.INFO, "no frame at all for an hour or more: a gap in the capture"),
    # Link layer
    ("link.truncated", Severity.LOW, "frame shorter than its link-layer header"),
    ("link.unknown_family", Severity.INFO, "loopback/NULL header names an address family that is not IP"),
    ("link.unsupported", Severity.INFO, "capture link type this version does not decode"),
    ("vlan.truncated", Severity.LOW, "802.1Q/802.1ad tag cut short"),
    ("vlan.too_many_tags", Severity.MEDIUM, "more stacked VLAN tags than any real network uses"),
    ("mpls.truncated", Severity.LOW, "MPLS label stack cut short"),
    ("hsr.truncated", Severity.LOW, "IEC 62439-3 HSR tag cut short"),
    # Tunnels (the decoder opens them: see decode/headers.py)
    ("gre.truncated", Severity.LOW, "GRE header (with its key or sequence fields) cut short"),
    ("erspan.truncated", Severity.LOW, "ERSPAN header cut short"),
    ("erspan.bad_version", Severity.MEDIUM, "ERSPAN header version does not match its GRE protocol type"),
    ("geneve.truncated", Severity.LOW, "Geneve options run past the datagram"),
    ("tunnel.too_deep", Severity.MEDIUM, "more nested encapsulations than the decoder follows"),
    (
        "tunnel.fanout_blind",
        Severity.LOW,
        "a UDP tunnel reached live workers split by the kernel's outer-header hash",
    ),
    ("arp.truncated", Severity.LOW, "ARP message shorter than its header"),
    ("arp.bad_address_length", Severity.MEDIUM, "ARP for IPv4 over Ethernet with wrong address lengths"),
    # IPv4
    ("ipv4.truncated", Severity.LOW, "IPv4 header or payload shorter than its length fields say"),
    ("ipv4.bad_version", Severity.MEDIUM, "EtherType says IPv4 but the version field does not"),
    ("ipv4.bad_header_length", Severity.MEDIUM, "IPv4 header length below 20 bytes"),
    ("ipv4.bad_total_length", Severity.MEDIUM, "IPv4 total length smaller than its header"),
    # IPv6
    ("ipv6.truncated", Severity.LOW, "IPv6 header or payload shorter than its length fields say"),
    ("ipv6.bad_version", Severity.MEDIUM, "EtherType says IPv6 but the version field does not"),
    ("ipv6.ext_header_truncated", Severity.MEDIUM, "IPv6 extension header runs past the packet"),
    ("ipv6.too_many_ext_headers", Severity.MEDIUM, "IPv6 extension header chain longer than the cap"),
    # IP fragments (IPv4 and IPv6)
    ("ip.fragment_overlap", Severity.HIGH, "IP fragments overlap with different bytes (evasion attempt)"),
    ("ip.fragment_too_large", Severity.MEDIUM, "reassembled IP datagram would exceed 65535 bytes"),
    ("ip.fragment_incomplete", Severity.LOW, "IP fragment set never completed before its timeout"),
    ("ip.fragment_table_full", Severity.MEDIUM, "too many IP datagrams in reassembly; oldest dropped"),
    ("ip.fragment_too_small", Severity.MEDIUM, "first IP fragment too small to hold the transport header"),
    # Transport
    ("tcp.truncated", Severity.LOW, "TCP header cut short"),
    ("tcp.bad_header_length", Severity.MEDIUM, "TCP data offset below 5 words"),
    ("udp.truncated", Severity.LOW, "UDP header cut short"),
    ("udp.bad_length", Severity.MEDIUM, "UDP length field below 8"),
    ("udp.length_mismatch", Severity.MEDIUM, "UDP length field larger than the IP payload"),
    (
        "udp.mirror_copies",
        Severity.INFO,
        "UDP datagrams repeated by the mirroring (same id, payload): not dissected",
    ),
    ("icmp.truncated", Severity.LOW, "ICMP message shorter than 4 bytes"),
    ("icmpv6.truncated", Severity.LOW, "ICMPv6 message shorter than 4 bytes"),
    # Flows and TCP reassembly
    ("flow.table_full", Severity.MEDIUM, "flow table at its cap: the least recently seen flow was evicted"),
    (
        "flow.source_mac_changed",
        Severity.MEDIUM,
        "a flow's packets one way came from a second source MAC (relayed by another station, or a failover)",
    ),
    (
        "tcp.overlap_mismatch",
        Severity.HIGH,
        "retransmitted TCP bytes differ from those first seen (evasion?)",
    ),
    (
        "tcp.reassembly_gap",
        Severity.LOW,
        "bytes of a TCP stream missing from the capture; dissection resyncs",
    ),
    (
        "flow.sliced",
        Severity.INFO,
        "segments or datagrams cut by the capture's snap length: their PDUs read as far as kept, marked truncated",
    ),
    ("tcp.reassembly_buffer_full", Severity.MEDIUM, "out-of-order TCP data beyond the per-flow buffer cap"),
    (
        "tcp.mirror_copies",
        Severity.INFO,
        "TCP segments repeated by the mirroring (same id, sequence, flags): not reassembled",
    ),
    # Dissector framework
    ("dissect.pdu_too_large", Severity.MEDIUM, "a PDU claims more bytes than the per-flow buffer cap"),
    ("dissect.trailing_bytes", Severity.LOW, "datagram bytes left over after the last PDU"),
    (
        "internal.dissector_error",
        Severity.HIGH,
        "a dissector failed on this flow; it is disabled for the flow",
    ),
    ("internal.parse_stalled", Severity.HIGH, "a dissector consumed nothing and asked for nothing"),
    # Analysis (detection engine, inventory, baseline learner): the failing part skips the record
    ("internal.detector_error", Severity.HIGH, "a detector failed on a record; it skips such records"),
    (
        "internal.analysis_error",
        Severity.HIGH,
        "the asset inventory or the baseline learner failed on a record; it skipped the record",
    ),
)

CATALOGUE: dict[str, AnomalyInfo] = {code: AnomalyInfo(code, sev, text) for code, sev, text in _ROWS}


def register(code: str, severity: Severity, description: str) -> None:
    """Add a protocol's anomaly code to the catalogue (codes are unique)."""
    if code in CATALOGUE and CATALOGUE[code] != AnomalyInfo(code, severity, description):
        raise ValueError(f"anomaly code {code!r} registered twice with different meaning")
    CATALOGUE[code] = AnomalyInfo(code, severity, description)


def info(code: str) -> AnomalyInfo:
    """Return the catalogue row of ``code``; unknown codes are a programming error."""
    try:
        return CATALOGUE[code]
    except KeyError:
        raise KeyError(f"anomaly code {code!r} is not in the catalogue") from None


_SEVERITY_NAMES: dict[str, str] = {}


def severity_name(code: str) -> str:
    """``info(code).severity`` as the records spell it (``low``, ``medium`` ...), looked up once per code."""
    name = _SEVERITY_NAMES.get(code)
    if name is None:
        name = _SEVERITY_NAMES[code] = info(code).severity.name.lower()
    return name
