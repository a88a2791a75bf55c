"""The asset inventory: one record per device, built from protocol events, ARP and flow records.

Keying.  An asset is an IP address, with the MAC attached when that MAC is the device's own.  On
a routed network every remote device reaches the sensor behind the router's MAC, so a MAC is never
the key.  Which frames carry a device's own MAC: those of a conversation inside one subnet (no
router between), and those of an address in a *local* subnet (one seen talking inside itself, or
in ARP, which never crosses a router).  The other end of a conversation between a local and a
non-local subnet is remote: its frames carry a router's MAC.  A MAC is a *gateway* when it carried
such a remote address, or IPv4 addresses in two or more subnets, or ``gateway_min_ips`` or more
IPv4 addresses (or IPv6 /64 prefixes), or an IPv4 address other than the one(s) it claimed in ARP.
A host's own addresses of the other family do not count: a dual-stack PC carries its IPv4 address,
its IPv6 link-local address (which every interface has, and which never crosses a router: such a
conversation is always local) and perhaps global and temporary IPv6 ones in one or two prefixes.
The devices behind it keep their own assets (``mac`` None, ``gateway_mac`` set, no vendor from
the router's OUI); the gateway itself is the asset of the IP that claimed its MAC in ARP, or a
MAC-only asset until such a claim is seen.  When nothing
tells where an address sits, a public (global) one gets no MAC from traffic (it is almost always
remote), a private one does.

What an asset holds: vendor (MAC OUI, offline), roles earned by behaviour (``roles``), identity
read from the traffic (``identity``; Modbus gateways keep other units' identities in ``units``),
DNP3 link addresses it used as master and as outstation, Modbus unit ids it answered for, services
it offers (server ports that answered), protocols it speaks (IT ones too; not the ports it only
probed), first/last seen (capture time), a Purdue-level guess, and the history of identity changes
(firmware before/after).

``Inventory.observe`` / ``observe_flow`` return ``AssetChange`` records: ``new_asset``,
``identity_change`` (a field that had a value and now has another), ``role_change`` and
``new_service``.  First values are not changes.  Every collection is capped (assets, MACs, per-asset
services, protocols, addresses, history); hitting the asset cap sets ``limit_reached`` and counts
``dropped_assets`` so the pipeline can raise the ``inventory.asset_limit`` anomaly.  This module
does no I/O: the store persists ``Asset.to_dict()`` and gives it back to ``restore``.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from mypy_extensions import mypyc_attr

from ics_monitor.core.addresses import ipv4_assignable, ipv4_packed
from ics_monitor.core.anomalies import Severity, register
from ics_monitor.events.base import Event
from ics_monitor.events.flow import FlowRecord
from ics_monitor.inventory.baseline import is_probe
from ics_monitor.inventory.identity import dnp3_identity, modbus_identity, s7_identity, s7_rack_slot
from ics_monitor.inventory.oui import is_unicast_mac, vendor_of
from ics_monitor.inventory.roles import (
    ENGINEERING_STATION,
    GATEWAY,
    HMI,
    OT_PROTOCOLS,
    POLL_MIN_REQUESTS,
    POLL_MIN_SPAN,
    PROTOCOL_ROLES,
    engineering_request,
    poll_request,
    purdue_guess,
    server_sent,
)

NEW_ASSET: Final = "new_asset"
IDENTITY_CHANGE: Final = "identity_change"
ROLE_CHANGE: Final = "role_change"
NEW_SERVICE: Final = "new_service"

ASSET_LIMIT: Final = "inventory.asset_limit"
register(ASSET_LIMIT, Severity.MEDIUM, "asset inventory at its cap: devices seen from now on are not kept")

# Per-asset caps: a real device offers a handful of services; more is a scan artefact or abuse.
MAX_SERVICES: Final = 256
MAX_PROTOCOLS: Final = 64
MAX_DNP3_ADDRESSES: Final = 32
MAX_MODBUS_UNITS: Final = 256
MAX_S7_SLOTS: Final = 16
MAX_UNIT_IDENTITIES: Final = 32
MAX_HISTORY: Final = 100
# IPs remembered per MAC: enough to tell a gateway (it takes a few) without growing with a subnet.
MAX_IPS_PER_MAC: Final = 64
MAX_ARP_IPS_PER_MAC: Final = 16
# Subnets known to be on the sensor's segment(s): a plant has a handful; the cap bounds a spoofing storm.
MAX_LOCAL_SUBNETS: Final = 4096

# Where an address sits relative to the sensor (see ``Inventory._placement``).
LOCAL = "local"
ROUTED: Final = "routed"
UNKNOWN = "unknown"


# An ordinary class even when this module is compiled (mypyc): it is pickled to worker processes,
# and a native frozen class cannot be unpickled.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class InventoryConfig:
    """Inventory caps and the gateway rule (``gateway_min_ips`` IPs behind one MAC make it a router)."""

    max_assets: int = 50_000
    max_macs: int = 100_000
    max_tracked_flows: int = 200_000
    max_poll_pairs: int = 100_000
    gateway_min_ips: int = 3
    # An ARP claim for an address that its current MAC claimed in ARP this recently (seconds) is
    # a conflict (spoofing, ICS-7001), not a new owner: the asset keeps its MAC.
    arp_conflict_seconds: float = 300.0


# An ordinary class even when this module is compiled (mypyc): orjson serialises it as a dataclass,
# which it cannot do for a native class (it crashed).
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True, kw_only=True)
class AssetChange:
    """Something new or different about an asset, for the detectors and the store's history."""

    kind: str
    asset_id: str
    ip: str | None
    mac: str | None
    field: str | None
    before: Any
    after: Any
    ts: float
    frame: int
    event_type: str = "asset_change"


@dataclass(slots=True, kw_only=True)
class Asset:
    """One device.  Mutated only by ``Inventory``; ``to_dict`` is its JSON form (sorted, stable)."""

    asset_id: str
    ip: str | None
    first_seen: float
    last_seen: float
    first_frame: int = 0
    mac: str | None = None
    mac_source: str | None = None
    vendor: str | None = None
    gateway_mac: str | None = None
    roles: set[str] = field(default_factory=set)
    purdue_level: int | None = None
    purdue_reason: str = "no role seen yet"
    identity: dict[str, Any] = field(default_factory=dict)
    modbus_unit: int | None = None
    units: dict[int, dict[str, Any]] = field(default_factory=dict)
    modbus_units: set[int] = field(default_factory=set)
    dnp3_master: set[int] = field(default_factory=set)
    dnp3_outstation: set[int] = field(default_factory=set)
    s7_slots: set[str] = field(default_factory=set)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocols: set[str] = field(default_factory=set)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def product(self) -> str | None:
        """The best product name the identity gives (for tables)."""
        identity = self.identity
        for name in (
            "product_name",
            "model_name",
            "product_name_and_model",
            "module_type",
            "order_number",
            "module_name",
            "product_code",
            "server_id",
        ):
            if identity.get(name):
                return str(identity[name])
        return None

    @property
    def firmware(self) -> str | None:
        """The firmware/software version the identity gives."""
        for name in ("firmware", "revision", "software_version"):
            if self.identity.get(name):
                return str(self.identity[name])
        return None

    @property
    def maker(self) -> str | None:
        """Vendor as the device states it, else as its MAC's OUI registers it."""
        for name in ("vendor_name", "manufacturer_name"):
            if self.identity.get(name):
                return str(self.identity[name])
        return self.vendor

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with sets sorted so that output is deterministic."""
        return {
            "event_type": "asset",
            "asset_id": self.asset_id,
            "ip": self.ip,
            "mac": self.mac,
            "mac_source": self.mac_source,
            "vendor": self.vendor,
            "gateway_mac": self.gateway_mac,
            "roles": sorted(self.roles),
            "purdue_level": self.purdue_level,
            "purdue_reason": self.purdue_reason,
            "identity": dict(sorted(self.identity.items())),
            "product": self.product,
            "firmware": self.firmware,
            "modbus_unit": self.modbus_unit,
            "units": {str(unit): dict(sorted(fields.items())) for unit, fields in sorted(self.units.items())},
            "modbus_units": sorted(self.modbus_units),
            "dnp3_addresses": {
                "master": sorted(self.dnp3_master),
                "outstation": sorted(self.dnp3_outstation),
            },
            "s7_slots": sorted(self.s7_slots),
            "services": [self.services[key] for key in sorted(self.services, key=_service_order)],
            "protocols": sorted(self.protocols),
            "it_protocols": sorted(self.protocols - OT_PROTOCOLS),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "first_frame": self.first_frame,
            "history": list(self.history),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Asset:
        """Rebuild an asset from ``to_dict`` output (the store's rows)."""
        return cls(
            asset_id=data["asset_id"],
            ip=data.get("ip"),
            first_seen=float(data["first_seen"]),
            last_seen=float(data["last_seen"]),
            first_frame=int(data.get("first_frame") or 0),
            mac=data.get("mac"),
            mac_source=data.get("mac_source"),
            vendor=data.get("vendor"),
            gateway_mac=data.get("gateway_mac"),
            roles=set(data.get("roles") or ()),
            purdue_level=data.get("purdue_level"),
            purdue_reason=data.get("purdue_reason") or "no role seen yet",
            identity=dict(data.get("identity") or {}),
            modbus_unit=data.get("modbus_unit"),
            units={int(unit): dict(fields) for unit, fields in (data.get("units") or {}).items()},
            modbus_units=set(data.get("modbus_units") or ()),
            dnp3_master=set((data.get("dnp3_addresses") or {}).get("master") or ()),
            dnp3_outstation=set((data.get("dnp3_addresses") or {}).get("outstation") or ()),
            s7_slots=set(data.get("s7_slots") or ()),
            services={_service_key(s["transport"], s["port"]): dict(s) for s in data.get("services") or ()},
            protocols=set(data.get("protocols") or ()),
            history=list(data.get("history") or ()),
        )


def _service_key(transport: str, port: int) -> str:
    return f"{transport}/{port}"


def _service_order(key: str) -> tuple[str, int]:
    transport, _, port = key.partition("/")
    return transport, int(port) if port.isdigit() else 0


def asset_id_for(kind: str, value: str) -> str:
    """Deterministic asset id: 16 hex digits of BLAKE2b over ``kind:value`` (``ip`` or ``mac``)."""
    return hashlib.blake2b(f"{kind}:{value}".encode(), digest_size=8).hexdigest()


_IPV4_BROADCAST: Final = b"\xff\xff\xff\xff"


@lru_cache(maxsize=65_536)
def is_host_ip(ip: str) -> bool:
    """True for an address a device can own: not empty, multicast, unspecified or limited broadcast."""
    packed = ipv4_packed(ip)
    if packed is not None:
        return ipv4_assignable(packed) and packed != _IPV4_BROADCAST
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if address.is_multicast or address.is_unspecified:
        return False
    return not (address.version == 4 and ip == "255.255.255.255")


@lru_cache(maxsize=65_536)
def is_global_ip(ip: str) -> bool:
    """True for a public address: almost always remote, so the frame's MAC is a router's."""
    return ipaddress.ip_address(ip).is_global


@lru_cache(maxsize=65_536)
def is_link_local_v6(ip: str) -> bool:
    """True for an IPv6 link-local address (fe80::/10): on-link only, one on every interface."""
    return ":" in ip and ipaddress.ip_address(ip).is_link_local


@lru_cache(maxsize=65_536)
def subnet_of(ip: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) an address belongs to: the unit of the gateway rule."""
    packed = ipv4_packed(ip)
    if packed is not None:
        return f"{packed[0]}.{packed[1]}.{packed[2]}.0/24"
    address = ipaddress.ip_address(ip)
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _ip_order(asset: Asset) -> tuple[int, int, bytes, str]:
    if asset.ip is None:
        return (1, 0, b"", asset.mac or "")
    packed = ipv4_packed(asset.ip)
    if packed is not None:
        return (0, 4, packed, "")
    address = ipaddress.ip_address(asset.ip)
    return (0, address.version, address.packed, "")


class _MacInfo:
    """What one MAC was seen with: IPs in traffic, IPs it claimed in ARP, gateway verdict.

    ``ipv4``/``subnets``: its IPv4 addresses and their /24s; ``prefixes6``: the /64s of its IPv6
    addresses but link-local ones (the gateway rule's evidence, per family).
    """

    __slots__ = ("arp_ips", "gateway", "ips", "ipv4", "prefixes6", "routed", "subnets")

    def __init__(self) -> None:
        self.ips: set[str] = set()
        self.ipv4: set[str] = set()
        self.subnets: set[str] = set()
        self.prefixes6: set[str] = set()
        self.arp_ips: set[str] = set()
        self.gateway = False
        self.routed = False

    def add(self, ip: str) -> None:
        """Count ``ip`` as carried by this MAC."""
        self.ips.add(ip)
        if ":" not in ip:
            self.ipv4.add(ip)
            self.subnets.add(subnet_of(ip))
        elif not is_link_local_v6(ip):
            self.prefixes6.add(subnet_of(ip))

    def owners(self, gateway_min_ips: int) -> set[str]:
        """IPs that own this MAC: those it claimed in ARP, unless it claims many (proxy ARP)."""
        return self.arp_ips if len(self.arp_ips) < gateway_min_ips else set()


# Compiled (mypyc); Python subclasses stay possible (tests make one fail on purpose).
@mypyc_attr(allow_interpreted_subclasses=True)
class Inventory:
    """Builds and keeps the assets; see the module docstring for the rules."""

    def __init__(self, config: InventoryConfig | None = None) -> None:
        self.config = config or InventoryConfig()
        self._assets: dict[str, Asset] = {}
        self._by_ip: dict[str, Asset] = {}
        self._macs: dict[str, _MacInfo] = {}
        self._local_subnets: set[str] = set()
        self._seen_flows: set[tuple[str, str, str]] = set()
        # (client ip, server ip, protocol) -> [read requests, first ts]
        self._polls: dict[tuple[str, str, str], list[float]] = {}
        # ip -> (MAC, capture time) of the last accepted ARP claim of that address
        self._arp_claims: dict[str, tuple[str, float]] = {}
        self.dropped_assets = 0
        self.limit_reached = False

    # -- queries ---------------------------------------------------------------------------------------

    def assets(self) -> list[Asset]:
        """Every asset, IPv4 before IPv6 in address order, MAC-only gateways last."""
        return sorted(self._assets.values(), key=_ip_order)

    def asset_for_ip(self, ip: str) -> Asset | None:
        """The asset of ``ip``, if any."""
        return self._by_ip.get(ip)

    def __len__(self) -> int:
        return len(self._assets)

    # -- input -----------------------------------------------------------------------------------------

    def observe(self, event: Event) -> list[AssetChange]:
        """Take a protocol event or an ARP observation; anomalies and other records are ignored."""
        fields: dict[str, Any] = event.__dict__  # read as dict items: see roles.server_sent
        kind: str = fields["event_type"]
        if kind == "anomaly":
            return []
        if kind == "arp":
            return self._arp(event)
        if "flow_id" not in fields:
            return []
        return self._protocol(event, fields)

    def observe_flow(self, record: FlowRecord) -> list[AssetChange]:
        """Take a flow record: endpoints, MACs, protocols spoken, services that answered."""
        changes: list[AssetChange] = []
        ts, frame = record.ts_start, record.first_frame
        client = self._host(record.src_ip, ts, frame, changes)
        answered = record.packets_to_client > 0
        server = self._host(record.dst_ip, ts, frame, changes) if answered else None
        end = record.ts_end
        if client is not None and end > client.last_seen:
            client.last_seen = end
        if server is not None and end > server.last_seen:
            server.last_seen = end
        src_place, dst_place = self._placement(record.src_ip, record.dst_ip)
        self._note_mac(record.src_ip, record.src_mac, client, False, ts, frame, changes, src_place)
        self._note_mac(record.dst_ip, record.dst_mac, server, False, ts, frame, changes, dst_place)
        name = record.app_protocol or record.service
        if name:
            if client is not None and not is_probe(record):
                self._add_protocol(client, name)
            if server is not None:
                self._add_protocol(server, name)
        if server is not None and _served(record):
            self._add_service(
                server,
                record.transport,
                record.dst_port,
                name,
                record.app_protocol is not None,
                ts,
                frame,
                changes,
            )
        return changes

    def restore(self, assets: list[dict[str, Any]]) -> None:
        """Load assets saved by the store (``Asset.to_dict`` dicts) before new input arrives."""
        for data in assets:
            if len(self._assets) >= self.config.max_assets:
                self.dropped_assets += 1
                continue
            asset = Asset.from_dict(data)
            self._assets[asset.asset_id] = asset
            if asset.ip is not None:
                self._by_ip[asset.ip] = asset
                if asset.mac is not None and len(self._local_subnets) < MAX_LOCAL_SUBNETS:
                    self._local_subnets.add(subnet_of(asset.ip))
            for mac in (asset.mac, asset.gateway_mac):
                if not mac or (asset.ip is None and mac != asset.mac):
                    continue
                info = self._macs.setdefault(mac, _MacInfo())
                if asset.ip is not None:
                    info.add(asset.ip)
                    if asset.mac_source == "arp" and mac == asset.mac:
                        info.arp_ips.add(asset.ip)
                if mac == asset.gateway_mac or GATEWAY in asset.roles:
                    info.gateway = True

    # -- ARP and protocol events -----------------------------------------------------------------------

    def _arp(self, event: Any) -> list[AssetChange]:
        changes: list[AssetChange] = []
        ip, mac, ts = event.sender_ip, event.sender_mac, event.ts
        known = self._by_ip.get(ip)
        if known is not None and self._contested(known, mac, ts):
            # A second live claimant (ARP spoofing, reported as ICS-7001) is neither the address's
            # MAC nor, through this claim, a proxy-ARP gateway.
            return changes
        asset = self._host(ip, ts, event.frame, changes)
        if asset is not None:
            # ARP never crosses a router: the sender's subnet is on the sensor's segment.
            if len(self._local_subnets) < MAX_LOCAL_SUBNETS:
                self._local_subnets.add(subnet_of(ip))
            self._note_mac(ip, mac, asset, True, ts, event.frame, changes)
            if is_unicast_mac(mac) and (
                ip in self._arp_claims or len(self._arp_claims) < self.config.max_assets
            ):
                self._arp_claims[ip] = (mac, ts)
        return changes

    def _contested(self, asset: Asset, mac: str, ts: float) -> bool:
        """Whether ``asset``'s IP is still claimed in ARP by its own, other, MAC."""
        current = asset.mac
        if current is None or current == mac or asset.mac_source != "arp" or not is_unicast_mac(mac):
            return False
        claim = self._arp_claims.get(asset.ip or "")
        return claim is not None and claim[0] == current and ts - claim[1] <= self.config.arp_conflict_seconds

    def _protocol(self, event: Any, fields: dict[str, Any]) -> list[AssetChange]:
        changes: list[AssetChange] = []
        ts = fields["ts"]
        frame = fields["frame"]
        by_ip = self._by_ip
        src_ip = fields["src_ip"]
        src = by_ip.get(src_ip)
        if src is None:
            src = self._host(src_ip, ts, frame, changes)
        elif ts > src.last_seen:
            src.last_seen = ts
        dst_ip = fields["dst_ip"]
        dst = by_ip.get(dst_ip)
        if dst is None:
            dst = self._host(dst_ip, ts, frame, changes)
        elif ts > dst.last_seen:
            dst.last_seen = ts
        kind: str = fields["event_type"]
        direction = fields["direction"]
        key = (fields["flow_id"], kind, direction)
        if key not in self._seen_flows:
            self._first_in_flow(event, fields, key, src, dst, changes)
        if kind == "modbus":
            if direction == "response":  # what a Modbus server says of itself
                self._modbus(event, fields, src, changes)
        elif kind == "dnp3":
            self._dnp3(event, fields, src, changes)
        elif kind in ("s7comm", "cotp"):
            self._s7(event, fields, src, changes)
        if direction == "request" and src is not None:
            if ENGINEERING_STATION not in src.roles and engineering_request(fields, event):
                self._add_role(src, ENGINEERING_STATION, ts, frame, changes)
            if HMI not in src.roles and dst is not None and poll_request(fields):
                self._poll(event, src, dst, changes)
        return changes

    def _first_in_flow(
        self,
        event: Any,
        fields: dict[str, Any],
        key: tuple[str, str, str],
        src: Asset | None,
        dst: Asset | None,
        changes: list[AssetChange],
    ) -> None:
        """Once per flow, protocol and direction: roles, protocol spoken, service offered."""
        if len(self._seen_flows) >= self.config.max_tracked_flows:
            # Forgetting only costs repeating this idempotent step once per flow.
            self._seen_flows.clear()
        self._seen_flows.add(key)
        kind = event.event_type
        ts, frame = event.ts, event.frame
        self._placement(event.src_ip, event.dst_ip)
        if src is not None:
            self._add_protocol(src, kind)
        if dst is not None:
            self._add_protocol(dst, kind)
        roles = PROTOCOL_ROLES.get(kind)
        if roles is None:
            return
        if server_sent(fields):
            client, server, server_port = dst, src, event.src_port
        else:
            client, server, server_port = src, dst, event.dst_port
        if client is not None:
            self._add_role(client, roles[0], ts, frame, changes)
        if server is not None:
            self._add_role(server, roles[1], ts, frame, changes)
            # A service is proven by the server's own words: a response (or, for S7, any PDU from 102).
            if server is src:
                self._add_service(server, event.transport, server_port, kind, True, ts, frame, changes)

    def _modbus(
        self, event: Any, fields: dict[str, Any], server: Asset | None, changes: list[AssetChange]
    ) -> None:
        if fields["direction"] != "response" or server is None or fields["exception_code"] is not None:
            return
        unit = fields["unit_id"]
        if unit not in server.modbus_units and len(server.modbus_units) < MAX_MODBUS_UNITS:
            server.modbus_units.add(unit)
        if fields["function_code"] not in (17, 43, 90):
            return
        identity = modbus_identity(event)
        if not identity:
            return
        if server.modbus_unit is None:
            server.modbus_unit = unit
        if unit == server.modbus_unit:
            self._set_identity(server, identity, "", event.ts, event.frame, changes)
            return
        # A Modbus/TCP gateway answers for several serial devices: keep each unit's identity apart.
        other = server.units.get(unit)
        if other is None:
            if len(server.units) >= MAX_UNIT_IDENTITIES:
                return
            other = server.units[unit] = {}
        self._merge_identity(server, other, identity, f"units.{unit}.", event.ts, event.frame, changes)

    def _dnp3(
        self, event: Any, fields: dict[str, Any], sender: Asset | None, changes: list[AssetChange]
    ) -> None:
        # Each side's own link address is the source of the application fragments it sends.  A
        # request's destination may be anything the sender tries (an address sweep), and link-only
        # frames prove nothing: some outstations answer link status for every address asked.
        if sender is None or fields["function_code"] is None:
            return
        address = fields["src"]
        response = fields["direction"] == "response"
        addresses = sender.dnp3_outstation if response else sender.dnp3_master
        if address not in addresses and len(addresses) < MAX_DNP3_ADDRESSES:
            addresses.add(address)
        if response and fields["objects"]:
            identity = dnp3_identity(event)
            if identity:
                self._set_identity(sender, identity, "", event.ts, event.frame, changes)

    def _s7(self, event: Any, fields: dict[str, Any], src: Asset | None, changes: list[AssetChange]) -> None:
        # SZL data and connection confirms come from the PLC: a response's source.
        if fields["direction"] != "response" or src is None:
            return
        if fields["event_type"] == "cotp":
            rack_slot = s7_rack_slot(event)
            if rack_slot is not None and rack_slot not in src.s7_slots and len(src.s7_slots) < MAX_S7_SLOTS:
                src.s7_slots.add(rack_slot)
            return
        if fields.get("szl") is not None:
            identity = s7_identity(event)
            if identity:
                self._set_identity(src, identity, "", event.ts, event.frame, changes)

    def _poll(self, event: Any, client: Asset, server: Asset, changes: list[AssetChange]) -> None:
        key = (event.src_ip, event.dst_ip, event.event_type)
        entry = self._polls.get(key)
        if entry is None:
            if len(self._polls) >= self.config.max_poll_pairs:
                return
            self._polls[key] = [1.0, event.ts]
            return
        entry[0] += 1
        if entry[0] >= POLL_MIN_REQUESTS and event.ts - entry[1] >= POLL_MIN_SPAN:
            self._add_role(client, HMI, event.ts, event.frame, changes)
            del self._polls[key]

    # -- building blocks -------------------------------------------------------------------------------

    def _change(
        self, kind: str, asset: Asset, name: str | None, before: Any, after: Any, ts: float, frame: int
    ) -> AssetChange:
        return AssetChange(
            kind=kind,
            asset_id=asset.asset_id,
            ip=asset.ip,
            mac=asset.mac,
            field=name,
            before=before,
            after=after,
            ts=ts,
            frame=frame,
        )

    def _host(self, ip: str, ts: float, frame: int, changes: list[AssetChange]) -> Asset | None:
        """The asset of ``ip``, made on first sight; None for non-host addresses or at the cap."""
        asset = self._by_ip.get(ip)
        if asset is not None:
            if ts > asset.last_seen:
                asset.last_seen = ts
            elif ts < asset.first_seen:
                asset.first_seen = ts
            return asset
        if not ip or not is_host_ip(ip):
            return None
        if len(self._assets) >= self.config.max_assets:
            self.dropped_assets += 1
            self.limit_reached = True
            return None
        asset = Asset(asset_id=asset_id_for("ip", ip), ip=ip, first_seen=ts, last_seen=ts, first_frame=frame)
        self._assets[asset.asset_id] = asset
        self._by_ip[ip] = asset
        changes.append(self._change(NEW_ASSET, asset, None, None, ip, ts, frame))
        return asset

    def _add_role(self, asset: Asset, role: str, ts: float, frame: int, changes: list[AssetChange]) -> None:
        if role in asset.roles:
            return
        before = sorted(asset.roles)
        asset.roles.add(role)
        asset.purdue_level, asset.purdue_reason = purdue_guess(asset.roles, asset.protocols)
        changes.append(self._change(ROLE_CHANGE, asset, "roles", before, sorted(asset.roles), ts, frame))

    def _add_protocol(self, asset: Asset, name: str) -> None:
        protocols = asset.protocols
        if name in protocols or len(protocols) >= MAX_PROTOCOLS:
            return
        protocols.add(name)
        asset.purdue_level, asset.purdue_reason = purdue_guess(asset.roles, protocols)

    def _add_service(
        self,
        asset: Asset,
        transport: str,
        port: int,
        name: str | None,
        identified: bool,
        ts: float,
        frame: int,
        changes: list[AssetChange],
    ) -> None:
        key = _service_key(transport, port)
        service = asset.services.get(key)
        if service is None:
            if len(asset.services) >= MAX_SERVICES:
                return
            asset.services[key] = {
                "transport": transport,
                "port": port,
                "name": name,
                "identified": identified,
                "first_seen": ts,
                "last_seen": ts,
            }
            changes.append(self._change(NEW_SERVICE, asset, "services", None, key, ts, frame))
            return
        if name and ((identified and not service["identified"]) or not service["name"]):
            service["name"] = name
            service["identified"] = identified
        if ts > service["last_seen"]:
            service["last_seen"] = ts
        elif ts < service["first_seen"]:
            service["first_seen"] = ts

    def _set_identity(
        self,
        asset: Asset,
        fields: dict[str, Any],
        prefix: str,
        ts: float,
        frame: int,
        changes: list[AssetChange],
    ) -> None:
        self._merge_identity(asset, asset.identity, fields, prefix, ts, frame, changes)

    def _merge_identity(
        self,
        asset: Asset,
        identity: dict[str, Any],
        fields: dict[str, Any],
        prefix: str,
        ts: float,
        frame: int,
        changes: list[AssetChange],
    ) -> None:
        for name, value in fields.items():
            before = identity.get(name)
            if before == value:
                continue
            identity[name] = value
            if before is None:
                continue
            path = prefix + name
            changes.append(self._change(IDENTITY_CHANGE, asset, path, before, value, ts, frame))
            if len(asset.history) >= MAX_HISTORY:
                del asset.history[0]
            asset.history.append({"ts": ts, "frame": frame, "field": path, "before": before, "after": value})

    # -- MACs and gateways -----------------------------------------------------------------------------

    def _note_mac(
        self,
        ip: str,
        mac: str | None,
        asset: Asset | None,
        from_arp: bool,
        ts: float,
        frame: int,
        changes: list[AssetChange],
        place: str = UNKNOWN,
    ) -> None:
        """Record that ``mac`` carried ``ip`` (in a frame, or claimed in ARP) and attach it if it is ip's own.

        ``place``: ``LOCAL`` (the frame came from ip's own segment), ``ROUTED`` (ip is remote: the
        MAC is a router's) or ``UNKNOWN`` (only a non-public address takes the MAC then).
        """
        if not is_unicast_mac(mac) or not ip or not is_host_ip(ip):
            return
        assert mac is not None
        info = self._macs.get(mac)
        if info is None:
            if len(self._macs) >= self.config.max_macs:
                return
            info = self._macs[mac] = _MacInfo()
        grew = False
        if from_arp and ip not in info.arp_ips and len(info.arp_ips) < MAX_ARP_IPS_PER_MAC:
            info.arp_ips.add(ip)
            grew = True
        if ip not in info.ips and len(info.ips) < MAX_IPS_PER_MAC:
            info.add(ip)
            grew = True
        if place == ROUTED and not from_arp and not info.routed:
            info.routed = True
            grew = True
        if grew and not info.gateway and self._is_gateway(info):
            self._make_gateway(mac, info, ts, frame, changes)
        if asset is None:
            return
        if info.gateway:
            if ip in info.owners(self.config.gateway_min_ips):
                self._attach_mac(asset, mac, "arp", ts, frame, changes)
                self._add_role(asset, GATEWAY, ts, frame, changes)
                self._drop_mac_only_asset(mac, asset)
            else:
                self._behind_gateway(asset, mac)
        elif from_arp:
            self._attach_mac(asset, mac, "arp", ts, frame, changes)
        elif asset.mac is None and (place == LOCAL or (place == UNKNOWN and not is_global_ip(ip))):
            self._attach_mac(asset, mac, "traffic", ts, frame, changes)

    def _placement(self, src_ip: str, dst_ip: str) -> tuple[str, str]:
        """Where each end of a conversation sits relative to the sensor's segment(s).

        Two ends in one subnet talk without a router: both frames' MACs are their own, and the
        subnet is local.  Across subnets, an end in a known-local subnet is local and an end
        outside them, talking to a local end, is routed (its frames carry a router's MAC).
        """
        if not is_host_ip(src_ip) or not is_host_ip(dst_ip):
            return UNKNOWN, UNKNOWN
        if is_link_local_v6(src_ip) or is_link_local_v6(dst_ip):
            return LOCAL, LOCAL  # a link-local address never crosses a router
        src_subnet, dst_subnet = subnet_of(src_ip), subnet_of(dst_ip)
        local = self._local_subnets
        if src_subnet == dst_subnet:
            if src_subnet not in local and len(local) < MAX_LOCAL_SUBNETS:
                local.add(src_subnet)
            return LOCAL, LOCAL
        src_local, dst_local = src_subnet in local, dst_subnet in local
        if src_local == dst_local:
            return UNKNOWN, UNKNOWN
        return (LOCAL, ROUTED) if src_local else (ROUTED, LOCAL)

    def _is_gateway(self, info: _MacInfo) -> bool:
        if info.routed:
            return True  # it carried a remote address to or from a local one
        minimum = self.config.gateway_min_ips
        if len(info.arp_ips) >= minimum:
            return True  # proxy ARP: one MAC answering for many addresses
        if info.arp_ips and info.ipv4 - info.arp_ips:
            return True  # the MAC claimed some IPs in ARP and carries other IPv4 ones: it routes them
        # Per family (see the module docstring): a dual-stack host is no router.
        return len(info.subnets) >= 2 or len(info.ipv4) >= minimum or len(info.prefixes6) >= minimum

    def _make_gateway(
        self, mac: str, info: _MacInfo, ts: float, frame: int, changes: list[AssetChange]
    ) -> None:
        info.gateway = True
        owners = info.owners(self.config.gateway_min_ips)
        owned = False
        for ip in sorted(info.ips | info.arp_ips):
            asset = self._by_ip.get(ip)
            if asset is None:
                continue
            if ip in owners:
                owned = True
                self._attach_mac(asset, mac, "arp", ts, frame, changes)
                self._add_role(asset, GATEWAY, ts, frame, changes)
            else:
                self._behind_gateway(asset, mac)
        if not owned:
            self._mac_only_asset(mac, ts, frame, changes)

    def _behind_gateway(self, asset: Asset, mac: str) -> None:
        asset.gateway_mac = mac
        if asset.mac == mac:
            asset.mac = None
            asset.mac_source = None
            asset.vendor = None

    def _attach_mac(
        self, asset: Asset, mac: str, source: str, ts: float, frame: int, changes: list[AssetChange]
    ) -> None:
        before = asset.mac
        if before == mac:
            if source == "arp":
                asset.mac_source = source
            return
        asset.mac = mac
        asset.mac_source = source
        asset.vendor = vendor_of(mac)
        if asset.gateway_mac == mac:
            asset.gateway_mac = None
        # A MAC claimed in ARP that replaces another ARP-claimed one: new hardware, or ARP spoofing.
        if before is not None and source == "arp":
            changes.append(self._change(IDENTITY_CHANGE, asset, "mac", before, mac, ts, frame))
            if len(asset.history) >= MAX_HISTORY:
                del asset.history[0]
            asset.history.append({"ts": ts, "frame": frame, "field": "mac", "before": before, "after": mac})

    def _mac_only_asset(self, mac: str, ts: float, frame: int, changes: list[AssetChange]) -> None:
        asset_id = asset_id_for("mac", mac)
        if asset_id in self._assets or len(self._assets) >= self.config.max_assets:
            return
        asset = Asset(
            asset_id=asset_id,
            ip=None,
            first_seen=ts,
            last_seen=ts,
            first_frame=frame,
            mac=mac,
            mac_source="traffic",
            vendor=vendor_of(mac),
            roles={GATEWAY},
        )
        asset.purdue_level, asset.purdue_reason = purdue_guess(asset.roles, asset.protocols)
        self._assets[asset_id] = asset
        changes.append(self._change(NEW_ASSET, asset, None, None, mac, ts, frame))

    def _drop_mac_only_asset(self, mac: str, owner: Asset) -> None:
        """The gateway's IP is known now: its MAC-only stand-in merges into the IP's asset."""
        stand_in = self._assets.pop(asset_id_for("mac", mac), None)
        if stand_in is not None and stand_in.first_seen < owner.first_seen:
            owner.first_seen = stand_in.first_seen
            owner.first_frame = stand_in.first_frame


def _served(record: FlowRecord) -> bool:
    """True when the flow's server answered as a server (SYN-ACK, or payload back over UDP)."""
    if record.transport == "tcp":
        if "SYN" in record.tcp_flags_to_client:
            return True
        # Picked up mid-stream: payload both ways on a flow oriented by a well-known port.
        return record.orientation == "port" and record.payload_bytes_to_client > 0
    if record.transport == "udp":
        return record.payload_bytes_to_client > 0
    return False
