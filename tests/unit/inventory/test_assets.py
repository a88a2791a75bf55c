"""The asset inventory over real records: identity, roles, services, MACs, gateways, history, caps.

Expected identities come from the generators that made the repo's captures (their source states
what the device says) or, for captures by others, from tshark's dissection of the same frames.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ics_monitor.core.ports import TCP_SERVICES
from ics_monitor.events import ArpEvent
from ics_monitor.events.dnp3 import Dnp3Event
from ics_monitor.events.flow import FlowRecord
from ics_monitor.events.modbus import ModbusEvent, ModbusMeiEvent
from ics_monitor.inventory.assets import (
    IDENTITY_CHANGE,
    NEW_ASSET,
    NEW_SERVICE,
    ROLE_CHANGE,
    Asset,
    Inventory,
    InventoryConfig,
    asset_id_for,
)
from ics_monitor.inventory.oui import LOCALLY_ADMINISTERED, is_unicast_mac, vendor_of
from tests.conftest import PCAPS, shared_pcaps
from tests.unit.inventory.helpers import inventory_of

SIEMENS_MAC = "00:1b:1b:23:eb:3b"  # IEEE OUI 00-1B-1B: Siemens AG


# -- record builders (one field per line where it matters) --------------------------------------------


def flow(
    src_ip: str,
    dst_ip: str,
    *,
    src_mac: str | None,
    dst_mac: str | None,
    dst_port: int = 502,
    transport: str = "tcp",
    answered: bool = True,
    ts: float = 100.0,
    app_protocol: str | None = None,
    service: str | None = "modbus",
) -> FlowRecord:
    return FlowRecord(
        flow_id=f"{src_ip}-{dst_ip}-{dst_port}",
        community_id="1:x",
        ts_start=ts,
        ts_end=ts + 1.0,
        duration=1.0,
        first_frame=1,
        transport=transport,
        ip_version=4,
        vlan=(),
        src_ip=src_ip,
        src_port=40000,
        dst_ip=dst_ip,
        dst_port=dst_port,
        src_mac=src_mac,
        dst_mac=dst_mac,
        orientation="syn",
        packets_to_server=3,
        packets_to_client=2 if answered else 0,
        bytes_to_server=200,
        bytes_to_client=150 if answered else 0,
        payload_bytes_to_server=12,
        payload_bytes_to_client=10 if answered else 0,
        tcp_flags_to_server=("SYN", "ACK"),
        tcp_flags_to_client=("SYN", "ACK") if answered else (),
        state="established" if answered else "syn_sent",
        end_reason="closed",
        service=service,
        app_protocol=app_protocol,
        missed_bytes=0,
        retransmissions=0,
    )


def arp(ip: str, mac: str, ts: float = 50.0) -> ArpEvent:
    return ArpEvent(
        ts=ts,
        frame=1,
        operation=2,
        operation_name="reply",
        sender_mac=mac,
        sender_ip=ip,
        target_mac="02:00:00:00:00:99",
        target_ip="10.0.0.99",
    )


def device_id_response(revision: str, ts: float, unit: int = 1, server: str = "10.0.0.2") -> ModbusMeiEvent:
    """An FC 43/14 response as the Modbus dissector builds it."""
    return ModbusMeiEvent(
        ts=ts,
        frame=int(ts),
        flow_id="f1",
        transport="tcp",
        src_ip=server,
        src_port=502,
        dst_ip="10.0.0.1",
        dst_port=40000,
        direction="response",
        transaction_id=1,
        unit_id=unit,
        length=30,
        function_code=43,
        function="ENCAPSULATED_INTERFACE_TRANSPORT",
        mei_type=14,
        mei_type_name="READ_DEVICE_IDENTIFICATION",
        device_id={
            "read_code": 1,
            "objects": [
                {"id": 0, "name": "VendorName", "value": "Schneider Electric"},
                {"id": 1, "name": "ProductCode", "value": "BMX P34 2020"},
                {"id": 2, "name": "MajorMinorRevision", "value": revision},
            ],
        },
    )


def read_request(ts: float, client: str = "10.0.0.1", server: str = "10.0.0.2") -> ModbusEvent:
    return ModbusEvent(
        ts=ts,
        frame=int(ts * 10),
        flow_id="poll",
        transport="tcp",
        src_ip=client,
        src_port=40000,
        dst_ip=server,
        dst_port=502,
        direction="request",
        transaction_id=1,
        unit_id=1,
        length=6,
        function_code=3,
        function="READ_HOLDING_REGISTERS",
        address=0,
        quantity=10,
    )


def by_ip(inventory: Inventory) -> dict[str | None, Asset]:
    return {asset.ip: asset for asset in inventory.assets()}


# -- identity from real captures ----------------------------------------------------------------------


def test_modbus_device_identification_from_the_pymodbus_capture() -> None:
    # pcaps/generators/modbus/modbus_server.py serves this identity (IDENTITY) on 127.0.0.1.
    inventory, changes, _ = inventory_of(PCAPS / "modbus" / "pymodbus_all_functions.pcap")
    server = inventory.asset_for_ip("127.0.0.1")
    assert server is not None
    assert {key: server.identity[key] for key in server.identity if key != "server_id"} == {
        "vendor_name": "ics-monitor test vendor",
        "product_code": "ICSM-PLC-1",
        "revision": "3.16.1",
        "vendor_url": "http://plc.example.invalid",
        "product_name": "ics-monitor pymodbus server",
        "model_name": "loopback-plc",
        "user_application_name": "pcaps/generators/modbus",
    }
    assert server.firmware == "3.16.1" and server.maker == "ics-monitor test vendor"
    # Client and server share the loopback address: both roles land on one asset.
    assert {"modbus_client", "modbus_server"} <= server.roles
    assert server.modbus_units and server.modbus_units <= {1, 17, 247}  # the generator's UNIT_IDS
    assert "tcp/502" in server.services
    # First values are not changes: nothing in this capture changes identity.
    assert not [c for c in changes if c.kind == IDENTITY_CHANGE]


def test_modbus_gateway_keeps_each_units_identity_apart() -> None:
    # tshark: frame 62 is unit 2's FC 17 answer, frame 94 unit 1's FC 43/14 answer
    # (VendorName "Zeek Modbus Test", ProductCode "Protocol Parsing is fun!", revision "1.2.3.6").
    inventory, changes, _ = inventory_of(shared_pcaps() / "icsnpp-modbus" / "modbus_example.pcap")
    server = inventory.asset_for_ip("127.0.0.1")
    assert server is not None
    assert server.modbus_unit == 2
    assert server.identity["server_id"].startswith("Zeek Modbus Test")
    assert server.units[1] == {
        "vendor_name": "Zeek Modbus Test",
        "product_code": "Protocol Parsing is fun!",
        "revision": "1.2.3.6",
    }
    assert not [c for c in changes if c.kind == IDENTITY_CHANGE]


def test_s7_szl_identity_and_rack_slot() -> None:
    # tshark -V on the SZL 0x0011/0x001C answers: MlfB 6ES7 315-2EH14-0AB0; basic firmware Ausbg
    # 22019 (0x5603: 'V', 3) Ausbe 519 (0x0207: 2.7) = V3.2.7; AS name S7300/ET200M station_1;
    # module PLC_1; serial S C-B1U393142011; memory card MMC 4A1AC019.
    inventory, _, _ = inventory_of(shared_pcaps() / "icsnpp-s7comm" / "snap7.pcap")
    plc = inventory.asset_for_ip("134.217.61.211")
    client = inventory.asset_for_ip("134.217.61.131")
    assert plc is not None and client is not None
    identity = plc.identity
    assert identity["order_number"] == "6ES7 315-2EH14-0AB0"
    assert identity["firmware"] == "V3.2.7"
    assert identity["as_name"] == "S7300/ET200M station_1"
    assert identity["module_name"] == "PLC_1"
    assert identity["serial_number"] == "S C-B1U393142011"
    assert identity["memory_card_serial_number"] == "MMC 4A1AC019"
    assert "plant_id" not in identity  # tshark: "Tag (Plant identification of the module): " (empty)
    assert "s7_plc" in plc.roles and plc.purdue_level == 1
    # snap7's client stops the PLC and uploads blocks: an engineering station, level 2.
    assert {"s7_client", "engineering_station"} <= client.roles and client.purdue_level == 2


def test_s7_block_download_names_the_plc_and_the_engineering_station() -> None:
    # In a download the PLC sends the Download block / Download ended jobs to the programming
    # device: the PLC must stay the PLC (side on port 102), the PG is the engineering station.
    inventory, _, _ = inventory_of(shared_pcaps() / "iti" / "s7comm_downloading_block_db1.pcap")
    plc = inventory.asset_for_ip("192.168.1.40")
    station = inventory.asset_for_ip("192.168.1.10")
    assert plc is not None and station is not None
    assert plc.roles == {"s7_plc"}
    assert station.roles == {"s7_client", "engineering_station"}
    assert plc.vendor == "Siemens AG" and plc.mac == SIEMENS_MAC
    # tshark: the COTP connection confirm carries called TSAP 0x0102 (rack 0, slot 2).
    assert plc.s7_slots == {"0/2"}
    assert "tcp/102" in plc.services


def test_s7plus_stop_and_start_make_an_engineering_station() -> None:
    # TIA Portal on 192.168.55.5 stops and starts the S7-1200 at 192.168.42.10 (SetVariable of
    # CPUexecUnit.operatingStateReq); going online to the other CPUs changes nothing in them.
    inventory, _, _ = inventory_of(shared_pcaps() / "s7plus-anomaly" / "s71200_OnlineStopStart.pcapng")
    station = inventory.asset_for_ip("192.168.55.5")
    plc = inventory.asset_for_ip("192.168.42.10")
    assert station is not None and plc is not None
    assert {"s7_client", "engineering_station"} <= station.roles and station.purdue_level == 2
    assert plc.roles == {"s7_plc"}
    online, _, _ = inventory_of(shared_pcaps() / "s7plus-anomaly" / "S71200_StartupGoOnline.pcapng")
    client = online.asset_for_ip("192.168.55.5")
    assert client is not None and "engineering_station" not in client.roles
    # Reading program blocks (an upload) makes one too; a download's read of a block's type name
    # alone does not (its stop and start do).
    upload, _, _ = inventory_of(shared_pcaps() / "iti" / "S7-1200-Uploading-OB1-TIAV12.pcap")
    reader = upload.asset_for_ip("192.168.1.10")
    assert reader is not None and "engineering_station" in reader.roles


def test_dnp3_device_attributes_from_the_crafted_capture() -> None:
    # pcaps/generators/dnp3/malformed.py answers READ g0v254 with these attributes (variations
    # 252, 250, 242, 243, 248) from 10.0.0.2.
    inventory, _, _ = inventory_of(PCAPS / "dnp3" / "crafted_objects.pcap")
    outstation = inventory.asset_for_ip("10.0.0.2")
    assert outstation is not None
    assert outstation.identity == {
        "manufacturer_name": "ACME Grid Systems",
        "product_name_and_model": "RTU-5000",
        "software_version": "4.2.1",
        "hardware_version": "rev C",
        "serial_number": "SN123456",
    }
    assert outstation.maker == "ACME Grid Systems" and outstation.firmware == "4.2.1"
    assert "dnp3_outstation" in outstation.roles


def test_dnp3_link_addresses_by_role_and_no_sweep_pollution() -> None:
    # The lab outstation answers link status for every address a sweep asks (tshark: 81 distinct
    # LINK_STATUS sources): link-only frames must not become the outstation's addresses.
    inventory, _, _ = inventory_of(shared_pcaps() / "dnp3-ics-lab" / "DNP3_ENUMERATE.pcap")
    host = inventory.asset_for_ip("127.0.0.1")
    assert host is not None
    assert len(host.dnp3_outstation) <= 2 and len(host.dnp3_master) <= 2
    inventory, _, _ = inventory_of(shared_pcaps() / "iti" / "dataset_exchange.pcap")
    master = inventory.asset_for_ip("192.168.77.225")
    outstation = inventory.asset_for_ip("192.168.77.235")
    assert master is not None and outstation is not None
    # tshark: dnp3.src 3 -> dnp3.dst 4 on requests, 4 -> 3 on responses.
    assert master.dnp3_master == {3} and not master.dnp3_outstation
    assert outstation.dnp3_outstation == {4} and not outstation.dnp3_master


def test_polling_client_is_an_hmi_and_plcs_are_level_one() -> None:
    # lemay: 192.168.1.100 polls six RTUs (.101-.106) for minutes, and moves files over SMB/NetBIOS.
    inventory, _, _ = inventory_of(shared_pcaps() / "lemay-modbus" / "moving_two_files_modbus_6RTU.pcap")
    assets = by_ip(inventory)
    hmi = assets["192.168.1.100"]
    assert {"modbus_client", "hmi"} <= hmi.roles and hmi.purdue_level == 2
    assert any(name.startswith("netbios") for name in hmi.protocols)
    for last in range(101, 107):
        rtu = assets[f"192.168.1.{last}"]
        assert "modbus_server" in rtu.roles and rtu.purdue_level == 1
        assert rtu.modbus_units == {1}
        assert rtu.vendor == "VMware, Inc"  # 00:0c:29 is VMware's OUI: the lab's virtual RTUs


def test_a_short_burst_of_reads_is_not_polling() -> None:
    inventory = Inventory()
    for step in range(30):  # a scan: 30 reads within 3 seconds
        inventory.observe(read_request(100.0 + step * 0.1))
    client = inventory.asset_for_ip("10.0.0.1")
    assert client is not None and "hmi" not in client.roles
    for step in range(12):  # then steady polling every 2 s
        inventory.observe(read_request(200.0 + step * 2))
    assert "hmi" in client.roles


# -- MACs, gateways, vendors ----------------------------------------------------------------------------


def test_many_ips_behind_one_router_mac_stay_separate_assets() -> None:
    router = "00:1b:1b:aa:bb:cc"
    hmi_mac = "00:80:f4:00:00:02"  # Telemecanique (Schneider)
    inventory = Inventory()
    # A local HMI talks to three PLCs in another subnet: every PLC frame carries the router's MAC.
    for last in (10, 11, 12):
        inventory.observe_flow(flow("10.0.0.5", f"10.1.0.{last}", src_mac=hmi_mac, dst_mac=router))
    assets = by_ip(inventory)
    assert len([ip for ip in assets if ip and ip.startswith("10.1.0.")]) == 3
    for last in (10, 11, 12):
        plc = assets[f"10.1.0.{last}"]
        assert plc.mac is None and plc.vendor is None and plc.gateway_mac == router
    assert assets["10.0.0.5"].mac == hmi_mac and assets["10.0.0.5"].vendor == "TELEMECANIQUE ELECTRIQUE"
    # Nobody claimed the router's MAC in ARP: it is a MAC-only gateway asset.
    gateway = assets[None]
    assert gateway.mac == router and gateway.roles == {"gateway"} and gateway.vendor == "Siemens AG"
    # Then the router answers ARP for its own address: the stand-in merges into that IP's asset.
    changes = inventory.observe(arp("10.0.0.1", router))
    assets = by_ip(inventory)
    assert None not in assets
    assert assets["10.0.0.1"].mac == router and "gateway" in assets["10.0.0.1"].roles
    assert assets["10.0.0.1"].purdue_level is None
    assert [c.kind for c in changes] == [NEW_ASSET, ROLE_CHANGE]


def test_it_host_behind_the_firewall_is_not_labelled_with_the_routers_vendor() -> None:
    # The demo plant's topology: HMI and PLC on the OT subnet, an office PC on the IT subnet
    # reaching the PLC through the router (no ARP of the router in the capture).
    router, plc_mac, hmi_mac = "00:90:e8:0a:0b:01", "00:80:f4:0a:0b:11", "00:d0:c9:0a:0b:21"
    inventory = Inventory()
    inventory.observe(read_request(1.0, client="192.168.10.21", server="192.168.10.11"))
    inventory.observe_flow(
        flow("10.20.30.50", "192.168.10.11", src_mac=router, dst_mac=plc_mac, dst_port=3389, service="rdp")
    )
    inventory.observe_flow(flow("192.168.10.21", "192.168.10.11", src_mac=hmi_mac, dst_mac=plc_mac))
    assets = by_ip(inventory)
    office, plc = assets["10.20.30.50"], assets["192.168.10.11"]
    assert office.mac is None and office.vendor is None and office.gateway_mac == router
    assert plc.mac == plc_mac and plc.vendor == "TELEMECANIQUE ELECTRIQUE"
    assert assets["192.168.10.21"].mac == hmi_mac
    gateway = assets[None]
    assert (
        gateway.mac == router
        and gateway.vendor == "MOXA TECHNOLOGIES CORP., LTD"
        and gateway.roles == {"gateway"}
    )


def test_arp_claim_makes_a_single_remote_ip_a_gateway_case() -> None:
    router = "00:1b:1b:00:00:01"
    inventory = Inventory()
    inventory.observe(arp("10.0.0.1", router))
    # One remote PLC (another subnet) seen behind the MAC that 10.0.0.1 claimed.
    inventory.observe_flow(flow("10.0.0.5", "172.16.5.5", src_mac="00:80:f4:00:00:05", dst_mac=router))
    plc = inventory.asset_for_ip("172.16.5.5")
    gateway = inventory.asset_for_ip("10.0.0.1")
    assert plc is not None and gateway is not None
    assert plc.mac is None and plc.gateway_mac == router
    assert gateway.mac == router and "gateway" in gateway.roles


def test_a_dual_stack_host_is_not_a_gateway() -> None:
    # A Windows HMI: its IPv4 address (claimed in ARP), its IPv6 link-local address (DHCPv6,
    # mDNS), and a global and a temporary address in one prefix plus a ULA.  One device, no router.
    pc = "00:d0:c9:00:00:20"
    inventory = Inventory()
    inventory.observe(arp("10.10.10.20", pc))
    inventory.observe_flow(flow("10.10.10.20", "10.10.10.10", src_mac=pc, dst_mac="00:1b:1b:00:00:10"))
    for address, peer in (
        ("fe80::1086:f850:d463:6e49", "fe80::1"),
        ("2001:db8:0:1::20", "2001:db8:0:1::1"),
        ("2001:db8:0:1:9c2e:11ff:fe00:20", "2001:db8:0:1::1"),
        ("fd00:0:0:1::20", "fd00:0:0:1::1"),
        ("fe80::1086:f850:d463:6e49", "2001:db8:0:1::1"),  # link-local to global: still on-link
    ):
        inventory.observe_flow(flow(address, peer, src_mac=pc, dst_mac="00:1b:1b:00:00:01"))
    assets = by_ip(inventory)
    assert None not in assets  # no MAC-only gateway stand-in
    hmi = assets["10.10.10.20"]
    assert hmi.mac == pc and hmi.vendor == "ADVANTECH CO., LTD" and "gateway" not in hmi.roles
    assert all(asset.gateway_mac is None for asset in assets.values())
    # The same MAC carrying IPv4 addresses of two subnets is a router, as before.
    inventory.observe_flow(flow("10.10.11.20", "10.10.10.10", src_mac=pc, dst_mac="00:1b:1b:00:00:10"))
    assert "gateway" in by_ip(inventory)["10.10.10.20"].roles


def test_hmi_with_ipv6_link_local_keeps_its_mac_in_a_real_capture() -> None:
    # QUT S7 testbed: the HMI 10.10.10.20 also sends DHCPv6 from its fe80:: address.
    capture = "qut-s7/20161215191717.ChangeUpperThreshold_Flooding.hmi.pcap"
    inventory, _, _ = inventory_of(shared_pcaps() / capture)
    hmi = inventory.asset_for_ip("10.10.10.20")
    assert hmi is not None and hmi.mac == "08:00:27:2e:cf:f4" and "gateway" not in hmi.roles
    assert all(asset.ip is not None for asset in inventory.assets())


def test_public_address_behind_another_subnet_gets_no_mac_from_traffic() -> None:
    # icsnpp modbus_example: a local client (HP Inc. OUI) polls 3.15.227.20 through a NETGEAR router.
    inventory, _, _ = inventory_of(shared_pcaps() / "icsnpp-modbus" / "modbus_example.pcap")
    remote = inventory.asset_for_ip("3.15.227.20")
    local = inventory.asset_for_ip("192.168.1.6")
    assert remote is not None and local is not None
    assert remote.mac is None and remote.vendor is None
    assert local.mac == "04:0e:3c:1f:4b:c1" and local.vendor == "HP Inc"


def test_public_addresses_in_one_subnet_keep_their_macs() -> None:
    # A plant numbered with public addresses (WinCC and an S7-400 in 194.250.63.0/24).
    inventory, _, _ = inventory_of(shared_pcaps() / "iti" / "wincc_s400_production.pcapng")
    plc = inventory.asset_for_ip("194.250.63.170")
    assert plc is not None and plc.mac == "00:1b:1b:01:95:2f" and plc.vendor == "Siemens AG"


def test_arp_rebinding_after_the_old_mac_went_quiet_is_an_identity_change() -> None:
    inventory = Inventory()
    inventory.observe(arp("10.0.0.7", "00:1b:1b:00:00:07", ts=1.0))
    # The old MAC's last claim is more than arp_conflict_seconds (300) old: a replaced device.
    changes = inventory.observe(arp("10.0.0.7", "00:80:f4:00:00:07", ts=302.0))
    assert [(c.kind, c.field, c.before, c.after) for c in changes] == [
        (IDENTITY_CHANGE, "mac", "00:1b:1b:00:00:07", "00:80:f4:00:00:07")
    ]
    asset = inventory.asset_for_ip("10.0.0.7")
    assert asset is not None and asset.vendor == "TELEMECANIQUE ELECTRIQUE"


def test_a_second_live_arp_claimant_is_not_the_owner_nor_a_gateway() -> None:
    # ARP spoofing: the attacker claims the PLC's and the HMI's addresses while both still claim
    # their own.  The assets keep their MACs (no identity flip per poisoning round), and the
    # attacker's MAC, claiming three addresses, is not taken for a proxy-ARP router.
    plc, hmi, attacker = "00:80:f4:00:00:11", "00:d0:c9:00:00:21", "b8:27:eb:00:00:66"
    inventory = Inventory()
    inventory.observe(arp("10.0.0.11", plc, ts=1.0))
    inventory.observe(arp("10.0.0.21", hmi, ts=1.5))
    inventory.observe(arp("10.0.0.66", attacker, ts=2.0))
    changes = []
    for ts in (10.0, 12.0, 14.0):
        changes += inventory.observe(arp("10.0.0.11", attacker, ts=ts))
        changes += inventory.observe(arp("10.0.0.21", attacker, ts=ts))
    changes += inventory.observe(arp("10.0.0.11", plc, ts=15.0))
    assert [c for c in changes if c.kind != NEW_ASSET] == []
    owners = {a.ip: (a.mac, sorted(a.roles)) for a in inventory.assets()}
    assert owners == {
        "10.0.0.11": (plc, []),
        "10.0.0.21": (hmi, []),
        "10.0.0.66": (attacker, []),
    }
    # Once the true owner has been quiet past the window, a claim is a new owner again.
    changes = inventory.observe(arp("10.0.0.11", attacker, ts=15.0 + 301))
    assert [(c.field, c.after) for c in changes] == [("mac", attacker)]


def test_the_conflict_window_is_per_address_not_per_mac() -> None:
    # A new DHCP lease: the first station moves from .50 to .51 and keeps claiming .51; once its
    # last claim of .50 is past the window, the station now holding .50 is its owner.
    first, second = "00:1b:1b:00:00:50", "00:0e:8c:00:00:50"
    inventory = Inventory()
    inventory.observe(arp("10.0.0.50", first, ts=1.0))
    for ts in range(100, 700, 30):
        inventory.observe(arp("10.0.0.51", first, ts=float(ts)))
    assert inventory.observe(arp("10.0.0.50", second, ts=250.0)) == []  # within 300 s of .50's claim
    changes = inventory.observe(arp("10.0.0.50", second, ts=400.0))
    assert [(c.field, c.before, c.after) for c in changes] == [("mac", first, second)]


def test_oui_lookup_offline() -> None:
    assert vendor_of("00:0e:8c:11:22:33") == "Siemens AG"
    assert vendor_of("00:80:F4:00:00:02".lower()) == "TELEMECANIQUE ELECTRIQUE"
    assert vendor_of("02:00:00:00:00:01") == LOCALLY_ADMINISTERED
    assert vendor_of("01:00:5e:00:00:01") is None  # multicast
    assert vendor_of("00:00:00:00:00:00") is None
    assert vendor_of(None) is None
    assert not is_unicast_mac("ff:ff:ff:ff:ff:ff") and is_unicast_mac("00:1b:1b:00:00:01")


def test_unanswered_flows_and_broadcasts_make_no_asset() -> None:
    inventory = Inventory()
    inventory.observe_flow(flow("10.0.0.5", "10.0.0.77", src_mac=None, dst_mac=None, answered=False))
    inventory.observe_flow(
        flow("10.0.0.5", "255.255.255.255", src_mac=None, dst_mac=None, transport="udp", dst_port=67)
    )
    inventory.observe_flow(flow("10.0.0.5", "224.0.0.251", src_mac=None, dst_mac=None, transport="udp"))
    assert [asset.ip for asset in inventory.assets()] == ["10.0.0.5"]


def test_services_and_it_protocols_from_flow_records() -> None:
    inventory = Inventory()
    changes = inventory.observe_flow(
        flow(
            "10.2.0.9",
            "10.0.0.2",
            src_mac=None,
            dst_mac=None,
            dst_port=3389,
            service="rdp",
            app_protocol="rdp",
        )
    )
    server = inventory.asset_for_ip("10.0.0.2")
    assert server is not None
    assert server.services["tcp/3389"]["name"] == "rdp" and server.services["tcp/3389"]["identified"]
    assert "rdp" in server.to_dict()["it_protocols"]
    assert [c.kind for c in changes] == [NEW_ASSET, NEW_ASSET, NEW_SERVICE]
    # An IT-only host is guessed at level 4.
    client = inventory.asset_for_ip("10.2.0.9")
    assert client is not None and client.purdue_level == 4


def test_secure_ot_protocols_are_not_it() -> None:
    # Modbus/TCP Security (802) and DNP3 over TLS (19999) are the plant's own protocols, encrypted:
    # an asset speaking only them is no IT host (before, their names were unknown: "tcp/802").
    inventory = Inventory()
    for port in (802, 19999):
        inventory.observe_flow(
            flow(
                "10.0.0.21", "10.0.0.2", src_mac=None, dst_mac=None, dst_port=port, service=TCP_SERVICES[port]
            )
        )
    server = inventory.asset_for_ip("10.0.0.2")
    assert server is not None
    assert {service["name"] for service in server.services.values()} == {"modbus-tls", "dnp3-tls"}
    assert server.to_dict()["it_protocols"] == []


def test_ports_a_scanner_only_probed_are_not_protocols_it_speaks() -> None:
    def knock(port: int, name: str, transport: str = "tcp", **changes: Any) -> FlowRecord:
        record = flow(
            "10.0.0.66",
            "10.0.0.2",
            src_mac=None,
            dst_mac=None,
            dst_port=port,
            service=name,
            transport=transport,
            answered=False,
        )
        return dataclasses.replace(record, **changes)

    inventory = Inventory()
    refused = [
        knock(
            port,
            name,
            packets_to_client=1,
            payload_bytes_to_server=0,
            tcp_flags_to_client=("RST", "ACK"),
            state="rejected",
        )
        for port, name in ((22, "ssh"), (80, "http"), (443, "https"), (3389, "rdp"))
    ]
    probes = [knock(port, name, "udp", packets_to_server=2) for port, name in ((161, "snmp"), (123, "ntp"))]
    for record in (*refused, *probes):
        inventory.observe_flow(record)
    scanner = inventory.asset_for_ip("10.0.0.66")
    assert scanner is not None and scanner.protocols == set()
    # Spoken: an accepted connection, an answered datagram, a one-way stream (syslog to a collector).
    spoken = [
        flow("10.0.0.66", "10.0.0.2", src_mac=None, dst_mac=None, dst_port=22, service="ssh"),
        flow(
            "10.0.0.66", "10.0.0.3", src_mac=None, dst_mac=None, dst_port=53, service="dns", transport="udp"
        ),
        dataclasses.replace(
            flow(
                "10.0.0.66",
                "10.0.0.4",
                src_mac=None,
                dst_mac=None,
                dst_port=514,
                service="syslog",
                transport="udp",
                answered=False,
            ),
            packets_to_server=40,
        ),
    ]
    for record in spoken:
        inventory.observe_flow(record)
    assert scanner.protocols == {"ssh", "dns", "syslog"}


# -- history, persistence, caps -------------------------------------------------------------------------


def test_firmware_change_is_kept_as_history() -> None:
    inventory = Inventory()
    assert not [
        c for c in inventory.observe(device_id_response("V2.1", ts=10.0)) if c.kind == IDENTITY_CHANGE
    ]
    changes = inventory.observe(device_id_response("V3.0", ts=20.0))
    change = next(c for c in changes if c.kind == IDENTITY_CHANGE)
    server = inventory.asset_for_ip("10.0.0.2")
    assert server is not None
    assert (change.asset_id, change.field, change.before, change.after, change.ts) == (
        server.asset_id,
        "revision",
        "V2.1",
        "V3.0",
        20.0,
    )
    assert server.history == [
        {"ts": 20.0, "frame": 20, "field": "revision", "before": "V2.1", "after": "V3.0"}
    ]
    # Another unit behind the same IP (a gateway) with another revision is not a change of this device.
    other = inventory.observe(device_id_response("V9.9", ts=30.0, unit=5))
    assert not [c for c in other if c.kind == IDENTITY_CHANGE]
    assert server.units[5]["revision"] == "V9.9" and server.identity["revision"] == "V3.0"


def test_restore_round_trip_continues_history() -> None:
    inventory = Inventory()
    inventory.observe(arp("10.0.0.2", "00:80:f4:00:00:02"))
    inventory.observe(device_id_response("V2.1", ts=10.0))
    saved = [asset.to_dict() for asset in inventory.assets()]
    restored = Inventory()
    restored.restore(saved)
    assert [asset.to_dict() for asset in restored.assets()] == saved
    # Known asset: no new_asset; a new firmware is a change against the restored identity.
    changes = restored.observe(device_id_response("V3.0", ts=50.0))
    assert [(c.kind, c.before, c.after) for c in changes] == [(IDENTITY_CHANGE, "V2.1", "V3.0")]


def test_asset_cap_drops_new_devices_and_says_so() -> None:
    inventory = Inventory(InventoryConfig(max_assets=3))
    for last in range(1, 10):
        inventory.observe(arp(f"10.0.0.{last}", f"00:80:f4:00:00:{last:02x}"))
    assert len(inventory) == 3 and inventory.limit_reached and inventory.dropped_assets == 6


def test_asset_ids_are_deterministic() -> None:
    inventory, _, _ = inventory_of(PCAPS / "dnp3" / "crafted_objects.pcap")
    asset = inventory.asset_for_ip("10.0.0.2")
    assert asset is not None and asset.asset_id == asset_id_for("ip", "10.0.0.2")
    assert len(asset.asset_id) == 16


def test_anomalies_and_unknown_records_change_nothing() -> None:
    from ics_monitor.events import AnomalyEvent

    inventory = Inventory()
    anomaly = AnomalyEvent(
        ts=1.0, frame=1, code="tcp.truncated", severity="low", detail="x", src_ip="10.0.0.1"
    )
    assert inventory.observe(anomaly) == [] and len(inventory) == 0


def test_link_only_dnp3_frames_give_roles_but_no_addresses() -> None:
    common: dict[str, Any] = {
        "flow_id": "d1",
        "transport": "tcp",
        "link": {"function": "LINK_STATUS"},
        "frames": 1,
        "length": None,
        "function_code": None,
        "function": None,
        "sequence": None,
        "fir": None,
        "fin": None,
        "con": None,
        "uns": None,
        "iin": None,
        "iin_names": None,
        "crc_ok": True,
        "objects": (),
    }
    inventory = Inventory()
    inventory.observe(
        Dnp3Event(
            ts=1.0,
            frame=1,
            src_ip="10.0.0.9",
            src_port=20000,
            dst_ip="10.0.0.1",
            dst_port=40000,
            direction="response",
            src=77,
            dst=1,
            **common,
        )
    )
    outstation = inventory.asset_for_ip("10.0.0.9")
    assert outstation is not None and outstation.dnp3_outstation == set()
    assert "dnp3_outstation" in outstation.roles


def test_umas_read_id_names_the_schneider_plcs_model() -> None:
    # Frame 6 answers READ_ID (UMAS 0x02) with status 0xFE; its data holds, at offset 22, the length
    # byte 0x0e and "140 CPU 311 10" (a Modicon Quantum CPU 311-10), where Nmap's modicon-info
    # reads the CPU module (the tcp.payload bytes, read by eye in tshark -x).
    inventory, _, _ = inventory_of(shared_pcaps() / "iti" / "modicon_test.pcap")
    plc = inventory.asset_for_ip("192.168.63.253")
    assert plc is not None and plc.identity.get("model_name") == "140 CPU 311 10"


def test_umas_model_only_from_an_ok_read_id_with_printable_text() -> None:
    from ics_monitor.inventory.identity import modbus_identity, umas_model
    from tests.unit.detect.records import modbus

    model = b"140 CPU 311 10"
    good = "00" * 22 + f"{len(model):02x}" + model.hex() + "0101"

    def answer(data: Any, status: int = 0xFE, sub_function: int = 2) -> Any:
        record = modbus(90, request=False, sub_function=sub_function)
        return dataclasses.replace(record, status=status, data=data)

    assert umas_model(answer(good)) == "140 CPU 311 10"
    assert modbus_identity(answer(good)) == {"model_name": "140 CPU 311 10"}
    for bad in (
        answer(good, status=0xFD),  # refused
        answer(good, sub_function=3),  # READ_PROJECT_INFO
        answer(good[: 2 * 30]),  # the string cut short
        answer("00" * 22),  # no length byte
        answer("00" * 23),  # an empty string
        answer("00" * 22 + "03" + "41ff42"),  # not text
        answer("zz"),  # not hex
        answer(None),
    ):
        assert umas_model(bad) is None and modbus_identity(bad) is None
