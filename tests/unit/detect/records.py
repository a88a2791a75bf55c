"""Record builders for detector tests: real event classes, defaults for the fields a test ignores."""

from __future__ import annotations

from typing import Any

from ics_monitor.dissect.s7comm.constants import PLUS_ATTRIBUTE_NAMES
from ics_monitor.dissect.s7comm.parser import pi_service_name
from ics_monitor.events.base import AnomalyEvent
from ics_monitor.events.dnp3 import Dnp3Event
from ics_monitor.events.flow import FlowRecord
from ics_monitor.events.modbus import ModbusDetailEvent, ModbusDiagnosticsEvent, ModbusEvent, ModbusUmasEvent
from ics_monitor.events.s7comm import CotpEvent, S7commEvent, S7commPlusEvent
from ics_monitor.inventory.assets import AssetChange

CLIENT = "10.0.0.5"
SERVER = "10.0.0.9"


def _ends(request: bool, client: str, server: str, port: int, client_port: int = 40000) -> dict[str, Any]:
    if request:
        return {
            "src_ip": client,
            "src_port": client_port,
            "dst_ip": server,
            "dst_port": port,
            "direction": "request",
        }
    return {
        "src_ip": server,
        "src_port": port,
        "dst_ip": client,
        "dst_port": client_port,
        "direction": "response",
    }


def modbus(
    function_code: int,
    *,
    ts: float = 1000.0,
    frame: int = 1,
    request: bool = True,
    unit_id: int = 1,
    address: int | None = None,
    quantity: int | None = None,
    values: tuple[int, ...] | None = None,
    exception_code: int | None = None,
    client: str = CLIENT,
    server: str = SERVER,
    flow_id: str = "f-modbus",
    sub_function: int | None = None,
    extra: dict[str, Any] | None = None,
    mei_type: int | None = None,
    **more: Any,
) -> Any:
    common: dict[str, Any] = {
        "ts": ts,
        "frame": frame,
        "flow_id": flow_id,
        "transport": "tcp",
        **_ends(request, client, server, 502),
        "transaction_id": frame,
        "unit_id": unit_id,
        "length": 6,
        "function_code": function_code,
        "function": f"FC{function_code}",
        "exception_code": exception_code,
        "address": address,
        "quantity": quantity,
        "values": values,
    }
    if function_code == 8:
        return ModbusDiagnosticsEvent(
            **common, sub_function=sub_function, sub_function_name=f"SUB{sub_function}", **more
        )
    if function_code == 90:
        return ModbusUmasEvent(**common, sub_function=sub_function, sub_function_name=f"UMAS{sub_function}")
    if function_code == 43:
        from ics_monitor.events.modbus import ModbusMeiEvent

        return ModbusMeiEvent(**common, mei_type=mei_type)
    if extra is not None:
        return ModbusDetailEvent(**common, extra=extra)
    return ModbusEvent(**common, **more)


def dnp3(
    function_code: int | None,
    *,
    ts: float = 1000.0,
    frame: int = 1,
    request: bool = True,
    src: int | None = None,
    dst: int | None = None,
    sequence: int | None = 0,
    objects: tuple[dict[str, Any], ...] = (),
    iin: int | None = None,
    client: str = CLIENT,
    server: str = SERVER,
    flow_id: str = "f-dnp3",
    request_frame: int | None = None,
) -> Dnp3Event:
    # Link addresses: master 1, outstation 10 (a response comes from the outstation).
    if src is None:
        src = 1 if request else 10
    if dst is None:
        dst = 10 if request else 1
    return Dnp3Event(
        ts=ts,
        frame=frame,
        flow_id=flow_id,
        transport="tcp",
        **_ends(request, client, server, 20000),
        src=src,
        dst=dst,
        link={},
        frames=1,
        length=10,
        function_code=function_code,
        function=None if function_code is None else f"F{function_code}",
        sequence=sequence,
        fir=True,
        fin=True,
        con=False,
        uns=False,
        iin=iin,
        iin_names=None,
        crc_ok=True,
        objects=objects,
        request_frame=request_frame,
    )


def s7(
    rosctr: int,
    *,
    function_code: int | None = None,
    ts: float = 1000.0,
    frame: int = 1,
    request: bool = True,
    userdata: dict[str, Any] | None = None,
    szl_id: int | None = None,
    pi_service: str | None = None,
    items: tuple[dict[str, Any], ...] | None = None,
    data_items: tuple[dict[str, Any], ...] | None = None,
    error_class: int | None = None,
    client: str = CLIENT,
    server: str = SERVER,
    flow_id: str = "f-s7",
    request_frame: int | None = None,
) -> S7commEvent:
    return S7commEvent(
        ts=ts,
        frame=frame,
        flow_id=flow_id,
        transport="tcp",
        **_ends(request, client, server, 102),
        rosctr=rosctr,
        rosctr_name=str(rosctr),
        pdu_ref=frame,
        parameter_length=0,
        data_length=0,
        function_code=function_code,
        function=None if function_code is None else f"F{function_code:#x}",
        userdata=userdata,
        szl_id=szl_id,
        pi_service=pi_service,
        pi_service_name=pi_service_name(pi_service),
        items=items,
        data_items=data_items,
        error_class=error_class,
        request_frame=request_frame,
    )


def userdata(group: int, subfunction: int, kind: int = 1) -> dict[str, Any]:
    return {
        "type": kind,
        "group": group,
        "subfunction": subfunction,
        "group_name": "G",
        "subfunction_name": "S",
    }


def s7plus(
    *,
    opcode: int = 0x31,
    fragment: str | None = None,
    function_code: int | None = None,
    frame: int = 1,
    request: bool = True,
    object_id: int | None = None,
    attribute_id: int | None = None,
    value: int | None = None,
    ts: float | None = None,
    sequence: int | None = None,
    request_frame: int | None = None,
) -> S7commPlusEvent:
    return S7commPlusEvent(
        ts=1000.0 + frame if ts is None else ts,
        frame=frame,
        flow_id="f-plus",
        transport="tcp",
        **_ends(request, CLIENT, SERVER, 102),
        version=3,
        version_name="V3",
        data_length=100,
        opcode=opcode,
        opcode_name={0x31: "REQUEST", 0x32: "RESPONSE", 0x33: "NOTIFICATION"}.get(opcode, "UNKNOWN"),
        function_code=function_code,
        function=None,
        session_id=7,
        sequence=frame if sequence is None else sequence,
        integrity=True,
        request_frame=request_frame,
        fragment=fragment,
        object_id=object_id,
        attribute_id=attribute_id,
        attribute=None if attribute_id is None else PLUS_ATTRIBUTE_NAMES.get(attribute_id),
        value=value,
    )


def anomaly(code: str, severity: str = "medium", *, frame: int = 1, flow_id: str = "f-a") -> AnomalyEvent:
    return AnomalyEvent(
        ts=1000.0 + frame,
        frame=frame,
        code=code,
        severity=severity,
        detail="test",
        protocol=code.split(".", maxsplit=1)[0],
        flow_id=flow_id,
        transport="tcp",
        src_ip=CLIENT,
        src_port=40000,
        dst_ip=SERVER,
        dst_port=502,
        direction="to_server",
    )


def cotp_request(
    *,
    ts: float,
    frame: int,
    flow_id: str,
    client: str = CLIENT,
    client_port: int = 40000,
    dst_tsap: dict[str, Any] | None = None,
) -> CotpEvent:
    """An S7 COTP connection request (CR) from ``client`` to the server's port 102."""
    return CotpEvent(
        ts=ts,
        frame=frame,
        flow_id=flow_id,
        transport="tcp",
        **_ends(True, client, SERVER, 102, client_port),
        pdu_type=0xE,
        pdu_type_name="CR",
        dst_tsap=dst_tsap,
    )


def flow(
    *,
    src_ip: str = CLIENT,
    dst_ip: str = SERVER,
    dst_port: int = 502,
    state: str | None = "closed",
    payload: int = 100,
    ts: float = 1000.0,
    flow_id: str | None = None,
    app_protocol: str | None = None,
    service: str | None = None,
    transport: str = "tcp",
    packets_to_server: int = 5,
    reply: int | None = None,
    missed_bytes: int = 0,
    packets_to_client: int | None = None,
    icmp_types: tuple[tuple[int, ...], tuple[int, ...]] = ((), ()),
) -> FlowRecord:
    return FlowRecord(
        flow_id=flow_id or f"flow-{src_ip}-{dst_ip}-{dst_port}-{ts}",
        community_id="1:x",
        ts_start=ts,
        ts_end=ts + 1,
        duration=1.0,
        first_frame=int(ts),
        transport=transport,
        ip_version=4,
        vlan=(),
        src_ip=src_ip,
        src_port=40000,
        dst_ip=dst_ip,
        dst_port=dst_port,
        src_mac="00:11:22:33:44:55",
        dst_mac="00:11:22:33:44:66",
        orientation="syn",
        packets_to_server=packets_to_server,
        packets_to_client=(5 if payload else 0) if packets_to_client is None else packets_to_client,
        bytes_to_server=500,
        bytes_to_client=500,
        payload_bytes_to_server=payload,
        payload_bytes_to_client=payload if reply is None else reply,
        tcp_flags_to_server=("SYN",),
        tcp_flags_to_client=(),
        state=state,
        end_reason="closed",
        service=service,
        app_protocol=app_protocol,
        missed_bytes=missed_bytes,
        retransmissions=0,
        icmp_types_to_server=icmp_types[0],
        icmp_types_to_client=icmp_types[1],
    )


def change(
    kind: str, *, ip: str = SERVER, field: str | None = None, before: Any = None, after: Any = None
) -> AssetChange:
    return AssetChange(
        kind=kind, asset_id="a1", ip=ip, mac=None, field=field, before=before, after=after, ts=1000.0, frame=3
    )
