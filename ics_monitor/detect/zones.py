"""Network zones and conduits from ``zones.yaml``: subnets -> zone and Purdue level, allowed paths.

The converged-network policy (IEC 62443 zones and conduits, Purdue levels) as data::

    zones:
      - {name: enterprise, level: 4, subnets: [10.10.0.0/16]}
      - {name: dmz, level: 3.5, subnets: [10.20.0.0/24]}
      - {name: control, level: 2, subnets: [192.168.1.0/24]}
      - {name: field, level: 1, subnets: [192.168.2.0/24]}
    conduits:
      - {from: control, to: field, protocols: [modbus, s7comm, dnp3]}
      - {from: enterprise, to: dmz, ports: [443]}
    ot_max_level: 2          # zones at or below this level hold OT assets (default 2)

A conduit allows traffic initiated from one zone to another, optionally only some protocols (the
flow's protocol name) or server ports; traffic inside a zone is always allowed.  The most specific
subnet wins when zones overlap.  Lookups are cached per address.  Reading the file is the only I/O.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ics_monitor.core.ports import port_number
from ics_monitor.core.yamlfile import load_yaml

DEFAULT_OT_MAX_LEVEL = 2.0


def _listed(entry: dict[str, Any], name: str) -> list[Any]:
    """A list field (absent: empty); one value alone is not read as its characters."""
    value = entry.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list (e.g. [{value}]), not {value!r}")
    return value


class ZonesError(ValueError):
    """``zones.yaml`` is malformed."""


@dataclass(frozen=True, slots=True)
class Zone:
    """One zone: a name, its Purdue level and its subnets."""

    name: str
    level: float
    subnets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


@dataclass(frozen=True, slots=True)
class Conduit:
    """Traffic allowed from clients in ``source`` to servers in ``target``."""

    source: str
    target: str
    protocols: frozenset[str] = frozenset()
    ports: frozenset[int] = frozenset()

    def allows(self, protocol: str | None, port: int | None) -> bool:
        """Whether the conduit carries this protocol/port (no list: anything)."""
        if self.protocols and (protocol is None or protocol not in self.protocols):
            return False
        return not (self.ports and (port is None or port not in self.ports))


class Zones:
    """The zone map and its conduits."""

    def __init__(
        self, zones: list[Zone], conduits: list[Conduit], ot_max_level: float = DEFAULT_OT_MAX_LEVEL
    ):
        names = [zone.name for zone in zones]
        if len(set(names)) != len(names):
            raise ZonesError("zone names must be unique")
        self.zones = {zone.name: zone for zone in zones}
        for conduit in conduits:
            for name in (conduit.source, conduit.target):
                if name not in self.zones:
                    raise ZonesError(f"conduit names unknown zone {name!r}")
        self.conduits: dict[tuple[str, str], list[Conduit]] = {}
        for conduit in conduits:
            self.conduits.setdefault((conduit.source, conduit.target), []).append(conduit)
        self.ot_max_level = ot_max_level
        # Most specific first: the longest prefix decides.
        self._networks = sorted(
            ((network, zone) for zone in zones for network in zone.subnets),
            key=lambda item: -item[0].prefixlen,
        )
        self.zone_of = lru_cache(maxsize=65_536)(self._zone_of)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Zones:
        """Build from the parsed YAML document."""
        if not isinstance(data, dict) or not isinstance(data.get("zones"), list):
            raise ZonesError("expected a mapping with a 'zones' list")
        zones = []
        for entry in data["zones"]:
            try:
                subnets = tuple(ipaddress.ip_network(str(s), strict=False) for s in _listed(entry, "subnets"))
                level = entry["level"]
                if isinstance(level, bool) or not isinstance(level, (int, float)) or not math.isfinite(level):
                    raise ValueError(f"level must be a number, not {level!r}")
                zones.append(Zone(str(entry["name"]), float(level), subnets))
            except (KeyError, TypeError, ValueError) as error:
                raise ZonesError(f"bad zone {entry!r}: {error}") from None
        conduits = []
        for entry in data.get("conduits") or ():
            try:
                conduits.append(
                    Conduit(
                        str(entry["from"]),
                        str(entry["to"]),
                        frozenset(str(p) for p in _listed(entry, "protocols")),
                        frozenset(port_number(p) for p in _listed(entry, "ports")),
                    )
                )
            except (KeyError, TypeError, ValueError) as error:
                raise ZonesError(f"bad conduit {entry!r}: {error}") from None
        return cls(zones, conduits, float(data.get("ot_max_level", DEFAULT_OT_MAX_LEVEL)))

    @classmethod
    def load(cls, path: str | Path) -> Zones:
        """Read ``zones.yaml``."""
        try:
            data = load_yaml(Path(path).read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ZonesError(f"{path}: not valid YAML: {error}") from None
        try:
            return cls.from_dict(data)
        except ZonesError as error:
            raise ZonesError(f"{path}: {error}") from None

    def _zone_of(self, ip: str) -> Zone | None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for network, zone in self._networks:
            if address.version == network.version and address in network:
                return zone
        return None

    def is_ot(self, zone: Zone) -> bool:
        """Whether a zone holds OT assets (Purdue level at or below ``ot_max_level``)."""
        return zone.level <= self.ot_max_level

    def conduit(self, source: Zone, target: Zone, protocol: str | None, port: int | None) -> Conduit | None:
        """The conduit allowing this traffic from ``source`` to ``target``, or None."""
        for conduit in self.conduits.get((source.name, target.name), ()):
            if conduit.allows(protocol, port):
                return conduit
        return None
