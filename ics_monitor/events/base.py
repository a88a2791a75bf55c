"""Common event records: the protocol-event base, anomalies and ARP observations."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every record carries: what it is, when (capture time) and in which frame."""

    event_type: str
    ts: float
    frame: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolEvent(Event):
    """One application PDU.  ``direction`` is ``request`` or ``response`` (protocol sense)."""

    flow_id: str
    transport: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    direction: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalyEvent(Event):
    """Something wrong or suspicious in traffic, with a stable ``code`` from ``core.anomalies``.

    Endpoints are those of the packet or flow concerned (empty when the frame was too broken to tell).
    ``direction`` is ``to_server`` or ``to_client`` when a flow is known.
    """

    event_type: str = "anomaly"
    code: str
    severity: str
    detail: str
    protocol: str | None = None
    flow_id: str | None = None
    transport: str | None = None
    src_ip: str = ""
    src_port: int | None = None
    dst_ip: str = ""
    dst_port: int | None = None
    direction: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ArpEvent(Event):
    """An ARP request or reply: a device stating its MAC-IP binding (input for the inventory)."""

    event_type: str = "arp"
    operation: int
    operation_name: str
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str
    vlan: tuple[int, ...] = ()
