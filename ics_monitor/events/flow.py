"""The flow record: one per conversation (or per active-timeout slice of a long one), IT and OT alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mypy_extensions import mypyc_attr


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
class FlowRecord:
    """Counters of one bidirectional flow, oriented client -> server.

    ``src_*`` is the client, ``dst_*`` the server; ``orientation`` says how that was decided
    (``syn``, ``port`` or ``first_packet``).  Byte counts are whole link-layer frames, as tshark's
    conversation tables count them (mirror copies included: ``mirror_copies_*`` say how many of the
    packets were copies); ``payload_bytes_*`` count the transport payload the hosts sent, each mirror
    copy's left out.
    ``end_reason``: ``closed``, ``reset``, ``idle_timeout``, ``active_timeout``, ``evicted``,
    ``end_of_capture``.  After an ``active_timeout`` record the flow goes on under the same id and
    the next record counts from there.  ``icmp_types_*``: the ICMP (or ICMPv6) message types each way,
    sorted (an ICMP flow is one per host pair: 8 to the server and no 0 back is an unanswered ping).
    """

    event_type: str = "flow"
    flow_id: str
    community_id: str
    ts_start: float
    ts_end: float
    duration: float
    first_frame: int
    transport: str
    ip_version: int
    vlan: tuple[int, ...]
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    src_mac: str | None
    dst_mac: str | None
    orientation: str
    packets_to_server: int
    packets_to_client: int
    bytes_to_server: int
    bytes_to_client: int
    payload_bytes_to_server: int
    payload_bytes_to_client: int
    tcp_flags_to_server: tuple[str, ...]
    tcp_flags_to_client: tuple[str, ...]
    state: str | None
    end_reason: str
    service: str | None
    app_protocol: str | None
    missed_bytes: int
    retransmissions: int
    # The encapsulations the flow's first packet came through, outermost first (ERSPAN, GRE,
    # VXLAN, Geneve, IP in IP): {"type", "id" (session id, key or VNI, when there is one),
    # "src_ip", "dst_ip" (the tunnel's endpoints)}.  Empty for traffic seen as it was sent.
    tunnel: tuple[dict[str, Any], ...] = ()
    # Payload bytes the capture's snap length left out of the flow's segments and datagrams (not
    # in ``missed_bytes``, which counts bytes whose packets the capture lost).
    sliced_bytes: int = 0
    icmp_types_to_server: tuple[int, ...] = ()
    icmp_types_to_client: tuple[int, ...] = ()
    # Packets each way that were copies the mirroring made of the one before (a SPAN session on
    # both ports of a path): inside ``packets_*`` and the byte counts, as tshark counts frames, but
    # neither reassembled nor dissected.  ``packets_sent`` leaves them out.
    mirror_copies_to_server: int = 0
    mirror_copies_to_client: int = 0
    # The first frame of the record's period (in capture order) that carried payload each way (0:
    # none did): the bytes a finding about the flow's content cites, where ``first_frame`` is its
    # SYN.
    first_payload_frame_to_server: int = 0
    first_payload_frame_to_client: int = 0

    def packets_sent(self, direction: int) -> int:
        """Packets the hosts sent to the server (direction 0) or to the client (1): mirror copies left out."""
        if direction:
            return self.packets_to_client - self.mirror_copies_to_client
        return self.packets_to_server - self.mirror_copies_to_server
