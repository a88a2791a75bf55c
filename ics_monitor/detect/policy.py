"""Converged-network policy: zones, conduits and Purdue levels from ``zones.yaml``.

For each new flow (its first protocol record, or its flow record for flows without any) between two
zoned addresses in different zones:

* ICS-6001 traffic between zones that no conduit allows;
* ICS-6002 an IT protocol (RDP, SMB, HTTP, SSH ... by content or port) reaching an asset in an OT
  zone, unless a conduit names that protocol or port explicitly;
* ICS-6003 traffic that skips a Purdue level (levels further apart than ``max_level_step``) without
  a conduit allowing it.

Addresses outside every zone are not judged.  Work per flow, not per packet; flow ids and
reported paths are remembered in capped sets.
"""

from __future__ import annotations

from typing import Any, Final

from ics_monitor.core.bounded import BoundedDict
from ics_monitor.detect.api import BaseDetector, Context, Emitter, SeenSet
from ics_monitor.detect.zones import Zones
from ics_monitor.inventory.baseline import is_conversation, protocol_of_event, protocol_of_flow

MAX_FLOWS: Final = 65_536


class ZonePolicy(BaseDetector):
    """ICS-6001..6003 against the zone map."""

    name = "zone_policy"
    rule_ids = ("ICS-6001", "ICS-6002", "ICS-6003")
    event_types = frozenset({"modbus", "dnp3", "s7comm", "s7comm_plus"})
    wants_flows = True
    needs_zones = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        assert context.zones is not None
        self.zones: Zones = context.zones
        rules = context.rules
        self.it_protocols = frozenset(str(p) for p in rules.param("ICS-6002", "it_protocols"))
        self.it_ports = frozenset(int(p) for p in rules.param("ICS-6002", "it_ports"))
        self.max_level_step = float(rules.param("ICS-6003", "max_level_step"))
        self.flows: BoundedDict = BoundedDict(MAX_FLOWS)
        self.seen = SeenSet()

    def on_event(self, event: Any, out: Emitter) -> None:
        """First record of a flow: judge its path."""
        if event.flow_id in self.flows:
            return
        self.flows[event.flow_id] = True
        if event.direction == "request":
            client, server, port = event.src_ip, event.dst_ip, event.dst_port
        else:
            client, server, port = event.dst_ip, event.src_ip, event.src_port
        self._judge(
            client, server, port, protocol_of_event(event.event_type), event, event.ts, event.frame, out
        )

    def on_flow(self, record: Any, out: Emitter) -> None:
        """Flows without protocol records are judged at their record."""
        if record.flow_id in self.flows:
            return
        if not is_conversation(record):
            return
        self.flows[record.flow_id] = True
        self._judge(
            record.src_ip,
            record.dst_ip,
            record.dst_port,
            protocol_of_flow(record),
            record,
            record.ts_start,
            record.first_frame,
            out,
        )

    def _judge(
        self,
        client: str,
        server: str,
        port: int,
        protocol: str,
        source: Any,
        ts: float,
        frame: int,
        out: Emitter,
    ) -> None:
        zones = self.zones
        source_zone = zones.zone_of(client)
        target_zone = zones.zone_of(server)
        if source_zone is None or target_zone is None or source_zone.name == target_zone.name:
            return
        path = f"{client}>{server}:{protocol}/{port}"
        if not self.seen.first(path):
            return
        evidence = {
            "client_zone": source_zone.name,
            "client_level": source_zone.level,
            "server_zone": target_zone.name,
            "server_level": target_zone.level,
            "protocol": protocol,
            "port": port,
        }
        conduit = zones.conduit(source_zone, target_zone, protocol, port)
        if conduit is None:
            skipped = abs(source_zone.level - target_zone.level) > self.max_level_step
            out.fire(
                "ICS-6003" if skipped else "ICS-6001",
                path,
                ts=ts,
                frames=(frame,),
                source=source,
                evidence=evidence,
            )
        is_it = protocol in self.it_protocols or port in self.it_ports
        if is_it and zones.is_ot(target_zone):
            explicit = conduit is not None and (protocol in conduit.protocols or port in conduit.ports)
            if not explicit:
                out.fire("ICS-6002", path, ts=ts, frames=(frame,), source=source, evidence=evidence)
