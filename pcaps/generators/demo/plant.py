"""The demo plant: hosts, addresses, identities and the time table every process follows.

A water pumping station: a Schneider-type PLC (Modbus/TCP) runs the pumps, a Siemens S7-300
(S7comm) runs the dosing, an SEL-type RTU (DNP3) reports the remote reservoir.  An HMI polls all
three, an engineering station watches the S7 CPU, an office PC sits on the IT network behind a
firewall/router.  Then an attacker's Raspberry Pi appears on the OT switch.

Every process of the demo imports this module (it uses the standard library only, so it loads
under each stack's own virtual environment) and schedules its actions on the same grid:
tick ``k`` happens at ``epoch + k`` seconds (the epoch is chosen by ``generate.py`` and passed
on the command line), and each kind of traffic has its own fixed offset inside the second.  So
the capture's content is the same on every run: only timestamps, TCP sequence numbers and
timestamps differ.  This module must not import a protocol stack or do any I/O.

Time table (offsets in seconds inside each tick; ticks 0..NORMAL_TICKS-1 are the normal phase):

    +0.00  hmi  -> plc1  Modbus FC3 holding 0-11, then FC1 coils 0-7      every tick
    +0.20  hmi  -> rtu1  DNP3 class 1/2/3 event poll    every 5 ticks (integrity poll every 30)
    +0.40  hmi  -> plc1  Modbus FC6 pump speed setpoint every 30 ticks (from tick 15)
    +0.50  eng  -> plc2  S7 read DB1.DBB0 (24 bytes)    every tick
    +0.55  eng  -> plc2  S7 SZL 0x0424 (CPU state)      every 5 ticks
    +0.60  eng  -> plc2  S7 SZL 0x0011 + 0x001C         every 60 ticks (from tick 30)
    +0.70  rtu1 -> hmi   DNP3 unsolicited events        every 2 ticks (measurements change)
    +0.80  attacker steps (attack phase only), see ATTACK_STEPS
"""

from __future__ import annotations

import time
from dataclasses import dataclass

NORMAL_TICKS = 150  # 2.5 minutes of normal operation
ATTACK_TICKS = 75  # attack phase, the normal polling goes on
LEAD_IN = 4.0  # seconds between the clients' start and tick 0 (connections are made in it)
# The two files are cut at epoch + NORMAL_TICKS - SPLIT_BEFORE: in the quiet end of the last
# normal second (nothing is scheduled after +0.80, and every exchange takes milliseconds).
SPLIT_BEFORE = 0.05

OT_SUBNET = "192.168.10.0/24"
IT_SUBNET = "10.20.30.0/24"


@dataclass(frozen=True)
class Machine:
    """One host: name, role text, MAC (a real vendor OUI), addresses, its client source port."""

    name: str
    role: str
    vendor: str
    mac: str
    ip: str
    source_port: int = 0  # the only ephemeral port its namespace may use (0: not a client)
    it_side: bool = False


PLC1 = Machine(
    "plc1",
    "Modbus/TCP PLC, pumps (pymodbus server, unit 1)",
    "Schneider Electric",
    "00:80:f4:0a:0b:11",
    "192.168.10.11",
)
PLC2 = Machine(
    "plc2", "S7-300 PLC, dosing (python-snap7 3.3 server)", "Siemens", "00:1b:1b:0a:0b:12", "192.168.10.12"
)
RTU1 = Machine(
    "rtu1",
    "DNP3 outstation 10, reservoir (yadnp3)",
    "Schweitzer Engineering",
    "00:30:a7:0a:0b:13",
    "192.168.10.13",
)
HMI = Machine(
    "hmi",
    "HMI/SCADA: Modbus client of plc1, DNP3 master 1 of rtu1",
    "Advantech",
    "00:d0:c9:0a:0b:21",
    "192.168.10.21",
    50021,
)
ENG = Machine(
    "eng",
    "engineering station: S7 client of plc2 (python-snap7 2.1)",
    "Dell",
    "54:bf:64:0a:0b:22",
    "192.168.10.22",
    50022,
)
ATTACKER = Machine(
    "attacker",
    "attacker, new in the attack phase",
    "Raspberry Pi",
    "b8:27:eb:0a:0b:66",
    "192.168.10.66",
    50066,
)
ROUTER_OT = Machine("router", "IT/OT router-firewall, OT leg", "Moxa", "00:90:e8:0a:0b:01", "192.168.10.1")
ROUTER_IT = Machine(
    "router", "IT/OT router-firewall, IT leg", "Moxa", "00:90:e8:0a:0c:01", "10.20.30.1", it_side=True
)
OFFICE = Machine(
    "office",
    "office PC on the IT network (RDP client)",
    "Hewlett Packard",
    "ec:b1:d7:0a:0c:50",
    "10.20.30.50",
    50050,
    it_side=True,
)
MACHINES = (PLC1, PLC2, RTU1, HMI, ENG, ATTACKER, ROUTER_OT, ROUTER_IT, OFFICE)

MODBUS_PORT = 502
S7_PORT = 102
DNP3_PORT = 20000
RDP_PORT = 3389

# ---- Modbus (plc1) -------------------------------------------------------------------------
MODBUS_UNIT = 1
# The HMI runs two client stacks at once; opendnp3 bind()s its socket, which takes the one port
# of the namespace's range for itself, so the Modbus client binds a fixed port of its own.
HMI_MODBUS_SOURCE_PORT = 50121
POLL_ADDRESS, POLL_COUNT = 0, 12  # holding registers 0-11 (see plc_modbus.py for the map)
COIL_ADDRESS, COIL_COUNT = 0, 8
SETPOINT_REGISTER = 10  # pump speed setpoint, rpm
SETPOINT_EVERY, SETPOINT_FIRST = 30, 15
SETPOINTS = (1450, 1420, 1480, 1400, 1460, 1440, 1470, 1410)  # what the operator types, in turn
MODBUS_IDENTITY = {
    "VendorName": "Schneider Electric",
    "ProductCode": "BMX P34 2020",
    "MajorMinorRevision": "v3.10",
    "VendorUrl": "http://www.schneider-electric.com",
    "ProductName": "Modicon M340",
    "ModelName": "BMX P34 2020",
    "UserApplicationName": "PUMPSTATION_1",
}

# ---- DNP3 (rtu1) ---------------------------------------------------------------------------
DNP3_MASTER_ADDRESS = 1
DNP3_OUTSTATION_ADDRESS = 10
DNP3_EVENT_POLL_EVERY = 5
DNP3_INTEGRITY_EVERY, DNP3_INTEGRITY_FIRST = 30, 10
RTU_UPDATE_EVERY = 2
DNP3_HMI_RETRY_SECONDS = 5  # the HMI's reconnect delay after the attacker took over the channel

# ---- S7 (plc2) -----------------------------------------------------------------------------
S7_RACK, S7_SLOT = 0, 2
S7_DB, S7_DB_BYTES = 1, 24
S7_STATE_EVERY = 5
S7_IDENTITY_EVERY, S7_IDENTITY_FIRST = 60, 30

OFFSETS = {
    "modbus_poll": 0.00,
    "dnp3_poll": 0.20,
    "modbus_setpoint": 0.40,
    "s7_read": 0.50,
    "s7_state": 0.55,
    "s7_identity": 0.60,
    "rtu_update": 0.70,
    "attack": 0.80,
}

# ---- the attack (ticks counted from the start of the attack phase) --------------------------
ATTACK_UNIT_SCAN = range(31)  # Modbus unit ids 0..30, FC3 holding 0 x1 each
ATTACK_SCAN_GAP = 0.02  # seconds between two scan requests
ATTACK_SETPOINT = 9999  # rpm: far outside the 1400..1480 the operator uses
ATTACK_OB_NUMBER = 1

ATTACK_STEPS = (
    # (tick, tool, step, text for MANIFEST/README)
    (5, "modbus", "unit_scan", "Modbus unit-id scan of plc1: FC3 holding 0 x1 to unit ids 0-30"),
    (9, "modbus", "device_id", "Modbus FC43/14 read device identification (basic, regular) of plc1 unit 1"),
    (
        16,
        "modbus",
        "write",
        f"unauthorized Modbus FC6 write holding {SETPOINT_REGISTER} = {ATTACK_SETPOINT} rpm",
    ),
    (20, "s7", "szl", "S7 SZL 0x0011 and 0x001C reads of plc2 from the new host"),
    (22, "s7", "stop", "S7 PLC STOP (function 0x29) to plc2"),
    (
        26,
        "s7",
        "download",
        f"S7 program download of OB{ATTACK_OB_NUMBER}: request download, download block, download ended, PI _INSE",
    ),
    (31, "s7", "hot_start", "S7 PI P_PROGRAM hot start of plc2"),
    (
        41,
        "dnp3",
        "connect",
        "rogue DNP3 master (address 1) to rtu1: takes over the channel, startup integrity poll and enable unsolicited",
    ),
    (42, "dnp3", "cold_restart", "DNP3 cold restart (FC13) to rtu1"),
    (43, "dnp3", "disable_unsolicited", "DNP3 disable unsolicited (FC21) classes 1-3 to rtu1"),
    (
        55,
        "rdp",
        "rdp",
        "RDP from the office PC (IT) to plc1 TCP 3389: X.224 connection request with cookie and RDP negotiation request, confirm with negotiation response",
    ),
)


def at(epoch: float, tick: int, offset: str) -> float:
    """Absolute time of ``tick`` at the named offset."""
    return epoch + tick + OFFSETS[offset]


def sleep_until(moment: float) -> None:
    """Sleep until the absolute time ``moment`` (no-op when it has passed)."""
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)


def ticks(total: int, every: int = 1, first: int = 0) -> range:
    """The ticks below ``total`` that carry an action repeated ``every`` ticks from ``first``."""
    return range(first, total, every)
