"""Detection over other people's captures (../shared/pcaps, see its CATALOG.md).

Attack captures: each must raise the alert its attack calls for, checked down to the fields that
prove it is the right one (client, server, function).  Captures of unauthorized commands that only a
baseline can catch are enforced against a baseline learned from normal traffic of the same testbed.

Normal captures: learn on the first half of capture time, enforce on the second half, in one run
as ``replay --learn-for`` does (always-on detectors run throughout); every alert is a false positive
and the expected count is zero.  Skipped only where ../shared is absent.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jsonschema
import pytest

from ics_monitor.alerts import SCHEMA_PATH, alert_to_dict
from ics_monitor.inventory.baseline import Baseline
from tests.conftest import shared_pcaps
from tests.evaluation.support import Run, capture_span, run_captures

pytestmark = pytest.mark.shared


def _shared(name: str) -> Path:
    path = shared_pcaps() / name
    assert path.is_file(), path
    return path


@cache
def _run(name: str) -> Run:
    return run_captures([_shared(name)])


def _fired(run: Run, rule_id: str, **fields: object) -> list[object]:
    """Final alerts of ``rule_id`` whose attributes or evidence have ``fields``."""
    found = []
    for alert in run.of_rule(rule_id):
        values = {**alert.evidence, "src_ip": alert.src_ip, "dst_ip": alert.dst_ip}
        if all(values.get(key) == value for key, value in fields.items()):
            found.append(alert)
    return found


_PLUS_STOP = {"object_id": 52, "attribute_id": 2167, "requested_state": 1, "requested_state_name": "STOP"}
_PLUS_RUN = {"object_id": 52, "attribute_id": 2167, "requested_state": 3, "requested_state_name": "RUN"}

# (capture, rule that must fire, fields the alert must show)
ALWAYS_ON = [
    ("dnp3-ics-lab/DISABLE_UNSOLICITED.pcap", "ICS-1206", {"function": "DISABLE_UNSOLICITED"}),
    ("dnp3-ics-lab/DNP3_ENUMERATE.pcap", "ICS-3005", {}),
    ("dnp3-ics-lab/MITM_DOS.pcap", "ICS-4003", {}),
    ("dnp3-ics-lab/REPLAY.pcap", "ICS-4004", {"function": "READ"}),
    ("dnp3-ics-lab/local_test_cold_restart.pcap", "ICS-1201", {"function": "COLD_RESTART"}),
    ("dnp3-ics-lab/local_test_warm_restart.pcap", "ICS-1202", {"function": "WARM_RESTART"}),
    ("dnp3-ics-lab/local_test_stop_app.pcap", "ICS-1203", {"function": "STOP_APPL"}),
    ("dnp3-ics-lab/local_test_init_data.pcap", "ICS-1205", {"function": "INITIALIZE_DATA"}),
    ("dnp3-ics-lab/local_test_disable_unsolicited.pcap", "ICS-1206", {}),
    ("quickdraw/modbus_test_data_part1.pcap", "ICS-1301", {"sub_function": 1}),
    ("quickdraw/modbus_test_data_part1.pcap", "ICS-1302", {"sub_function": 4}),
    ("quickdraw/modbus_test_data_part1.pcap", "ICS-1303", {"sub_function": 10}),
    ("quickdraw/modbus_test_data_part1.pcap", "ICS-3003", {"distinct_devices": 2}),
    ("quickdraw/dnp3_test_data_part1.pcap", "ICS-1201", {"function": "COLD_RESTART"}),
    ("quickdraw/dnp3_test_data_part1.pcap", "ICS-1202", {"function": "WARM_RESTART"}),
    ("quickdraw/dnp3_test_data_part1.pcap", "ICS-1203", {"function": "STOP_APPL"}),
    ("quickdraw/dnp3_test_data_part1.pcap", "ICS-1206", {"function": "DISABLE_UNSOLICITED"}),
    ("quickdraw/dnp3_test_data_part1.pcap", "ICS-1210", {"link_dst": 0xFFFF}),
    ("quickdraw/s7_test.pcap", "ICS-3004", {"szl_ids": ["0x0011", "0x001c"]}),
    (
        "qut-s7/20161215191717.ChangeUpperThreshold_Flooding.attacker.pcap",
        "ICS-4002",
        {"src_ip": "10.10.10.66"},
    ),
    ("iti/snap7_s300_stop.pcapng", "ICS-1001", {"function_code": 0x29}),
    ("icsnpp-s7comm/snap7.pcap", "ICS-1001", {"function_code": 0x29}),
    ("icsnpp-s7comm/snap7.pcap", "ICS-1002", {"pi_service": "P_PROGRAM"}),
    ("icsnpp-s7comm/snap7.pcap", "ICS-1004", {"function_code": 0x1D}),
    ("iti/s7comm_downloading_block_db1.pcap", "ICS-1003", {"function_code": 0x1A}),
    ("iti/s7comm_downloading_block_db1.pcap", "ICS-1010", {"pi_service": "_INSE"}),
    ("iti/step7_s300_download.pcapng", "ICS-1003", {"function_code": 0x1A}),
    ("stacks/s7comm_download_snap7c_client_py_server.pcap", "ICS-1003", {}),
    ("iti/step7_s300_AuthPassword.pcapng", "ICS-1008", {"userdata_group": 5}),
    ("iti/cold_restart_and_response.pcap", "ICS-1201", {}),
    ("iti/file_delete.pcap", "ICS-1207", {"function": "DELETE_FILE"}),
    ("iti/file_read.pcap", "ICS-1208", {"function": "OPEN_FILE"}),
    # Unity Pro reads the program out of a Modicon (UMAS "download": the PLC answers the blocks).
    ("iti/modicon_test.pcap", "ICS-1307", {"sub_function_name": "INITIALIZE_DOWNLOAD"}),
    ("iti/DNP3-Malformed.pcap", "ICS-2001", {}),
    ("s7plus-anomaly/s71200_Ofline_SWCompileDownload.pcapng", "ICS-1101", {}),
    ("s7plus-anomaly/s71200_GoOfline_HWCompileDownload.pcapng", "ICS-1101", {}),
    # TIA Portal stops the CPU before a download and starts it after: SetVariable of
    # CPUexecUnit.operatingStateReq (object 52, attribute 2167) = 1, then = 3.
    ("s7plus-anomaly/s71200_Ofline_SWCompileDownload.pcapng", "ICS-1102", _PLUS_STOP),
    ("s7plus-anomaly/s71200_Ofline_SWCompileDownload.pcapng", "ICS-1103", _PLUS_RUN),
    ("s7plus-anomaly/s71200_GoOfline_HWCompileDownload.pcapng", "ICS-1102", _PLUS_STOP),
    ("s7plus-anomaly/s71200_GoOfline_HWCompileDownload.pcapng", "ICS-1103", _PLUS_RUN),
    ("s7plus-anomaly/s71200_OnlineStopStart.pcapng", "ICS-1102", _PLUS_STOP),
    ("s7plus-anomaly/s71200_OnlineStopStart.pcapng", "ICS-1103", _PLUS_RUN),
    ("s7plus-anomaly/paket_stop.pcapng", "ICS-1102", _PLUS_STOP),
    ("s7plus-anomaly/paket_start.pcapng", "ICS-1103", _PLUS_RUN),
    # TIA Portal uploads: GetVarSubStreamed of program block objects (ids from 0x80000000).
    ("s7plus-anomaly/yeni_yeni_onlineyapilmis_upload.pcapng", "ICS-1104", {"src_ip": "192.168.55.5"}),
    (
        "iti/S7-1200-Uploading-OB1-TIAV12.pcap",
        "ICS-1104",
        {"block_object": "0x89F90000", "attribute_id": 7735},
    ),
    # Internet scanners probing an exposed Modbus device on 502 with RDP, TLS and HTTP openings,
    # DCE/RPC, ONC RPC and a scanner's marker line (Zeek's test capture).
    ("zeek/modbus-and-non-modbus-p502.pcap", "ICS-3007", {"src_ip": "62.122.184.123", "app_protocol": "rdp"}),
    ("zeek/modbus-and-non-modbus-p502.pcap", "ICS-3007", {"src_ip": "66.175.213.4", "app_protocol": "tls"}),
    ("zeek/modbus-and-non-modbus-p502.pcap", "ICS-3007", {"src_ip": "198.74.56.135", "app_protocol": "http"}),
    ("zeek/modbus-and-non-modbus-p502.pcap", "ICS-3008", {"src_ip": "87.236.176.106", "answered": True}),
    (
        "zeek/modbus-and-non-modbus-p502.pcap",
        "ICS-3008",
        {"src_ip": "159.203.208.13", "dst_ip": "192.168.10.113"},
    ),
]


@pytest.mark.parametrize(
    ("capture", "rule_id", "fields"), ALWAYS_ON, ids=lambda v: v if isinstance(v, str) else ""
)
def test_attack_raises_its_alert(capture: str, rule_id: str, fields: dict[str, object]) -> None:
    run = _run(capture)
    assert _fired(run, rule_id, **fields), f"{rule_id} {fields} not in {sorted(run.rule_ids())}"


def test_umas_program_read_out_is_not_a_download() -> None:
    # UMAS "download" (0x33-0x35) copies the program out of the PLC: ICS-1307, never ICS-1306.
    run = _run("iti/modicon_test.pcap")
    assert "ICS-1307" in run.rule_ids() and "ICS-1306" not in run.rule_ids()


# Captures whose content is routine for the protocol: nothing always-on may fire.  SELECT/OPERATE of
# a CROB is how a master controls an outstation; going online and an HMI's reads and writes of
# S7comm-plus variables change nothing in the CPU's mode or program.  (An S7comm-plus upload looks
# like going online to metadata: a known gap, not listed here.)  A DNP3 master's start-up on a new
# connection disables unsolicited reporting, polls, then enables it again within a second: no
# ICS-1206 (the three DNP3 sessions below; DISABLE_UNSOLICITED above, never re-enabled, fires).
QUIET = [
    "iti/full_exchange.pcap",
    "suricata-verify/dnp3/dnp3-eve/input.pcap",
    "stacks/dnp3_interop_dnp3py_master_opendnp3_outstation.pcap",
    "quickdraw/dnp3_test_data_part2.pcap",
    "iti/DNP3-SelectOperate.pcap",
    "iti/select_operate_and_responses.pcap",
    "s7plus-anomaly/S71200_StartupGoOnline.pcapng",
    "iti/s7-1200-hmi.pcap",
]


@pytest.mark.parametrize("capture", QUIET)
def test_routine_control_is_quiet(capture: str) -> None:
    run = _run(capture)
    # The S7-1200 go-online capture is full of TCP keep-alives whose garbage byte differs from
    # the byte it repeats: not data, so no overlap mismatch (ICS-2004) either.
    assert run.rule_ids() == set()


# -- baseline-driven attacks --------------------------------------------------------------------------


@cache
def _baseline(*captures: str) -> Baseline:
    run = run_captures([_shared(c) for c in captures], learn=True, detect=False)
    assert run.baseline is not None
    return run.baseline


QUT_HMI = (
    "qut-s7/20161215195722.ReactorOn_Flooding.hmi.pcap",
    "qut-s7/20161215191717.ChangeUpperThreshold_Flooding.hmi.pcap",
    "qut-s7/20161215185758.ConveyorBeltGateChangeDirection_Flooding.hmi.pcap",
)
QUT_ATTACKS = [
    "qut-s7/20161215172609.ConveyorBeltOff.attacker.pcap",
    "qut-s7/20161215172609.ConveyorBeltOff.master.pcap",
    "qut-s7/20161215180642.ChangeUpperThreshold.attacker.pcap",
    "qut-s7/20161215180642.ChangeUpperThreshold.master.pcap",
    "qut-s7/20161215235354.GlobalReset.attacker.pcap",
    "qut-s7/20161215235354.GlobalReset.master.pcap",
    "qut-s7/20161216005557.EmergencyStop.attacker.pcap",
    "qut-s7/20161216005557.EmergencyStop.master.pcap",
]


@pytest.mark.parametrize("capture", QUT_ATTACKS)
def test_qut_unauthorized_s7_writes_against_the_hmi_baseline(capture: str) -> None:
    """The HMI (10.10.10.20) polls the PLC; the attacker 10.10.10.66 writes flags it never wrote."""
    baseline = _baseline(*QUT_HMI)
    assert baseline.knows_pair("10.10.10.20", "10.10.10.10")
    run = run_captures([_shared(capture)], baseline=baseline)
    assert _fired(run, "ICS-5001", ip="10.10.10.66")
    assert _fired(run, "ICS-5002", client="10.10.10.66", server="10.10.10.10", protocol="s7comm")
    # Each attack's write judged by what the HMI wrote or read there, as its type: the threshold's
    # four bytes as the REAL the HMI writes (40.0; the attack writes 35.0), the whole flag bytes
    # bit by bit against the bits the HMI reads (each set bit was only ever read as 0).
    expected = {
        "ConveyorBeltOff": ("FLAGS:102.1:BIT", 1, "1 BYTE 2a at FLAGS:102"),
        "ChangeUpperThreshold": ("FLAGS:8:REAL", 35.0, "4 BYTE 420c0000 at FLAGS:8"),
        "GlobalReset": ("FLAGS:103.1:BIT", 1, "1 BYTE 02 at FLAGS:103"),
        "EmergencyStop": ("FLAGS:103.3:BIT", 1, "1 BYTE 08 at FLAGS:103"),
    }
    [(point, written, wire)] = [value for name, value in expected.items() if name in capture]
    [value] = _fired(run, "ICS-5006", src_ip="10.10.10.66")
    assert (value.evidence["point"], value.evidence["value"]) == (point, written)
    # Each attack writes bytes: the evidence keeps what the wire carried.
    assert value.evidence["written_as"] == wire
    # The HMI never writes flag byte 103 (it reads its bits): a new write target too.
    assert bool(_fired(run, "ICS-5005", src_ip="10.10.10.66")) == ("FLAGS:103" in point)
    assert not _fired(run, "ICS-5002", client="10.10.10.20")
    # Only the HMI wrote to the PLC while learning: the attacker's write, whatever its value.
    [writer] = _fired(run, "ICS-5010", src_ip="10.10.10.66")
    assert writer.evidence["writers_learned"] == ["10.10.10.20"]  # type: ignore[attr-defined]
    assert not _fired(run, "ICS-5010", src_ip="10.10.10.20")


def test_lemay_fake_command_against_the_testbed_baseline() -> None:
    """An RTU (192.168.1.101) sends a Modbus write to another RTU: a conversation never seen."""
    baseline = _baseline("lemay-modbus/moving_two_files_modbus_6RTU.pcap")
    run = run_captures(
        [_shared("lemay-modbus/send_a_fake_command_modbus_6RTU_with_operate.pcap")], baseline=baseline
    )
    [injected] = _fired(run, "ICS-5002", client="192.168.1.101", server="192.168.1.102", protocol="modbus")
    assert injected.frames[0] == 4785
    # An RTU writing to another: no host but the master wrote to it while learning.
    assert _fired(run, "ICS-5010", src_ip="192.168.1.101", dst_ip="192.168.1.102")
    # The master's own write-coil commands ("with operate") were never seen while learning either.
    assert _fired(run, "ICS-5004", function_key="5", src_ip="192.168.1.100")


def test_lemay_lateral_file_moves_after_learning() -> None:
    """Learn the first 10 s; the RTU-to-RTU file transfers that follow are new conversations.

    Their TLS sessions begin at +10.9 s and +33 s and last to the end: a session that began while
    learning is learned when its record comes (a flow's record comes as it ends), as the NTP and
    DNS exchanges open at the switch are.
    """
    capture = _shared("lemay-modbus/moving_two_files_modbus_6RTU.pcap")
    run = run_captures([capture], learn_for=10.0)
    lateral = _fired(run, "ICS-5002", client="192.168.1.101")
    assert {alert.evidence["server"] for alert in lateral} == {"192.168.1.103", "192.168.1.105"}  # type: ignore[attr-defined]


# -- normal captures: false positives ---------------------------------------------------------------------

NORMAL = [
    "dnp3-ics-lab/NORMAL.pcap",
    "iti/modbus_test.pcap",
    "iti/modbus_test_2.pcap",
    "iti/wincc_s400_production.pcapng",
    # An S7-300 counter (COUNTER:0) read 17-18 in the first half and 20 in the second: counters
    # and timers count, their values are not learned.
    "iti/wincc_s300_setup-alarm-read-write.pcapng",
    "qut-s7/20161215195722.ReactorOn_Flooding.hmi.pcap",
]


# Alerts on the second half that are true to what the capture holds, each explained.
EXPLAINED = {
    # The master polls unit 2 for the first minute and unit 1 from 60 s on (input registers 0-7
    # of each): a unit it never read while learning.  ICS-5011 (low) says so, once.
    "iti/modbus_test.pcap": [
        ("ICS-5011", "192.168.0.144>192.168.0.20:modbus:unit 1 input_registers"),
    ],
}


@pytest.mark.parametrize("capture", NORMAL)
def test_normal_capture_has_no_false_positive(capture: str) -> None:
    path = _shared(capture)
    first, last = capture_span([path])
    run = run_captures([path], learn_for=(last - first) / 2)
    assert run.baseline is not None and run.baseline.conversations
    false_positives = [(a.rule_id, a.key) for a in run.final_alerts]
    assert false_positives == EXPLAINED.get(capture, [])


def test_every_alert_validates_against_the_schema() -> None:
    import json

    schema = json.loads(SCHEMA_PATH.read_text())
    checked = 0
    for capture in (
        "icsnpp-s7comm/snap7.pcap",
        "quickdraw/modbus_test_data_part1.pcap",
        "iti/DNP3-Malformed.pcap",
    ):
        for alert in _run(capture).alerts:
            jsonschema.validate(alert_to_dict(alert), schema)
            checked += 1
    assert checked >= 15
