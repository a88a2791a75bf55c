"""Reconnaissance: sweeps and enumeration that precede an attack on a control system.

* Modbus unit-id sweep: one client addresses many unit ids of one server within a window.
* Modbus function-code sweep: one client tries many function codes on one server, or gets
  ILLEGAL_FUNCTION back for several (probing what the device supports).
* Device identification enumeration: Modbus FC 43/14 or FC 17, or DNP3 group 0 reads, aimed at
  several devices (server and unit) by one client.
* S7 SZL enumeration from a new host: several distinct identifying SZL lists (module and component
  identification, list of lists, memory and block types ...) read by a client that the baseline
  does not know as an S7 client of that PLC (every client, without a baseline).
* DNP3 address sweep: one host sends requests (link-only probes included) to many DNP3 link
  addresses.
* TCP scan of OT ports: one host with failed or probe-only connections (rejected, unanswered SYN,
  reset without payload) to many (server, port) pairs, at least one of them an OT service port.
* OT port misuse: a flow to a Modbus, DNP3 or S7 port whose bytes are another protocol (TLS, HTTP,
  RDP ...), or on the Modbus and DNP3 ports no protocol known here.
* UDP scan of OT ports: one host with unanswered UDP probes (a datagram or a few, nothing back) to
  many (server, port) pairs, at least one of them an OT service port (DNP3, BACnet, EtherNet/IP,
  PROFINET, Modbus/UDP ...).
* ICMP host sweep: one host pinging (echo, timestamp or address-mask requests) many addresses that
  never answer; answered pings do not count, so a monitoring server polling live devices is quiet.

State is one small set per key within a window (``WindowedSets``), keys capped, sets capped at a
few times the threshold; each detector reads its thresholds from its rule's ``params``.
"""

from __future__ import annotations

from typing import Any, Final

from ics_monitor.core.addresses import ip_sort_key
from ics_monitor.detect.api import BaseDetector, BoundedDict, Context, Emitter
from ics_monitor.inventory.baseline import is_asset_ip, is_tcp_knock

MAX_KEYS = 50_000


class WindowedSets:
    """Distinct values per key within a window; says when a key's set first reaches the threshold."""

    __slots__ = ("cap", "states", "threshold", "window")

    def __init__(self, window: float, threshold: int, limit: int = MAX_KEYS) -> None:
        self.window = float(window)
        self.threshold = int(threshold)
        self.cap = max(4 * self.threshold, 16)
        self.states: BoundedDict = BoundedDict(limit)

    def add(self, key: Any, value: Any, ts: float) -> tuple[float, set[Any]] | None:
        """Add ``value`` under ``key``; return (window start, values) when the threshold is crossed."""
        state = self.states.get(key)
        if state is None or abs(ts - state[0]) > self.window:
            state = [ts, set(), False]
            self.states[key] = state
        values = state[1]
        if value in values:
            return None
        if len(values) < self.cap:
            values.add(value)
        if not state[2] and len(values) >= self.threshold:
            state[2] = True
            return state[0], values
        return None


def _params(context: Context, rule_id: str, *names: str) -> list[Any]:
    return [context.rules.param(rule_id, name) for name in names]


class ModbusUnitSweep(BaseDetector):
    """ICS-3001: many unit ids of one server from one client."""

    name = "modbus_unit_sweep"
    rule_ids = ("ICS-3001",)
    event_types = frozenset({"modbus"})
    directions = frozenset({"request"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, threshold = _params(context, "ICS-3001", "window", "min_unit_ids")
        self.sets = WindowedSets(window, threshold)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Count distinct unit ids per (client, server)."""
        if event.direction != "request":
            return
        key = (event.src_ip, event.dst_ip)
        crossed = self.sets.add(key, event.unit_id, event.ts)
        if crossed is None:
            return
        start, units = crossed
        out.fire(
            "ICS-3001",
            f"{event.src_ip}>{event.dst_ip}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence={
                "unit_ids": sorted(units)[:64],
                "distinct_unit_ids": len(units),
                "window_start": start,
                "threshold": self.sets.threshold,
            },
        )


# ICS-3002's reasons as the explanation words them.
_SWEEP_HOW: Final = {
    "distinct_functions": "{} distinct function codes requested",
    "illegal_function_exceptions": "{} function codes refused with ILLEGAL FUNCTION",
}


class ModbusFunctionSweep(BaseDetector):
    """ICS-3002: many function codes tried, or several answered ILLEGAL_FUNCTION."""

    name = "modbus_function_sweep"
    rule_ids = ("ICS-3002",)
    event_types = frozenset({"modbus"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, distinct, illegal = _params(
            context, "ICS-3002", "window", "min_distinct_functions", "min_illegal_function_exceptions"
        )
        self.tried = WindowedSets(window, distinct)
        self.refused = WindowedSets(window, illegal)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Count distinct request functions and refused functions per (client, server)."""
        if event.direction == "request":
            key = (event.src_ip, event.dst_ip)
            crossed = self.tried.add(key, event.function_code, event.ts)
            reason = "distinct_functions"
        elif event.exception_code == 1:
            key = (event.dst_ip, event.src_ip)
            crossed = self.refused.add(key, event.function_code, event.ts)
            reason = "illegal_function_exceptions"
        else:
            return
        if crossed is None:
            return
        start, codes = crossed
        client, server = key
        out.fire(
            "ICS-3002",
            f"{client}>{server}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            endpoints={"src_ip": client, "dst_ip": server, "src_port": None, "dst_port": None},
            evidence={"reason": reason, "function_codes": sorted(codes)[:64], "window_start": start},
            fields={"how": _SWEEP_HOW[reason].format(len(codes))},
        )


class DeviceIdEnumeration(BaseDetector):
    """ICS-3003: identification requests aimed at several devices by one client."""

    name = "device_id_enumeration"
    rule_ids = ("ICS-3003",)
    event_types = frozenset({"modbus", "dnp3"})
    directions = frozenset({"request"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, threshold = _params(context, "ICS-3003", "window", "min_devices")
        self.sets = WindowedSets(window, threshold)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Modbus FC 43/14 and FC 17 requests; DNP3 READ of group 0 (device attributes)."""
        if event.direction != "request":
            return
        code = event.function_code
        if event.event_type == "modbus":
            if not (code == 17 or (code == 43 and getattr(event, "mei_type", None) == 14)):
                return
            device = (event.dst_ip, event.unit_id)
        else:
            if code != 1 or not any(obj.get("group") == 0 for obj in event.objects):
                return
            device = (event.dst_ip, event.dst)
        crossed = self.sets.add(event.src_ip, device, event.ts)
        if crossed is None:
            return
        start, devices = crossed
        out.fire(
            "ICS-3003",
            event.src_ip,
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence={
                "devices": [f"{ip}/{unit}" for ip, unit in sorted(devices, key=str)][:32],
                "distinct_devices": len(devices),
                "window_start": start,
            },
        )


class S7SzlEnumeration(BaseDetector):
    """ICS-3004: several SZL lists read by a host not known as an S7 client of that PLC."""

    name = "s7_szl_enumeration"
    rule_ids = ("ICS-3004",)
    event_types = frozenset({"s7comm"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, threshold, lists = _params(
            context, "ICS-3004", "window", "min_distinct_szl", "identity_lists"
        )
        self.sets = WindowedSets(window, threshold)
        # SZL partial-list numbers (low byte of the id) that describe the device rather than its
        # state: HMIs poll mode (0x24) and communication status (0x31, 0x32) as routine.
        self.identity_lists = frozenset(int(number) for number in lists)
        self.baseline = context.baseline
        # The baseline's S7 (client, server) pairs, indexed once: a walk over every conversation
        # per new pair cost minutes on a plant of thousands of learned conversations.
        self.known: set[tuple[str, str]] | None = None

    def _new_host(self, client: str, server: str) -> bool:
        baseline = self.baseline
        if baseline is None:
            return True
        known = self.known
        if known is None:
            known = self.known = {
                (c.client, c.server) for c in baseline.conversations.values() if c.protocol == "s7comm"
            }
        return (client, server) not in known

    def on_event(self, event: Any, out: Emitter) -> None:
        """Count distinct SZL ids read per (client, server)."""
        if event.rosctr != 7:
            return
        userdata: dict[str, Any] | None = event.userdata
        if (
            userdata is None
            or userdata.get("type") != 1
            or userdata.get("group") != 4
            or userdata.get("subfunction") != 1
        ):
            return
        szl_id = event.szl_id
        if szl_id is None or szl_id & 0xFF not in self.identity_lists:
            return
        client, server = event.src_ip, event.dst_ip
        crossed = self.sets.add((client, server), szl_id, event.ts)
        if crossed is None or not self._new_host(client, server):
            return
        start, szl_ids = crossed
        out.fire(
            "ICS-3004",
            f"{client}>{server}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence={
                "szl_ids": [
                    f"0x{szl:04x}" if isinstance(szl, int) else str(szl) for szl in sorted(szl_ids, key=str)
                ][:32],
                "distinct_szl": len(szl_ids),
                "baseline": "no baseline loaded"
                if self.baseline is None
                else "not a learned client of this PLC",
                "window_start": start,
            },
        )


class Dnp3AddressSweep(BaseDetector):
    """ICS-3005: requests to many DNP3 link addresses from one host."""

    name = "dnp3_address_sweep"
    rule_ids = ("ICS-3005",)
    event_types = frozenset({"dnp3"})
    directions = frozenset({"request"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, threshold = _params(context, "ICS-3005", "window", "min_addresses")
        self.sets = WindowedSets(window, threshold)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Count distinct (server, destination link address) per source host."""
        if event.direction != "request":
            return
        crossed = self.sets.add(event.src_ip, (event.dst_ip, event.dst), event.ts)
        if crossed is None:
            return
        start, targets = crossed
        out.fire(
            "ICS-3005",
            event.src_ip,
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence={
                "link_addresses": sorted({address for _, address in targets})[:64],
                "distinct_addresses": len(targets),
                "window_start": start,
            },
        )


class _PortProbes(BaseDetector):
    """Probes of (server, port) pairs per source host, for a scan rule with an OT port among them.

    Fires the rule once a host probed ``min_targets`` pairs within ``window`` seconds, at least one
    of them on ``ot_ports``; a threshold reached on IT ports only keeps counting until an OT port
    comes.  Subclasses say what a probe is (``probe``).
    """

    wants_flows = True

    def __init__(self, context: Context, rule_id: str) -> None:
        super().__init__(context)
        window, threshold, ports = _params(context, rule_id, "window", "min_targets", "ot_ports")
        self.rule_id = rule_id
        self.sets = WindowedSets(window, threshold)
        self.ot_ports = frozenset(int(port) for port in ports)

    def probe(self, record: Any) -> bool:
        """Whether the flow record is a probe of its server port."""
        raise NotImplementedError

    def on_flow(self, record: Any, out: Emitter) -> None:
        """Count probes per source host; fire when the threshold is crossed with an OT port."""
        if not self.probe(record):
            return
        crossed = self.sets.add(record.src_ip, (record.dst_ip, record.dst_port), record.ts_start)
        if crossed is None:
            return
        start, targets = crossed
        ot_targets = sorted(f"{ip}:{port}" for ip, port in targets if port in self.ot_ports)
        if not ot_targets:
            # Reached the threshold on IT ports only; an OT port later still fires (state kept).
            self.sets.states[record.src_ip][2] = False
            return
        out.fire(
            self.rule_id,
            record.src_ip,
            ts=record.ts_start,
            frames=(record.first_frame,),
            source=record,
            endpoints={"dst_ip": None, "dst_port": None, "flow_id": None, "src_port": None},
            evidence={
                "distinct_targets": len(targets),
                "ot_targets": ot_targets[:32],
                "hosts": len({ip for ip, _ in targets}),
                "ports": sorted({port for _, port in targets})[:64],
                "window_start": start,
            },
        )


class OtPortScan(_PortProbes):
    """ICS-3006: failed or probe-only TCP connections to many targets, OT service ports among them."""

    name = "ot_port_scan"
    rule_ids = ("ICS-3006",)

    def __init__(self, context: Context) -> None:
        super().__init__(context, "ICS-3006")

    def probe(self, record: Any) -> bool:
        """A TCP knock (``is_tcp_knock``).

        Not a lone ACK or keepalive with nothing back, which ``is_probe`` also counts: a peer that
        went away, seen from the side still trying, is no scan.
        """
        return is_tcp_knock(record)


class OtUdpScan(_PortProbes):
    """ICS-3009: unanswered UDP probes to many (server, port) pairs, OT service ports among them.

    A probe: a UDP flow of at most ``max_probe_packets`` datagrams to a host address (not broadcast
    or multicast discovery, ``is_asset_ip``) with nothing back (a closed port answers with ICMP port
    unreachable, a separate flow; a filtered one not at all).  UDP scanners (nmap -sU, protocol
    discovery scripts) send one or two datagrams per port; a one-way stream (syslog, a flow
    exporter) goes to one collector, not to many targets.  With a baseline, datagrams to a port the
    source talked to while learning are not probes (a DNP3/UDP master polling outstations that went
    silent is ICS-4003's business); per port, not per host: a scan during the learning window whose
    DNP3 probe the dissector decoded (and the baseline learned) still counts its other ports.
    """

    name = "ot_udp_scan"
    rule_ids = ("ICS-3009",)

    def __init__(self, context: Context) -> None:
        super().__init__(context, "ICS-3009")
        (probe,) = _params(context, "ICS-3009", "max_probe_packets")
        self.max_probe_packets = int(probe)
        self.baseline = context.baseline

    def probe(self, record: Any) -> bool:
        """An unanswered UDP flow of a few datagrams to a port the source did not talk to while learning."""
        if (
            record.transport != "udp"
            or record.packets_to_client
            or record.packets_sent(0) > self.max_probe_packets
            or not is_asset_ip(record.dst_ip)
        ):
            return False
        baseline = self.baseline
        return baseline is None or not baseline.knows_service(
            record.src_ip, record.dst_ip, "udp", record.dst_port
        )


# ICMP requests a host must answer, with their answers: echo, timestamp and address mask (IPv4),
# echo (ICMPv6).  Host discovery (nmap -sn -PE/-PP/-PM, fping, ping sweeps) sends these.
ICMP_PROBES: Final = {"icmp": ((8, 0), (13, 14), (17, 18)), "ipv6-icmp": ((128, 129),)}


class IcmpSweep(BaseDetector):
    """ICS-3010: pings from one host to many addresses that never answer.

    Per ICMP flow (one per host pair): a request sent and its answer never seen.  Answered pings do
    not count, as ICS-7003 counts only unanswered ARP: monitoring servers ping live devices all day,
    sweeps find out which addresses are live and mostly hit empty ones.  Pings to empty addresses of
    another subnet show only on the scanner's side of the router; on the far side the router's
    unanswered ARP for them is all there is (ICS-7003 with the router as its source).
    """

    name = "icmp_sweep"
    rule_ids = ("ICS-3010",)
    wants_flows = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, threshold = _params(context, "ICS-3010", "window", "min_targets")
        self.sets = WindowedSets(window, threshold)
        self.window = float(window)

    def on_flow(self, record: Any, out: Emitter) -> None:
        """Count unanswered ICMP requests per source host."""
        probes = ICMP_PROBES.get(record.transport)
        if probes is None:
            return
        sent: tuple[int, ...] = record.icmp_types_to_server
        back: tuple[int, ...] = record.icmp_types_to_client
        if not any(request in sent and answer not in back for request, answer in probes):
            return
        if not is_asset_ip(record.dst_ip):
            return
        crossed = self.sets.add(record.src_ip, record.dst_ip, record.ts_start)
        if crossed is None:
            return
        start, targets = crossed
        out.fire(
            "ICS-3010",
            record.src_ip,
            ts=record.ts_start,
            frames=(record.first_frame,),
            source=record,
            endpoints={"dst_ip": None, "dst_port": None, "flow_id": None, "src_port": None},
            evidence={
                "distinct_targets": len(targets),
                "targets": sorted(targets, key=ip_sort_key)[:32],
                "window_start": start,
            },
            fields={"window": f"{self.window:g}"},
        )


# Port services whose protocol this tool decodes: a flow to one of them is expected to decode as it.
DECODED_SERVICES: Final = frozenset({"modbus", "dnp3", "s7comm"})


class OtPortMisuse(BaseDetector):
    """ICS-3007 / ICS-3008: a flow to an OT service port that does not speak the port's protocol.

    ICS-3007: the client's opening bytes identify another protocol (TLS, HTTP, RDP, SSH, SMB ...).
    Internet scanners and attack tools fingerprint exposed controllers that way, and nothing in a
    control network has a reason to.  ICS-3008: payload that decodes neither as the port's
    protocol nor as a known one (a fuzzer, a proprietary or broken dialect such as Modbus RTU
    framing over TCP), on the Modbus and DNP3 ports only: port 102 also carries IEC 61850 MMS and
    ICCP in the same TPKT/COTP framing, so there only an identified foreign protocol counts.
    Judged on flow records (at the flow's end or active timeout); flows with lost bytes, or with
    fewer than ``min_payload`` client bytes beyond one per packet (keep-alive probes), are not.
    """

    name = "ot_port_misuse"
    rule_ids = ("ICS-3007", "ICS-3008")
    wants_flows = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        (minimum,) = _params(context, "ICS-3008", "min_payload")
        self.min_payload = int(minimum)
        self.undecoded_services = frozenset(str(name) for name in context.rules.param("ICS-3008", "services"))

    def on_flow(self, record: Any, out: Emitter) -> None:
        """Fire when the flow's port says one protocol and its bytes another (or none)."""
        service = record.service
        app = record.app_protocol
        if service not in DECODED_SERVICES or app == service:
            return
        if app is None:
            # Keep-alive probes carry one byte each and never reach a dissector: an idle
            # connection of a Windows client collects them.  Only bytes beyond one per client
            # packet count.
            if (
                service not in self.undecoded_services
                or record.payload_bytes_to_server - record.packets_sent(0) < self.min_payload
                or record.missed_bytes
            ):
                return
            rule_id = "ICS-3008"
            key = f"{record.src_ip}>{record.dst_ip}:{record.transport}/{record.dst_port}"
        else:
            rule_id = "ICS-3007"  # one alert per protocol tried: each is a finding of its own
            key = f"{record.src_ip}>{record.dst_ip}:{record.transport}/{record.dst_port}:{app}"
        answered = record.payload_bytes_to_client > 0
        out.fire(
            rule_id,
            key,
            ts=record.ts_start,
            last_ts=record.ts_end,
            frames=(record.first_frame,),
            source=record,
            evidence={
                "service": service,
                "app_protocol": app,
                "payload_bytes_to_server": record.payload_bytes_to_server,
                "payload_bytes_to_client": record.payload_bytes_to_client,
                "answered": answered,
                "state": record.state,
            },
            fields={"reply": "the device answered" if answered else "no answer came back"},
        )
