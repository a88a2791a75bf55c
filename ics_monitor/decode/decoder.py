"""The decoder: one call per frame, from link layer to transport payload.

It owns the only decode-time state, the IP fragment reassembler.  Anomalies found while decoding are
appended to ``anomalies`` (the pipeline drains the list after each frame); nothing here raises on bad
traffic.
"""

from __future__ import annotations

import struct
from typing import Final

from ics_monitor.core import linktypes
from ics_monitor.core.addresses import format_ip
from ics_monitor.core.anomalies import severity_name
from ics_monitor.core.linktypes import LINUX_SLL, LINUX_SLL2, LOOP, NULL
from ics_monitor.core.packet import IPPROTO_UDP, TRANSPORT_NAMES, Packet
from ics_monitor.decode import headers
from ics_monitor.decode.fragments import FragmentReassembler
from ics_monitor.decode.headers import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    INNER_ETHERNET,
    MAX_TUNNEL_DEPTH,
    TUNNEL_PORTS,
    TUNNEL_PROTOCOLS,
)
from ics_monitor.events.base import AnomalyEvent, new_anomaly_event

_ETHERNET: Final = linktypes.EN10MB
# The frame most OT links carry: untagged Ethernet, IPv4 without options, TCP.  Its three fixed
# headers in one unpack (see ``decode``); anything else takes the header-by-header path.
_ETH_IPV4_TCP: Final = struct.Struct("!6s6sHBBHHHBBH4s4sHHIIBBH")
_ETH_IPV4_TCP_SIZE: Final = _ETH_IPV4_TCP.size  # 54
_UDP_TUNNELS: Final = frozenset(("vxlan", "geneve"))
_RAW_TYPES: Final = linktypes.RAW_TYPES  # bound here: a static, not a module-dict lookup


# The capture's clock (``CaptureClock``): a step back of more than BACK_SECONDS (a SPAN port
# reorders by milliseconds), a silence of GAP_SECONDS or more.
BACK_SECONDS: Final = 1.0
GAP_SECONDS: Final = 3600.0


class CaptureClock:
    """Reports on the capture's clock as the reading loops see it: steps back and long silences.

    A sensor's clock set back, or files whose times overlap merged (each in order, together not),
    make time run backwards: detections that measure time (polling cycles, silences, rates) can
    misjudge around it, and the analyst should know why.  The loops keep the latest time read and
    call ``back`` once per step back of more than BACK_SECONDS (later frames earlier still, before
    one passes the latest time again, belong to the same step) and ``gap`` for a silence of
    GAP_SECONDS or more (between two files, a sensor down).  Each makes an anomaly in ``anomalies``.
    """

    def __init__(self) -> None:
        self.anomalies: list[AnomalyEvent] = []

    def back(self, frame: int, ts: float, latest: float) -> None:
        """Frame ``frame`` at ``ts``, well before ``latest``: the clock stepped back."""
        self._report(
            frame,
            ts,
            "capture.time_backwards",
            f"stamped {latest - ts:.3f} s before an earlier frame: the capture clock stepped back (a sensor"
            " clock set back, or files with overlapping times); time-based detection may misjudge around it",
        )

    def gap(self, frame: int, ts: float, latest: float) -> None:
        """Frame ``frame`` at ``ts``, the first after a silence since ``latest``."""
        self._report(
            frame,
            ts,
            "capture.time_gap",
            f"the first frame after {ts - latest:.0f} s without any: a gap in the capture (time-based"
            " detection does not count it as silence)",
        )

    def _report(self, frame: int, ts: float, code: str, detail: str) -> None:
        self.anomalies.append(
            new_anomaly_event(
                ts, frame, code, severity_name(code), detail, "capture", None, None, "", None, "", None, None
            )
        )


class Decoder:
    """Decodes frames into ``Packet`` records; keeps IP fragment state between calls."""

    def __init__(
        self, fragment_timeout: float = 30.0, max_fragment_datagrams: int = 1024, *, fast_path: bool = True
    ) -> None:
        # ``fast_path`` False: every frame header by header (the tests compare both paths).
        self.fast_path = fast_path
        self.anomalies: list[AnomalyEvent] = []
        self.fragments = FragmentReassembler(fragment_timeout, max_fragment_datagrams)
        self.unsupported_link_types: set[int] = set()
        # Frames the capture's snap length cut inside their headers (link, IP, transport): they
        # reach no flow, and are counted here rather than reported one by one.
        self.cut_headers = 0
        # Set by a live worker of an AF_PACKET fanout group, whose kernel hash does not look inside
        # UDP tunnels: the first VXLAN or Geneve packet is reported (``tunnel.fanout_blind``), once.
        self.fanout_notice_due = False
        self._pkt: Packet | None = None

    def _report(self, code: str, detail: str) -> None:
        pkt = self._pkt
        assert pkt is not None
        if pkt.cap_len < pkt.wire_len and code.endswith(".truncated"):
            # The capture's snap length cut the frame inside its headers: counted, not the
            # sender's fault (the run ends with one warning line).
            self.cut_headers += 1
            return
        sport = pkt.sport if pkt.sport or pkt.dport else None
        dport = pkt.dport if pkt.sport or pkt.dport else None
        self.anomalies.append(
            new_anomaly_event(
                pkt.ts,
                pkt.frame,
                code,
                severity_name(code),
                detail,
                code.split(".", 1)[0],
                None,
                TRANSPORT_NAMES.get(pkt.ip_proto) if pkt.ip_version else None,
                format_ip(pkt.src_ip),
                sport,
                format_ip(pkt.dst_ip),
                dport,
                None,
            )
        )

    def decode(self, frame: int, ts: float, link_type: int, data: bytes, wire_len: int) -> Packet | None:
        """Decode one frame.

        Returns the packet when it carries IP with a usable transport header, or ARP (``pkt.arp``);
        returns None for frames with nothing for the flow table (non-IP, broken, or a fragment that
        did not yet complete its datagram).
        """
        size = len(data)
        pkt = Packet(frame, ts, link_type, wire_len, size)
        self._pkt = pkt
        if link_type == _ETHERNET and size >= _ETH_IPV4_TCP_SIZE and self.fast_path:
            # Typed: compiled, the tests below compare machine integers, not int objects.
            ether_type: int
            ver_ihl: int
            total: int
            flags_fragment: int
            proto: int
            data_offset: int
            (
                dst_mac, src_mac, ether_type, ver_ihl, _tos, total, ident, flags_fragment, ttl, proto,
                _checksum, src, dst, sport, dport, seq, ack, data_offset, flags, window,
            ) = _ETH_IPV4_TCP.unpack_from(data)  # fmt: skip
            tcp_length = (data_offset >> 4) * 4
            # Exactly the cases the general path accepts without a report: IPv4 with a 20-byte
            # header, not a fragment (MF and offset clear), the datagram whole in the frame (the
            # frame may be padded), a TCP header of 20..60 bytes inside the datagram.
            if (
                ether_type == ETH_IPV4
                and ver_ihl == 0x45
                and proto == 6
                and not flags_fragment & 0x3FFF
                and 40 <= total <= size - 14
                and 20 <= tcp_length <= total - 20
            ):
                pkt.dst_mac = dst_mac
                pkt.src_mac = src_mac
                pkt.ip_version = 4
                pkt.src_ip = src
                pkt.dst_ip = dst
                pkt.ip_proto = 6
                pkt.ip_id = ident
                pkt.ttl = ttl
                pkt.sport = sport
                pkt.dport = dport
                pkt.seq = seq
                pkt.ack = ack
                pkt.tcp_flags = flags
                pkt.window = window
                start = 34 + tcp_length
                end = 14 + total
                if start < end:
                    pkt.payload = data[start:end]
                return pkt
        report = self._report
        if link_type == _ETHERNET:
            off, ether_type = headers.ethernet(pkt, data, 0, report)
        elif link_type in _RAW_TYPES:
            off, ether_type = headers.raw_ip(data, 0)
        elif link_type == LINUX_SLL:
            off, ether_type = headers.linux_sll(pkt, data, 0, report)
        elif link_type == LINUX_SLL2:
            off, ether_type = headers.linux_sll2(pkt, data, 0, report)
        elif link_type == NULL:
            off, ether_type = headers.null_loop(pkt, data, 0, report, network_order=False)
        elif link_type == LOOP:
            off, ether_type = headers.null_loop(pkt, data, 0, report, network_order=True)
        else:
            if link_type not in self.unsupported_link_types:
                self.unsupported_link_types.add(link_type)
                report("link.unsupported", f"link type {link_type}")
            return None
        if off < 0:
            return None
        return self._network(pkt, data, off, ether_type, 0)

    def _network(self, pkt: Packet, data: bytes, off: int, ether_type: int, depth: int) -> Packet | None:
        """IP (or ARP) at ``off`` and what it carries, opening tunnels (``depth``: those opened so far)."""
        report = self._report
        if ether_type == ETH_IPV4:
            start, end, fragment = headers.ipv4(pkt, data, off, report)
        elif ether_type == ETH_IPV6:
            start, end, fragment = headers.ipv6(pkt, data, off, report)
        elif ether_type == ETH_ARP:
            headers.arp(pkt, data, off, report)
            return pkt if pkt.arp is not None else None
        else:
            return None
        if start < 0:
            return None
        if fragment is not None:
            frag_offset, more, ident, payload = fragment
            done = self.fragments.add(
                (pkt.ip_version, pkt.src_ip, pkt.dst_ip, pkt.ip_proto, ident),
                pkt.ts,
                pkt.wire_len,
                frag_offset,
                more,
                payload,
                report,
            )
            if done is None:
                return None
            data, pkt.fragments, pkt.wire_len = done
            pkt.cut = 0  # the datagram is whole: every fragment came in full
            start, end = 0, len(data)
        if not headers.transport(pkt, data, start, end, report):
            return None
        proto = pkt.ip_proto
        if proto in TUNNEL_PROTOCOLS or (proto == IPPROTO_UDP and pkt.dport in TUNNEL_PORTS):
            return self._decapsulate(pkt, depth)
        return pkt

    def _decapsulate(self, pkt: Packet, depth: int) -> Packet | None:
        """The packet inside a tunnel (ERSPAN, GRE, VXLAN, Geneve, IP in IP), else ``pkt`` itself.

        ``pkt`` comes back as it was when its payload is not a tunnel the decoder opens.

        The inner packet takes the outer one's place: flows, dissectors and the inventory see the
        mirrored or tunnelled traffic, not the tunnel; ``pkt.tunnel`` keeps the outer addresses.
        An inner Ethernet frame gives the MACs and VLAN tags; an inner IP packet has neither.
        """
        found = headers.tunnel(pkt, self._report)
        if found is None:
            return pkt
        if depth == MAX_TUNNEL_DEPTH:
            self._report("tunnel.too_deep", f"more than {MAX_TUNNEL_DEPTH} nested encapsulations")
            return None
        kind, ident, off, inner, vlan = found
        if self.fanout_notice_due and kind in _UDP_TUNNELS:
            self.fanout_notice_due = False
            self._report(
                "tunnel.fanout_blind",
                f"{kind} reached a live worker chosen by the kernel's fanout hash on the outer header: the "
                "two directions of a conversation inside may go to two workers; receive it with --workers 1",
            )
        data = pkt.payload
        pkt = self._pkt = pkt.inner(kind, ident)
        if inner == INNER_ETHERNET:
            off, ether_type = headers.ethernet(pkt, data, off, self._report)
            if vlan and not pkt.vlan:
                pkt.vlan = (vlan,)  # ERSPAN: the VLAN of a frame mirrored without its tag
        else:
            off, ether_type = headers.raw_ip(data, off)
        if off < 0:
            return None
        return self._network(pkt, data, off, ether_type, depth + 1)

    def flush(self) -> None:
        """End of input: report fragment sets that never completed."""
        if self._pkt is not None:
            self.fragments.flush(self._report)
