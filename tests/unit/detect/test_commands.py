"""Always-on command detectors (S7comm, S7comm-plus, DNP3, Modbus) and anomalies."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ics_monitor.detect.engine import DetectionEngine
from tests.unit.detect.helpers import RULES, rule_ids, run
from tests.unit.detect.records import anomaly, dnp3, modbus, s7, s7plus, userdata

JOB, USERDATA = 1, 7


@pytest.mark.parametrize(
    ("record", "rule_id"),
    [
        (s7(JOB, function_code=0x29), "ICS-1001"),
        (s7(JOB, function_code=0x28, pi_service="P_PROGRAM"), "ICS-1002"),
        (s7(JOB, function_code=0x1A), "ICS-1003"),
        (s7(JOB, function_code=0x1D), "ICS-1004"),
        (s7(JOB, function_code=0x28, pi_service="_DELE"), "ICS-1005"),
        (s7(JOB, function_code=0x28, pi_service="_GARB"), "ICS-1006"),
        (s7(JOB, function_code=0x28, pi_service="_MODU"), "ICS-1007"),
        (s7(USERDATA, userdata=userdata(5, 1)), "ICS-1008"),
        (s7(USERDATA, userdata=userdata(7, 2)), "ICS-1009"),
        (s7(JOB, function_code=0x28, pi_service="_INSE"), "ICS-1010"),
        (s7(USERDATA, userdata=userdata(1, 0x0C)), "ICS-1011"),
        (s7(USERDATA, userdata=userdata(1, 0x09)), "ICS-1012"),
        # A PI service whose name the snap length cut, and one no table names.
        (s7(JOB, function_code=0x28, pi_service=None), "ICS-1013"),
        (s7(JOB, function_code=0x28, pi_service="_XYZ"), "ICS-1013"),
        (dnp3(13), "ICS-1201"),
        (dnp3(14), "ICS-1202"),
        (dnp3(18), "ICS-1203"),
        (dnp3(17), "ICS-1204"),
        (dnp3(15), "ICS-1205"),
        (dnp3(16), "ICS-1205"),
        (dnp3(21), "ICS-1206"),
        (dnp3(27), "ICS-1207"),
        (dnp3(25), "ICS-1208"),
        (dnp3(2, objects=({"group": 70, "variation": 5},)), "ICS-1208"),
        (dnp3(131, request=False, objects=({"group": 120, "variation": 7},)), "ICS-1209"),
        (dnp3(19), "ICS-1211"),
        (modbus(8, sub_function=1), "ICS-1301"),
        (modbus(8, sub_function=3, data="3b00"), "ICS-1309"),
        (modbus(8, sub_function=4), "ICS-1302"),
        (modbus(8, sub_function=10), "ICS-1303"),
        (modbus(90, sub_function=0x41), "ICS-1304"),
        (modbus(90, sub_function=0x40), "ICS-1305"),
        # UMAS "upload" writes a program into the PLC, its "download" reads it out.
        (modbus(90, sub_function=0x31), "ICS-1306"),
        (modbus(90, sub_function=0x34), "ICS-1307"),
        (modbus(6, unit_id=0, address=3, values=(7,)), "ICS-1308"),
    ],
)
def test_command_fires(record: object, rule_id: str) -> None:
    alerts = run([record])
    assert rule_ids(alerts) == [rule_id]
    [alert] = alerts
    assert {alert.src_ip, alert.dst_ip} == {"10.0.0.5", "10.0.0.9"} and alert.frames == (1,)
    assert alert.src_ip == record.src_ip  # type: ignore[attr-defined]
    assert alert.title == RULES.get(rule_id).title and alert.explanation


_PAIRING = {"modbus": "transaction_id", "s7comm": "pdu_ref", "dnp3": "sequence"}


def _answer(record: Any, request: Any, **changes: Any) -> Any:
    """``record`` as the dissectors pair it: the answer to ``request`` (its frame, and the
    transaction id, PDU reference or sequence number it echoes)."""
    name = _PAIRING[record.event_type]
    return dataclasses.replace(
        record, request_frame=request.frame, **{name: getattr(request, name)}, **changes
    )


def _what(alert: Any) -> str:
    return str(alert.explanation.partition(" Why it matters: ")[0])


@pytest.mark.parametrize(
    ("request_record", "response", "outcome", "sentence"),
    [
        # A PLC stop refused for want of the password (the snap7 server's answer to a protected CPU).
        (
            s7(JOB, function_code=0x29, frame=10),
            {
                "record": s7(3, function_code=0x29, frame=11, request=False, error_class=0xD2),
                "error_code": 0x41,
                "error_name": "PROTECTION_LEVEL_TOO_LOW",
            },
            {"result": "refused", "response_frame": 11, "code": 0xD241, "reason": "PROTECTION_LEVEL_TOO_LOW"},
            "The device refused it: PROTECTION_LEVEL_TOO_LOW (0xd241) in its answer (frame 11).",
        ),
        (
            s7(JOB, function_code=0x29, frame=10),
            {"record": s7(3, function_code=0x29, frame=11, request=False, error_class=0)},
            {"result": "accepted", "response_frame": 11},
            "The device accepted it: its answer (frame 11) reports no error.",
        ),
        # A clock set refused in the USERDATA parameters.
        (
            s7(USERDATA, userdata=userdata(7, 2), frame=10),
            {
                "record": s7(
                    USERDATA,
                    frame=12,
                    request=False,
                    userdata={**userdata(7, 2, kind=2), "error_code": 0xD602, "error_name": "CLOCK_ERROR"},
                )
            },
            {"result": "refused", "response_frame": 12, "code": 0xD602, "reason": "CLOCK_ERROR"},
            "The device refused it: CLOCK_ERROR (0xd602) in its answer (frame 12).",
        ),
        (
            dnp3(13, frame=10),
            {"record": dnp3(129, frame=11, request=False, iin=0)},
            {"result": "accepted", "response_frame": 11},
            "The device accepted it: its answer (frame 11) reports no error.",
        ),
        (
            dnp3(13, frame=10),
            {
                "record": dnp3(129, frame=11, request=False, iin=0x8001),
                "iin_names": ("DEVICE_RESTART", "NO_FUNC_CODE_SUPPORT"),
            },
            {"result": "refused", "response_frame": 11, "code": 0x8001, "reason": "NO_FUNC_CODE_SUPPORT"},
            "The device refused it: NO_FUNC_CODE_SUPPORT (0x8001) in its answer (frame 11).",
        ),
        # IIN2.4: a restart already under way; this one is not carried out.
        (
            dnp3(13, frame=10),
            {
                "record": dnp3(129, frame=11, request=False, iin=0x0010),
                "iin_names": ("ALREADY_EXECUTING",),
            },
            {"result": "refused", "response_frame": 11, "code": 0x0010, "reason": "ALREADY_EXECUTING"},
            "The device refused it: ALREADY_EXECUTING (0x0010) in its answer (frame 11).",
        ),
        (
            modbus(8, sub_function=1, frame=10),
            {
                "record": modbus(8, sub_function=1, frame=11, request=False, exception_code=1),
                "exception": "ILLEGAL_FUNCTION",
            },
            {"result": "refused", "response_frame": 11, "code": 1, "reason": "ILLEGAL_FUNCTION"},
            "The device refused it: ILLEGAL_FUNCTION (1) in its answer (frame 11).",
        ),
        # UMAS refuses with a normal FC 90 reply whose status byte is 0xFD (ERROR).
        (
            modbus(90, sub_function=0x41, frame=10),
            {
                "record": modbus(90, sub_function=0x41, frame=11, request=False),
                "status": 0xFD,
                "status_name": "ERROR",
            },
            {"result": "refused", "response_frame": 11, "code": 0xFD, "reason": "UMAS status ERROR"},
            "The device refused it: UMAS status ERROR (0xfd) in its answer (frame 11).",
        ),
        (
            modbus(90, sub_function=0x41, frame=10),
            {
                "record": modbus(90, sub_function=0x41, frame=11, request=False),
                "status": 0xFE,
                "status_name": "OK",
            },
            {"result": "accepted", "response_frame": 11},
            "The device accepted it: its answer (frame 11) reports no error.",
        ),
    ],
)
def test_command_alert_gets_the_devices_answer(
    request_record: Any, response: dict[str, Any], outcome: dict[str, Any], sentence: str
) -> None:
    """Accepted (the command took effect) or refused (with the device's error): the alert goes out
    again, the same id and count, with ``evidence.outcome`` and a sentence in what happened."""
    record = response.pop("record")
    first, answered = run([request_record, _answer(record, request_record, **response)])
    assert answered.alert_id == first.alert_id and answered.count == first.count == 1
    assert "outcome" not in first.evidence and answered.evidence["outcome"] == outcome
    assert {k: v for k, v in answered.evidence.items() if k != "outcome"} == first.evidence
    assert _what(answered) == f"{_what(first)} {sentence}"
    assert answered.explanation.endswith(first.explanation.partition(" Why it matters: ")[2])


def test_a_command_alert_takes_the_answer_to_its_request_or_to_a_repeat_before_it() -> None:
    """Unanswered, the alert stays as it was; an answer to another request, or a second answer,
    adds nothing; the first answer to the alert's request or to a repeat absorbed by throttling
    goes in, with the count the alert reached meanwhile; a later acceptance after a refusal too
    (a command retried until it took effect)."""
    stop = s7(JOB, function_code=0x29, frame=10)
    assert len(run([stop])) == 1
    other = _answer(s7(3, function_code=0x04, frame=11, request=False), s7(JOB, frame=9), error_class=0)
    assert len(run([stop, other])) == 1
    again = s7(JOB, function_code=0x29, frame=12, ts=1001.0)
    answer_again = _answer(s7(3, function_code=0x29, frame=13, request=False), again, error_class=0)
    answer = _answer(s7(3, function_code=0x29, frame=14, request=False), stop, error_class=0)
    alerts = run([stop, again, answer, answer_again, answer], finish=False)
    assert [a.count for a in alerts] == [1, 2]
    assert alerts[1].evidence["outcome"]["response_frame"] == 14 and alerts[1].frames == (10, 12)
    # The first occurrence sent without waiting, the repeat answered: the repeat's answer says it.
    alerts = run([stop, again, answer_again], finish=False)
    assert [a.count for a in alerts] == [1, 2]
    assert alerts[1].evidence["outcome"]["response_frame"] == 13
    # The window's summary (at the end) keeps the answer.
    final = run([stop, again, answer])[-1]
    assert final.count == 2 and final.evidence["outcome"]["result"] == "accepted"
    # Refused, then retried and accepted: both said, the acceptance last; refused twice: once.
    refused = _answer(s7(3, function_code=0x29, frame=11, request=False), stop, error_class=0x85)
    refused_again = _answer(s7(3, function_code=0x29, frame=13, request=False), again, error_class=0x85)
    last = run([stop, refused, again, answer_again], finish=False)[-1]
    assert last.evidence["outcome"]["result"] == "accepted" and last.count == 2
    assert "The device refused it" in _what(last) and _what(last).endswith("reports no error.")
    twice = run([stop, refused, again, refused_again], finish=False)
    assert len(twice) == 2 and _what(twice[-1]).count("The device refused it") == 1
    # Two commands in one segment (pipelined Modbus transactions): each answer to its own alert.
    restart = dataclasses.replace(modbus(8, sub_function=1, frame=30), transaction_id=7)
    listen = dataclasses.replace(modbus(8, sub_function=4, frame=30), transaction_id=8)
    refused = _answer(modbus(8, sub_function=1, frame=31, request=False, exception_code=3), restart)
    accepted = _answer(modbus(8, sub_function=4, frame=32, request=False), listen)
    alerts = run([restart, listen, refused, accepted], finish=False)
    answers = {a.rule_id: a.evidence["outcome"]["result"] for a in alerts if "outcome" in a.evidence}
    assert answers == {"ICS-1301": "refused", "ICS-1302": "accepted"}
    # A write to unit 0 that the device answers was no broadcast (see the unit 0 test below).
    broadcast = modbus(6, unit_id=0, address=3, values=(7,), frame=20)
    reply = _answer(modbus(6, unit_id=0, address=3, values=(7,), frame=21, request=False), broadcast)
    assert run([broadcast, reply]) == [] and len(run([broadcast])) == 1


@pytest.mark.parametrize(("code", "rule_id"), [(0x29, "ICS-1001"), (0x1A, "ICS-1003"), (0x1D, "ICS-1004")])
def test_a_stop_download_or_upload_the_plc_answered_is_reported_without_its_request(
    code: int, rule_id: str
) -> None:
    """Found by a red-team review: a STOP hidden from the monitor in the TCP stream (a decoy copy of
    a segment, a forged acknowledgement) is still shown by the PLC's answer, ACK_DATA for that
    function.  Reported from it, for the client, once: not again for a request seen."""
    # The request read as another function (a PI service of the decoy's bytes), answered 0x29.
    decoy = s7(JOB, function_code=0x28, pi_service="_N_XX", frame=14)
    reply = _answer(s7(3, function_code=code, frame=16, ts=1000.1, request=False), decoy, error_class=0)
    [alert] = [a for a in run([decoy, reply]) if a.rule_id == rule_id]
    assert (alert.src_ip, alert.dst_ip, alert.dst_port) == ("10.0.0.5", "10.0.0.9", 102)
    assert alert.frames == (14, 16) and alert.ts == 1000.1
    assert alert.evidence["request_seen"] is False and alert.evidence["outcome"]["result"] == "accepted"
    assert (
        f"Only the PLC's answer (ACK_DATA for function 0x{code:02x}, frame 16) shows it: its request "
        "(frame 14, PDU reference 14) read here as another command" in alert.explanation
    )
    assert "The device accepted it" in alert.explanation
    # No request at all (the capture lost it, or a forged ACK made the monitor skip it).
    orphan = dataclasses.replace(s7(3, function_code=code, frame=16, request=False), error_class=0)
    [alone] = run([orphan])
    assert alone.rule_id == rule_id and alone.frames == (16,)
    assert "its request was not seen" in alone.explanation
    # Refused by the PLC: still an attempt, said so.
    refused = dataclasses.replace(orphan, error_class=0xD2, error_code=0x41)
    [attempt] = run([refused])
    assert attempt.evidence["outcome"]["result"] == "refused"
    # The request seen: one alert, the answer its outcome (no second occurrence).
    job = s7(JOB, function_code=code, frame=20)
    seen = run([job, _answer(s7(3, function_code=code, frame=21, request=False), job, error_class=0)])
    assert [(a.rule_id, a.count) for a in seen] == [(rule_id, 1), (rule_id, 1)]
    assert "request_seen" not in seen[-1].evidence and "Only the PLC's answer" not in seen[-1].explanation
    # Found in review: the request seen, its answer unpaired by the dissector (same PDU reference):
    # not reported again as unseen.
    unpaired = dataclasses.replace(
        s7(3, function_code=code, frame=21, request=False), error_class=0, pdu_ref=20
    )
    assert [(a.rule_id, a.count, "request_seen" in a.evidence) for a in run([job, unpaired])] == [
        (rule_id, 1, False)
    ]
    # Answers of other functions say nothing of the kind.
    assert run([dataclasses.replace(s7(3, function_code=0x04, frame=16, request=False), error_class=0)]) == []


def test_a_modbus_diagnostic_the_device_echoed_is_reported_without_its_request() -> None:
    """As for S7: an FC 8 answer echoes its sub-function, so a restart whose request the monitor
    did not see (lost, or hidden in the TCP stream) is reported from the echo, for the client."""
    echo = modbus(8, sub_function=1, frame=16, ts=1000.1, request=False)
    [alert] = run([echo])
    assert alert.rule_id == "ICS-1301" and (alert.src_ip, alert.dst_ip) == ("10.0.0.5", "10.0.0.9")
    assert alert.frames == (16,) and alert.evidence["request_seen"] is False
    assert alert.evidence["sub_function"] == 1 and alert.evidence["outcome"]["result"] == "accepted"
    assert (
        "unit 1. Only the device's answer (FC 8 sub-function 1 echoed, frame 16) shows it: its request "
        "was not seen" in alert.explanation
    )
    # Paired by the dissector with a request read as something else (a decoy's bytes).
    decoy = modbus(8, sub_function=0, frame=14)
    [paired] = run([decoy, _answer(echo, decoy)])
    assert paired.frames == (14, 16) and "read here as another command" in paired.explanation
    # The request seen: its alert takes the answer, no second occurrence.
    restart = modbus(8, sub_function=1, frame=20)
    seen = run([restart, _answer(modbus(8, sub_function=1, frame=21, request=False), restart)])
    assert [(a.rule_id, a.count) for a in seen] == [("ICS-1301", 1), ("ICS-1301", 1)]
    assert "request_seen" not in seen[-1].evidence
    # A force to listen-only mode answered (the standard says it is not; some servers, pymodbus's
    # among them, echo it): one occurrence, not a second one for the echo.
    listen = modbus(8, sub_function=4, frame=30)
    echoed = run([listen, _answer(modbus(8, sub_function=4, frame=31, request=False), listen)])
    assert [(a.rule_id, a.count) for a in echoed][-1] == ("ICS-1302", 1)
    # An exception carries no sub-function; an echo of a harmless sub-function (0, return query
    # data) says nothing of the kind.
    assert run([modbus(8, sub_function=1, frame=16, request=False, exception_code=1)]) == []
    assert run([modbus(8, sub_function=0, frame=16, request=False)]) == []


def test_ascii_delimiter_change_names_the_new_delimiter() -> None:
    [alert] = run([modbus(8, sub_function=3, data="3b00")])
    assert alert.evidence["delimiter"] == "0x3b"
    assert "new delimiter 0x3b." in alert.explanation
    # Found in review: without its data field the text read "new delimiter None".
    [bare] = run([modbus(8, sub_function=3)])
    assert "new delimiter ? (no data field)." in bare.explanation
    # A diagnostic that reads counters, or echoes, changes nothing on the line.
    assert run([modbus(8, sub_function=0, data="3b00"), modbus(8, sub_function=11)]) == []


def test_s7_explanations_name_blocks_as_engineers_do() -> None:
    """Blocks by type and number, which copy, how large; PI arguments likewise; never a repr."""
    block = {"type": "OB", "type_code": "08", "number": 1, "filesystem": "P", "filesystem_name": "PASSIVE"}
    download = dataclasses.replace(s7(JOB, function_code=0x1A), block={**block, "load_memory_length": 90})
    insert = dataclasses.replace(
        s7(JOB, function_code=0x28, pi_service="_INSE"),
        pi_arguments=(block, {**block, "type": "DB", "number": 7}),
    )
    start = dataclasses.replace(s7(JOB, function_code=0x28, pi_service="P_PROGRAM"), pi_arguments=())
    texts = {a.rule_id: a.explanation.split(" Why it matters:")[0] for a in run([download, insert, start])}
    assert texts["ICS-1003"].endswith(
        "started a block download to the S7 PLC 10.0.0.9: OB1 (passive, 90 bytes of load memory)."
    )
    assert texts["ICS-1010"].endswith("(PI service _INSE): OB1 (passive), DB7 (passive).")
    assert texts["ICS-1002"].endswith(
        "to start its program: warm or hot restart (PI service P_PROGRAM, arguments none)."
    )
    assert not any("{" in text or "'" in text for text in texts.values())
    # Arguments not recorded (withheld for a password, or cut by the capture) are not "none".
    withheld = run([s7(JOB, function_code=0x28, pi_service="P_PROGRAM")])[0].explanation
    assert "to start its program: restart (PI service P_PROGRAM, arguments ?)" in withheld
    # The evidence keeps the decoded descriptors.
    [alert] = [a for a in run([download]) if a.rule_id == "ICS-1003"]
    assert alert.evidence["block"]["load_memory_length"] == 90


def test_s7_cold_and_warm_starts_and_password_operations_are_alerts_of_their_own() -> None:
    """A cold restart (argument C) resets retentive data, a warm one keeps it; a password cleared
    is not a password sent: from one host each is its own alert, not a count on the other's."""
    start = s7(JOB, function_code=0x28, pi_service="P_PROGRAM")
    records = [
        dataclasses.replace(start, pi_arguments=(), frame=1),
        dataclasses.replace(start, pi_arguments=("C ",), frame=2),
        dataclasses.replace(start, pi_arguments=(), frame=3),
        dataclasses.replace(s7(USERDATA, userdata=userdata(5, 1)), frame=4),
        dataclasses.replace(s7(USERDATA, userdata=userdata(5, 2)), frame=5),
    ]
    alerts = list({a.alert_id: a for a in run(records)}.values())  # each alert's last record
    starts = sorted((a.evidence["start_kind"], a.frames) for a in alerts if a.rule_id == "ICS-1002")
    assert starts == [("cold restart", (2,)), ("warm or hot restart", (1, 3))]
    assert "cold restart (PI service P_PROGRAM, arguments C )" in next(
        a.explanation for a in alerts if a.frames == (2,)
    )
    passwords = sorted((a.evidence["subfunction"], a.frames) for a in alerts if a.rule_id == "ICS-1008")
    assert passwords == [(1, (4,)), (2, (5,))]


@pytest.mark.parametrize(
    "record",
    [
        s7(JOB, function_code=0x04),  # READ_VAR
        s7(JOB, function_code=0x28, pi_service="_N_LOGOUT"),
        s7(USERDATA, userdata=userdata(7, 1)),  # READ_CLOCK
        s7(USERDATA, userdata=userdata(5, 1, kind=2)),  # password *response*
        s7(2, function_code=0x29, request=False),  # ACK of a stop
        dnp3(1),
        dnp3(129, request=False),
        dnp3(2, objects=({"group": 80, "variation": 1},)),
        dnp3(None),  # link-only frame
        dnp3(13, request=False),  # a response to a cold restart is not a new command
        modbus(8, sub_function=0),  # return query data
        # (An FC 8 restart's echo with no request seen is reported: see the test of answers below.)
        modbus(90, sub_function=0x02),  # READ_ID
        modbus(6, unit_id=1, address=3, values=(7,)),
        modbus(3, unit_id=0, address=0, quantity=2),  # a read to unit 0 writes nothing
    ],
)
def test_command_quiet(record: object) -> None:
    assert run([record]) == []


def test_dnp3_broadcast_write_and_its_function_rule() -> None:
    alerts = run([dnp3(21, dst=0xFFFF), dnp3(1, dst=0xFFFF), dnp3(2, dst=0xFFFD, objects=({"group": 50},))])
    assert rule_ids(alerts) == ["ICS-1206", "ICS-1210", "ICS-1210"]
    assert {a.evidence["link_dst"] for a in alerts if a.rule_id == "ICS-1210"} == {0xFFFF, 0xFFFD}
    # Per function: a broadcast restart after a broadcast write is an alert of its own, and the
    # restart's own alert says its address is a broadcast.
    both = run([dnp3(2, dst=0xFFFF, frame=1), dnp3(13, dst=0xFFFF, frame=2)])
    assert sorted((a.rule_id, a.evidence["function_code"]) for a in both) == [
        ("ICS-1201", 13),
        ("ICS-1210", 2),
        ("ICS-1210", 13),
    ]
    [restart] = [a for a in both if a.rule_id == "ICS-1201"]
    assert "(link 65535, broadcast)." in restart.explanation


def test_dnp3_commands_to_a_broadcast_address_await_no_answer() -> None:
    engine = DetectionEngine(RULES, strict=True)
    alerts = engine.observe(dnp3(13, dst=0xFFFF, frame=5)) + engine.observe(dnp3(13, dst=10, frame=6))
    assert rule_ids(alerts) == ["ICS-1201", "ICS-1201", "ICS-1210"]
    # Only the restart sent to outstation 10 waits for its answer (no outstation answers 0xFFFF).
    assert [key[1] for key in engine.emitter._awaiting] == [6]


def test_repeats_throttle_into_one_alert_with_a_count() -> None:
    alerts = run([modbus(8, sub_function=4, ts=1000.0 + i, frame=i + 1) for i in range(5)])
    assert [(a.count, a.frames) for a in alerts] == [(1, (1,)), (5, (1, 2, 3, 4, 5))]
    assert alerts[0].alert_id == alerts[1].alert_id


def test_disabled_rule_is_silent() -> None:
    assert run([s7(JOB, function_code=0x29)], rules=RULES.configured("ICS-1001", enabled=False)) == []


def test_a_rule_missing_from_the_rules_files_is_named() -> None:
    from ics_monitor.detect.api import Emitter

    emitter = Emitter(RULES)
    with pytest.raises(KeyError, match="rule ICS-0000 is not defined in the rules files"):
        emitter.fire("ICS-0000", "k", ts=1.0)
    emitter.fire("ICS-1001", "k", ts=1.0)
    assert [a.rule_id for a in emitter.out] == ["ICS-1001"]


def test_s7plus_download_by_request_fragments() -> None:
    fragments = [s7plus(fragment="inner", frame=i) for i in range(1, 9)]
    assert rule_ids(run(fragments)) == ["ICS-1101"]
    assert run(fragments[:7]) == []
    # Single-PDU requests (no fragment) and responses never count.
    assert run([s7plus(function_code=0x04F2, frame=i) for i in range(1, 12)]) == []


def test_s7plus_stop_and_start_by_the_operating_state_attribute() -> None:
    """A SetVariable of CPUexecUnit.operatingStateReq: 1 is a stop, 3 a start; anything else that
    names the attribute is a mode change of the value it asks for (or of unknown direction)."""

    def set_state(value: int | None, frame: int, **kwargs: Any) -> Any:
        return s7plus(
            function_code=0x04F2, frame=frame, object_id=52, attribute_id=2167, value=value, **kwargs
        )

    alerts = run([set_state(1, 1), set_state(3, 2)])
    assert [(a.rule_id, a.frames, a.evidence["requested_state_name"]) for a in alerts] == [
        ("ICS-1102", (1,), "STOP"),
        ("ICS-1103", (2,), "RUN"),
    ]
    for value, name in ((2, "state 2"), (None, "unknown")):
        [alert] = run([set_state(value, 3)])
        assert (alert.rule_id, alert.evidence["requested_state_name"]) == ("ICS-1103", name)
    assert (
        "to go to STOP (S7comm-plus SetVariable of CPUexecUnit.operatingStateReq = 1)"
        in alerts[0].explanation
    )
    # Other attributes, other functions and responses are not mode changes.
    assert run([s7plus(function_code=0x04F2, object_id=52, attribute_id=323, value=1)]) == []
    assert run([s7plus(function_code=0x0542, object_id=52, attribute_id=2167, value=1)]) == []
    assert run([set_state(1, 5, request=False, opcode=0x32)]) == []


def test_s7plus_upload_by_block_object_reads() -> None:
    """GetVarSubStreamed of a program block's object (id from 0x80000000): one alert per client
    and PLC, counted; system objects, a block's type name and other functions are not uploads."""

    def read(object_id: int, attribute_id: int, frame: int, function_code: int = 0x0586) -> Any:
        return s7plus(
            function_code=function_code, frame=frame, object_id=object_id, attribute_id=attribute_id
        )

    alerts = run([read(0x88E10101 + n, 3753, n + 1) for n in range(5)])
    assert [(a.rule_id, a.count, a.evidence["block_object"]) for a in alerts] == [
        ("ICS-1104", 1, "0x88E10101"),
        ("ICS-1104", 5, "0x88E10101"),
    ]
    assert "read the program block object 0x88E10101 (attribute 3753)" in alerts[0].explanation
    assert run([read(0x394, 300, 1), read(0x34, 2237, 2), read(0x89F90000, 233, 3)]) == []
    assert run([read(0x89F90000, 7735, 4, function_code=0x054C)]) == []
    assert run([s7plus(function_code=0x0586, object_id=0x89F90000, attribute_id=None)]) == []


@pytest.mark.parametrize(
    ("code", "severity", "rule_id"),
    [
        ("modbus.length_mismatch", "medium", "ICS-2001"),
        ("s7comm.truncated_item", "medium", "ICS-2001"),
        ("dnp3.link_crc_bad", "medium", "ICS-2002"),
        ("tcp.overlap_mismatch", "high", "ICS-2004"),
        ("flow.table_full", "medium", "ICS-2005"),
        ("internal.dissector_error", "high", "ICS-2006"),
        ("internal.detector_error", "high", "ICS-2006"),
    ],
)
def test_anomaly_codes_map_to_rules(code: str, severity: str, rule_id: str) -> None:
    [alert] = run([anomaly(code, severity)])
    assert alert.rule_id == rule_id
    assert alert.evidence["code"] == code


@pytest.mark.parametrize(
    ("code", "severity"),
    [("modbus.unanswered_request", "low"), ("tcp.reassembly_gap", "low"), ("ipv4.truncated", "low")],
)
def test_low_or_non_ics_anomalies_are_quiet(code: str, severity: str) -> None:
    assert run([anomaly(code, severity)]) == []


def test_orphan_responses_need_repeats_within_the_window() -> None:
    three = [anomaly("modbus.unmatched_response", "low", frame=i) for i in (1, 2, 3)]
    [alert] = run(three)
    assert alert.rule_id == "ICS-2003" and alert.evidence["occurrences"] == 3
    assert run(three[:2]) == []
    spread = [anomaly("modbus.unmatched_response", "low", frame=i) for i in (1, 100, 200)]
    assert run(spread) == []


def test_a_response_of_another_function_is_malformed_not_an_orphan() -> None:
    """It answers a request (its transaction id is pending): not "answered no request seen"."""
    three = [anomaly("modbus.response_function_mismatch", "medium", frame=i) for i in (1, 2, 3)]
    alerts = run(three)
    assert {a.rule_id for a in alerts} == {"ICS-2001"}
    assert "no request seen" not in alerts[0].explanation


def test_routine_pairing_anomalies_are_not_malformed_data() -> None:
    assert run([anomaly("modbus.duplicate_transaction_id", "medium")]) == []


def test_anomaly_dedup_per_host_pair_naming_every_code() -> None:
    """Malformed data: one ICS-2001 per host pair (a connection per message is one alert), widened
    to name each new kind of fault (a function-code sweep trips several at once); a repeat counts."""
    records = [anomaly("modbus.length_mismatch", frame=i) for i in range(1, 4)]
    records.append(anomaly("modbus.length_mismatch", frame=9, flow_id="other"))
    records.append(anomaly("modbus.bad_length", frame=10))
    records.append(anomaly("modbus.length_mismatch", frame=11))
    alerts = run(records)
    assert rule_ids(alerts) == ["ICS-2001"]
    [final] = {a.alert_id: a for a in alerts}.values()
    assert final.count == 5 and final.evidence["codes"] == ["modbus.length_mismatch", "modbus.bad_length"]
    assert "modbus.length_mismatch, modbus.bad_length (the last:" in alerts[-2].explanation


def _unsolicited_run(records: list[Any], finish: bool = True) -> list[Any]:
    return [a for a in run(records, finish=finish) if a.rule_id == "ICS-1206"]


CLASSES_123 = ({"group": 60, "variation": 2}, {"group": 60, "variation": 3}, {"group": 60, "variation": 4})


def _enable(
    ts: float, frame: int, objects: Any = CLASSES_123, sequence: int = 5, iin: int = 0, **kw: Any
) -> list[Any]:
    """ENABLE_UNSOLICITED and the outstation's answer (IIN2 error bits in ``iin`` refuse it)."""
    request = dnp3(20, ts=ts, frame=frame, objects=objects, sequence=sequence, **kw)
    answer = dnp3(
        129,
        request=False,
        ts=ts + 0.05,
        frame=frame + 100,
        sequence=sequence,
        iin=iin,
        src=request.dst,  # the outstation answers from its link address to the master's
        dst=request.src,
    )
    return [request, dataclasses.replace(answer, request_function_code=20)]


def test_dnp3_master_start_up_disable_then_enable_is_quiet() -> None:
    """A master's start-up (disable, integrity poll, enable on a new connection) raises nothing; the
    same disable never re-enabled is reported once the wait is over, with its own time and frames."""
    start_up = [
        dnp3(21, ts=1000.0, frame=1, objects=CLASSES_123),
        dnp3(1, ts=1000.2, frame=2, objects=({"group": 60, "variation": 1},)),
        *_enable(1000.4, 3),
        dnp3(1, ts=1030.0, frame=4),
    ]
    assert _unsolicited_run(start_up) == []
    # Enabled again in two requests: the same.
    split = [*start_up[:2], *_enable(1000.4, 3, CLASSES_123[:1], sequence=6)]
    assert _unsolicited_run([*split, *_enable(1000.5, 4, CLASSES_123[1:], sequence=7)]) == []
    # Never re-enabled: nothing while waiting (10 s), then the alert, dated at the disable.
    silenced = [dnp3(21, ts=1000.0, frame=1, objects=CLASSES_123), dnp3(1, ts=1005.0, frame=2)]
    assert _unsolicited_run(silenced, finish=False) == []
    [alert] = _unsolicited_run([*silenced, dnp3(1, ts=1011.0, frame=3)], finish=False)
    assert (alert.ts, alert.frames, alert.count) == (1000.0, (1,), 1)
    assert (
        "among the first 4 requests to the outstation on its connection, and classes 1, 2, 3 not "
        "re-enabled by 10.0.0.5 "
        "(an ENABLE_UNSOLICITED the outstation accepted) within 10 s" in alert.explanation
    )
    # Disables repeated while held are counted in the one alert (an attack tool's flood).
    [flood] = _unsolicited_run([dnp3(21, ts=1000.0 + n / 10, frame=n + 1) for n in range(3)])
    assert (flood.count, flood.frames, flood.last_ts) == (3, (1, 2, 3), 1000.2)


def test_dnp3_partial_or_broken_enable_leaves_the_disable_reported() -> None:
    """Only an ENABLE that restores every class disabled, with good CRCs, makes it a start-up."""
    disable = dnp3(21, ts=1000.0, frame=1, objects=CLASSES_123)
    [alert] = _unsolicited_run([disable, *_enable(1000.3, 2, CLASSES_123[:1])])
    assert alert.evidence["not_reenabled_classes"] == [2, 3]
    assert len(_unsolicited_run([disable, *_enable(1000.3, 2, ())])) == 1  # an ENABLE naming no class
    request, answer = _enable(1000.3, 2)
    assert len(_unsolicited_run([disable, dataclasses.replace(request, crc_ok=False), answer])) == 1
    assert len(_unsolicited_run([disable, request])) == 1  # never answered
    assert len(_unsolicited_run([disable, *_enable(1000.3, 2, iin=0x0004)])) == 1  # refused: PARAMETER_ERROR
    assert len(_unsolicited_run([disable, *_enable(1000.3, 2, dst=11)])) == 1  # another outstation link
    # An outstation without unsolicited reporting refuses the disable (NO_FUNC_CODE_SUPPORT):
    # nothing was silenced, nothing to report, whatever the ENABLE's answer.
    refused = dataclasses.replace(
        dnp3(129, request=False, ts=1000.1, frame=3, sequence=0, iin=0x0001, src=10, dst=1),
        request_function_code=21,
    )
    assert _unsolicited_run([disable, refused, *_enable(1000.3, 4, iin=0x0001)]) == []
    accepted = dataclasses.replace(refused, iin=0)
    assert len(_unsolicited_run([disable, accepted])) == 1
    # Found by a red-team review: disable, ENABLE, disable again before the ENABLE's answer.  The
    # outstation takes them in order and is left disabled: the ENABLE's answer must not undo it.
    request, answer = _enable(1000.3, 2)
    again = dnp3(21, ts=1000.31, frame=3, objects=CLASSES_123, sequence=6)
    [alert] = _unsolicited_run([disable, request, again, answer])
    assert (alert.count, alert.frames, alert.evidence["not_reenabled_classes"]) == (2, (1, 3), [1, 2, 3])
    # Only the class disabled again stays disabled.
    again_2 = dataclasses.replace(again, objects=CLASSES_123[1:2])
    [alert] = _unsolicited_run([disable, request, again_2, answer])
    assert alert.evidence["not_reenabled_classes"] == [2]
    # A disable the ENABLE came after is undone by it, as before.
    assert _unsolicited_run([disable, again, *_enable(1000.4, 4)]) == []
    # A disable naming no class silences them all: an ENABLE naming none does not undo it.
    bare = dnp3(21, ts=1000.0, frame=1)
    assert len(_unsolicited_run([bare, *_enable(1000.3, 2, ())])) == 1
    assert _unsolicited_run([bare, *_enable(1000.3, 2)]) == []


def test_dnp3_disable_and_enable_in_one_frame_are_told_apart_by_their_order() -> None:
    """Two DNP3 requests in one TCP segment share a frame number: the order they came in decides."""
    disable = dnp3(21, ts=1000.0, frame=3, objects=CLASSES_123, sequence=4)
    request, answer = _enable(1000.0, 3)  # the same frame as the disable
    # Disable, then ENABLE in the same segment: re-enabled (no alert), as with two frames.
    assert _unsolicited_run([disable, request, answer]) == []
    # A disable held, then ENABLE and disable again in one segment: the outstation took the
    # second disable last and is left disabled (the ENABLE's answer must not undo it).
    first = dnp3(21, ts=999.0, frame=1, objects=CLASSES_123, sequence=2)
    [alert] = _unsolicited_run([first, request, disable, answer])
    assert alert.frames == (1, 3) and alert.evidence["not_reenabled_classes"] == [1, 2, 3]


def test_dnp3_disable_re_enabled_by_another_host_or_mid_session_is_reported() -> None:
    # Another host's ENABLE_UNSOLICITED does not make an attacker's disable a start-up.
    other = [dnp3(21, ts=1000.0, frame=1, client="10.0.0.66", flow_id="f-x"), dnp3(20, ts=1000.5, frame=2)]
    [alert] = _unsolicited_run(other)
    assert alert.src_ip == "10.0.0.66"
    # Past the first requests of a session a disable is reported at once, re-enabled or not.
    session = [dnp3(1, ts=1000.0 + n, frame=n + 1) for n in range(4)]
    mid = _unsolicited_run(
        [*session, dnp3(21, ts=1005.0, frame=5), dnp3(20, ts=1005.5, frame=6)], finish=False
    )
    assert [(a.frames, a.evidence["disable_context"]) for a in mid] == [
        ((5,), "during a session, not as a master's start-up does")
    ]
    # A held start-up disable and a later one at once stay two alerts, each with its own time.
    both = _unsolicited_run([dnp3(21, ts=1000.0, frame=1), *session[1:], dnp3(21, ts=1005.0, frame=5)])
    assert sorted((a.ts, a.frames) for a in both) == [(1000.0, (1,)), (1005.0, (5,))]
    # A master starting up the outstations of a multi-drop line one after the other on one
    # connection: each start-up is its own (the eighth outstation's disable is not mid-session).
    line = [
        record
        for n, outstation in enumerate(range(10, 18))
        for record in (
            dnp3(21, ts=1000.0 + n, frame=10 * n + 1, dst=outstation, objects=CLASSES_123),
            dnp3(1, ts=1000.2 + n, frame=10 * n + 2, dst=outstation),
            *_enable(1000.4 + n, 10 * n + 3, dst=outstation),
        )
    ]
    assert _unsolicited_run(line) == []
    # ... while a disable past one outstation's first requests is reported, as on its own.
    late = [
        *line,
        *(dnp3(1, ts=1010.0 + n, frame=200 + n, dst=12) for n in range(3)),
        dnp3(21, ts=1014.0, frame=210, dst=12),
    ]
    [alert] = _unsolicited_run(late)
    assert alert.frames == (210,) and alert.evidence["disable_context"].startswith("during a session")
    # reenable_seconds 0: never waits.
    rules = RULES.configured("ICS-1206", reenable_seconds=0)
    [now] = [
        a for a in run([dnp3(21), dnp3(20, frame=2)], rules=rules, finish=False) if a.rule_id == "ICS-1206"
    ]
    assert now.evidence["disable_context"].endswith("(reenable_seconds is 0)")


def _unit0(ts: float, frame: int, code: int = 6) -> Any:
    return modbus(code, unit_id=0, ts=ts, frame=frame, address=3, quantity=1, values=(7,))


def _answered(request: Any, delay: float = 0.02, **changes: Any) -> Any:
    """The device's answer to a Modbus request (the dissector pairs it by request frame)."""
    answer = modbus(
        request.function_code,
        request=False,
        unit_id=request.unit_id,
        ts=request.ts + delay,
        frame=request.frame + 1,
        address=request.address,
        quantity=request.quantity,
        values=request.values,
    )
    paired = {"request_frame": request.frame, "transaction_id": request.transaction_id, **changes}
    return dataclasses.replace(answer, **paired)


def _broadcasts(records: list[Any], finish: bool = True) -> list[Any]:
    return [a for a in run(records, finish=finish) if a.rule_id == "ICS-1308"]


def test_a_write_to_unit_0_that_a_device_answers_is_no_broadcast() -> None:
    """Many Modbus/TCP clients address a device as unit 0 and many devices answer it: only a write
    to unit 0 that nobody answers within answer_timeout (5 s) is the broadcast ICS-1308 is about."""
    write = _unit0(1000.0, 1)
    assert _broadcasts([write, _answered(write)]) == []
    # Answered as unit 1 (a gateway mapping unit 0 to its first device; the dissector cannot pair
    # it): the transaction id says whose answer it is.
    assert _broadcasts([write, _answered(write, unit_id=1, request_frame=None)]) == []
    # Refused by the device (ILLEGAL DATA ADDRESS): it took the write as its own, no broadcast.
    assert _broadcasts([write, _answered(write, exception_code=2)]) == []
    # A gateway that forwarded it and heard nothing back (exception 11): a broadcast went out.
    [gateway] = _broadcasts([write, _answered(write, exception_code=11)], finish=False)
    assert "10.0.0.9 answered exception 11 (GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND)." in gateway.explanation
    assert gateway.evidence["answer"] == {"frame": 2, "exception_code": 11}
    # The answer too late (6 s): by then it was reported, dated at the write.
    [late] = _broadcasts([write, modbus(3, ts=1006.0, frame=5), _answered(write, delay=6.5)])
    assert (late.ts, late.frames) == (1000.0, (1,))
    assert "values 7; no device answered within 5 s." in late.explanation
    # Unanswered: nothing while the device may still answer, then the alert.
    assert _broadcasts([write, modbus(3, ts=1004.0, frame=5)], finish=False) == []
    assert len(_broadcasts([write, modbus(3, ts=1005.5, frame=5)], finish=False)) == 1
    # Found in the second review: answers to other requests (a read of unit 0, answered) vouch for
    # nothing: each write waits for its own.
    poll = dataclasses.replace(
        modbus(3, unit_id=0, ts=999.0, frame=90, address=0, quantity=2), transaction_id=90
    )
    assert len(_broadcasts([poll, _answered(poll), write])) == 1
    # Found by a red-team review: a read reusing the write's transaction id, answered (the dissector
    # pairs the answer with the read), or an unpaired answer of another function, is not the
    # write's answer.
    read = dataclasses.replace(
        modbus(3, unit_id=1, ts=1000.1, frame=3, address=0, quantity=2), transaction_id=write.transaction_id
    )
    assert len(_broadcasts([write, read, _answered(read)])) == 1
    assert len(_broadcasts([write, _answered(read, request_frame=None)])) == 1
    # answer_timeout 0: every write to unit 0 at once, and the alert says it was not waited for.
    rules = RULES.configured("ICS-1308", answer_timeout=0)
    [now] = [a for a in run([write], rules=rules, finish=False) if a.rule_id == "ICS-1308"]
    assert "not waited for (answer_timeout 0)" in now.explanation


def test_dnp3_authentication_request_to_an_outstation_without_it() -> None:
    """ICS-1212: a Secure Authentication request (FC 32/33) answered "function not supported"
    (IIN2.0) is a probe of the device's security; answered (where Secure Authentication runs), or
    unanswered, it is quiet."""

    def exchange(code: int, iin: int, sequence: int = 3, answer_code: int = 129) -> list[Any]:
        request = dnp3(code, ts=1000.0, frame=10, sequence=sequence, client="10.0.0.66")
        answer = dnp3(
            answer_code,
            request=False,
            ts=1000.05,
            frame=11,
            sequence=sequence,
            iin=iin,
            src=request.dst,
            dst=request.src,
            client="10.0.0.66",
        )
        return [request, dataclasses.replace(answer, request_function_code=code)]

    [alert] = run(exchange(32, 0x0001))
    assert alert.rule_id == "ICS-1212" and alert.src_ip == "10.0.0.66" and alert.frames == (10, 11)
    assert "F32 (DNP3 Secure Authentication)" in alert.explanation
    assert alert.evidence["answer"] == "NO_FUNC_CODE_SUPPORT (IIN2.0)"
    assert rule_ids(run(exchange(33, 0x0001 | 0x0100))) == ["ICS-1212"]
    # Secure Authentication in use: the outstation answers (FC 131 AUTHENTICATE_RESP, or a
    # response without IIN2.0); another sequence answers another request; no answer at all.
    assert run(exchange(32, 0, answer_code=131)) == []
    assert run(exchange(32, 0x0002)) == []  # OBJECT_UNKNOWN: it knows the function
    request, answer = exchange(32, 0x0001)
    assert run([request, dataclasses.replace(answer, sequence=4)]) == []
    assert run([request]) == []


def test_identified_pi_services_are_not_called_unidentified() -> None:
    """A named NC service (a Sinumerik HMI's login) is not an unidentified program invocation, and
    the alert on a cut or unknown name says which it was."""
    assert run([s7(JOB, function_code=0x28, pi_service="_N_LOGIN_")]) == []
    cut_record = s7(JOB, function_code=0x28, pi_service=None)
    cut_record.__dict__["truncated"] = True  # as the dissector marks a PDU the snap length cut
    [cut] = run([cut_record])
    assert "cannot be identified: its name cut by the capture." in cut.explanation
    assert cut.evidence["truncated"] is True
    [malformed] = run([s7(JOB, function_code=0x28, pi_service=None)])
    assert "its parameters hold no readable name (malformed)" in malformed.explanation
    [unknown] = run([s7(JOB, function_code=0x28, pi_service="_XYZ", frame=2)])
    assert "an unknown service named '_XYZ'" in unknown.explanation
    assert cut.key != unknown.key


def _class(variation: int) -> dict[str, Any]:
    return {"group": 60, "variation": variation, "qualifier": 6, "start": None, "stop": None, "points": []}


def _points(
    group: int, start: int | None = None, stop: int | None = None, indexes: tuple[int, ...] = ()
) -> Any:
    return {
        "group": group,
        "variation": 0,
        "qualifier": 0 if start is not None else (0x17 if indexes else 6),
        "start": start,
        "stop": stop,
        "points": [{"index": index} for index in indexes],
    }


def test_dnp3_assign_class_0_takes_points_out_of_event_reporting() -> None:
    # Binary inputs 0-7 and three analog inputs to class 0, counters to class 1.
    request = dnp3(
        22,
        objects=(_class(1), _points(1, 0, 7), _points(30, indexes=(4, 5, 9)), _class(2), _points(20)),
    )
    alerts = run([request])
    assert rule_ids(alerts) == ["ICS-1213"]
    assert alerts[0].evidence["class_0_points"] == ["g1v0 0-7", "g30v0 4,5,9"]
    assert "putting g1v0 0-7, g30v0 4,5,9 in class 0" in alerts[0].explanation
    # All binary inputs, the class header after the points it does not cover.
    everything = run([dnp3(22, objects=(_points(1), _class(1), _points(3)))])
    assert [a.evidence["class_0_points"] for a in everything] == [["g3v0 all"]]


def test_dnp3_assign_class_1_to_3_is_commissioning_not_an_alert() -> None:
    assert run([dnp3(22, objects=(_class(3), _points(1), _class(4), _points(30, 0, 9)))]) == []
    # A class 0 header that assigns nothing, and the same objects in a response: no alert.
    assert run([dnp3(22, objects=(_class(2), _points(1), _class(1)))]) == []
    assert run([dnp3(129, request=False, objects=(_class(1), _points(1, 0, 7)))]) == []


def test_dnp3_class_0_alert_per_point_set_and_long_lists_say_how_many_more() -> None:
    first = dnp3(22, frame=1, objects=(_class(1), _points(1, 0, 7)))
    second = dnp3(22, frame=2, sequence=1, objects=(_class(1), _points(30)))
    alerts = run([first, second])
    assert [a.evidence["class_0_points"] for a in alerts] == [["g1v0 0-7"], ["g30v0 all"]]
    many = {**_points(30, indexes=tuple(range(20))), "qualifier": 0x17}
    counted = {**_points(20), "qualifier": 0x07, "count": 12}
    headers = (_class(1), many, counted, *[_points(40 + n % 3, n, n) for n in range(20)])
    [alert] = run([dnp3(22, objects=headers)])
    points = alert.evidence["class_0_points"]
    assert points[0] == "g30v0 0,1,2,3,4,5,6,7 (+12 more)"
    assert points[1] == "g20v0 first 12"
    assert len(points) == 17 and points[-1] == "+6 more headers"
