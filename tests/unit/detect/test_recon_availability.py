"""Reconnaissance and availability detectors: thresholds, windows, what does not count."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ics_monitor.detect.rules import RuleSet
from ics_monitor.inventory.baseline import Baseline, BaselineLearner
from tests.unit.detect.helpers import RULES, rule_ids, run
from tests.unit.detect.records import CLIENT, SERVER, cotp_request, dnp3, flow, modbus, s7, userdata

# Request-only fixtures would (rightly) look like a device that stopped answering.
NO_SILENCE = RULES.configured("ICS-4003", enabled=False)

# -- recon -------------------------------------------------------------------------------------------------


def test_modbus_unit_sweep() -> None:
    sweep = [modbus(3, unit_id=u, ts=1000.0 + u / 10, frame=u, address=0, quantity=1) for u in range(1, 17)]
    [alert] = run(sweep)
    assert alert.rule_id == "ICS-3001" and alert.evidence["distinct_unit_ids"] == 16
    assert alert.evidence["unit_ids"] == list(range(1, 17))
    # 15 units, or 16 each more than the window after the one before, or repeats of few units: quiet.
    assert run(sweep[:15]) == []
    assert (
        run([modbus(3, unit_id=u, ts=1000.0 + 601 * u, frame=u) for u in range(1, 17)], rules=NO_SILENCE)
        == []
    )
    # A slow walk, one unit a minute (16 minutes, past any fixed 5-minute window), is one sweep;
    # a poller's units seen again between the new ones do not stretch a window of their own.
    slow = [modbus(3, unit_id=u, ts=1000.0 + 60 * u, frame=u) for u in range(1, 17)]
    [alert] = run(slow, rules=NO_SILENCE)
    assert alert.evidence["distinct_unit_ids"] == 16 and alert.evidence["window_start"] == 1060.0
    polls = [modbus(3, unit_id=1 + i % 3, ts=1000.0 + 100 * i, frame=i) for i in range(100)]
    stray = [modbus(3, unit_id=10 + i, ts=1000.0 + 700 * i, frame=100 + i) for i in range(13)]
    assert run(sorted(polls + stray, key=lambda e: e.ts), rules=NO_SILENCE) == []
    assert run([modbus(3, unit_id=u % 3, ts=1000.0 + u / 10, frame=u) for u in range(100)]) == []
    # A walk that waits 4.5 s per unit (modbus_findunitid's BENICE) is a sweep all the same.
    slow = [modbus(3, unit_id=u, ts=1000.0 + 4.5 * u, frame=u) for u in range(1, 26)]
    assert rule_ids(run(slow, rules=NO_SILENCE)) == ["ICS-3001"]


def test_a_sweep_that_goes_on_widens_its_alert_once_per_tick() -> None:
    """Every unit id of a sweep in the alert, not the 16 that crossed the threshold."""
    from ics_monitor.detect.recon import spans

    sweep = [modbus(3, unit_id=u, ts=1000.0 + u / 10, frame=u + 1) for u in range(0, 248)]
    alerts = run(sweep, rules=NO_SILENCE)
    assert {a.alert_id for a in alerts} == {alerts[0].alert_id}
    assert alerts[0].evidence["distinct_unit_ids"] == 16
    final = alerts[-1]
    assert final.evidence["distinct_unit_ids"] == 248 and final.evidence["unit_ids"] == list(range(64))
    assert "addressed 248 different unit ids of 10.0.0.9 (threshold 16): 0-247." in final.explanation
    # Not occurrences: the count stays 1; last seen follows the sweep, frames are added (the first 10).
    assert final.count == 1 and final.last_ts == 1024.7 and final.frames[:2] == (16, 20)
    # Each copy names more than the one before; fewer copies than clock ticks of sweep (25): one
    # when the set grew by a tenth, or paused.
    sizes = [a.evidence["distinct_unit_ids"] for a in alerts]
    assert sizes == sorted(set(sizes)) and len(alerts) < 25
    assert spans([5, 1, 2, 3, 9, 7, 8]) == "1-3, 5, 7-9" and spans([]) == ""


def test_a_sweep_past_its_throttle_window_is_a_new_alert_with_the_whole_scope() -> None:
    # 16 units in 16 s, then one new unit every 30 s: the window runs on from the last new unit,
    # the alert's throttling window (here 600 s) ends; the sweep goes on as a second alert,
    # naming every unit.
    times = [1000.0 + u for u in range(16)] + [1015.0 + 30 * n for n in range(1, 25)]
    sweep = [modbus(3, unit_id=u, ts=ts, frame=u + 1) for u, ts in enumerate(times)]
    throttled = RuleSet(
        dataclasses.replace(r, throttle=600) if r.rule_id == "ICS-3001" else r for r in NO_SILENCE
    )
    alerts = run(sweep, rules=throttled)
    # The shipped hour: one alert that grew.
    assert len(dict.fromkeys(a.alert_id for a in run(sweep, rules=NO_SILENCE))) == 1
    first, second = dict.fromkeys(a.alert_id for a in alerts)
    last = {a.alert_id: a for a in alerts}
    assert last[first].evidence["distinct_unit_ids"] < last[second].evidence["distinct_unit_ids"] == 40
    # Unthrottled, every firing is an alert of its own: the one at the threshold stands.
    unthrottled = RuleSet(
        dataclasses.replace(r, throttle=0) if r.rule_id == "ICS-3001" else r for r in NO_SILENCE
    )
    [alone] = run(sweep, rules=unthrottled)
    assert alone.evidence["distinct_unit_ids"] == 16


def test_sweep_scope_is_bounded() -> None:
    from ics_monitor.detect.recon import MAX_SCOPE, MAX_WIDE_KEYS, WindowedSets

    sets = WindowedSets(60, 4)
    for host in range(MAX_WIDE_KEYS + 10):
        for value in range(MAX_SCOPE + 50):
            sets.add(host, value, 1000.0)
    sizes = sorted((len(state[1]) for state in sets.states.values()), reverse=True)
    assert sizes[0] == MAX_SCOPE and sizes[MAX_WIDE_KEYS - 1] == MAX_SCOPE
    assert sizes[MAX_WIDE_KEYS] == sets.cap
    assert len(sets.take_grown(None)) == MAX_WIDE_KEYS + 10 and sets.take_grown(None) == []
    # A day later, the slots of sweeps long over are taken back for a new one.
    for value in range(100):
        sets.add("new", value, 87_400.0 + value / 100)
    assert len(sets.states["new"][1]) == 100


def _final(alerts: list[Any], alert_id: str) -> Any:
    return [a for a in alerts if a.alert_id == alert_id][-1]


def test_a_widened_alert_never_shrinks() -> None:
    # 100 unit ids in 10 s; the sweep pauses past the window (here 300 s) and a smaller one starts
    # within the throttling window (600 s): counted as an occurrence, it does not narrow what the
    # alert names.
    first = [modbus(3, unit_id=u, ts=1000.0 + u / 10, frame=u + 1) for u in range(100)]
    second = [modbus(3, unit_id=u, ts=1400.0 + u / 10, frame=200 + u) for u in range(20)]
    alerts = run(first + second, rules=NO_SILENCE.configured("ICS-3001", window=300))
    [alert_id] = dict.fromkeys(a.alert_id for a in alerts)
    final = _final(alerts, alert_id)
    assert final.count == 2 and final.evidence["distinct_unit_ids"] == 100
    # ICS-3002: 20 codes tried, then a new window of 4 refusals; the alert keeps the codes tried.
    tried = [modbus(code, ts=1000.0 + code, frame=code) for code in range(1, 21)]
    refused = [
        modbus(code, request=False, exception_code=1, ts=1100.5 + i, frame=101 + i)
        for i, code in enumerate((1, 2, 3, 4))
    ]
    alerts = run([*tried, modbus(1, ts=1100.0, frame=100), *refused], rules=NO_SILENCE)
    [alert_id] = dict.fromkeys(a.alert_id for a in alerts)
    final = _final(alerts, alert_id)
    assert (
        final.evidence["reason"] == "distinct_functions" and final.evidence["distinct_function_codes"] == 20
    )


def test_a_scan_keeps_its_window_and_scope_past_the_cap_and_late_records() -> None:
    from ics_monitor.detect.recon import MAX_SCOPE

    # A refused Modbus probe every 0.2 s to 1,900 hosts: one scan, named up to MAX_SCOPE targets,
    # its window sliding with every new target even once the set is full.
    probes = [
        flow(
            dst_ip=f"10.0.{p // 250}.{p % 250 + 1}",
            dst_port=502,
            state="rejected",
            payload=0,
            ts=1000.0 + p * 0.2,
        )
        for p in range(1900)
    ]
    alerts = [a for a in run(probes, rules=NO_SILENCE) if a.rule_id == "ICS-3006"]
    [alert_id] = dict.fromkeys(a.alert_id for a in alerts)
    final = _final(alerts, alert_id)
    assert final.count == 1 and final.evidence["distinct_targets"] == MAX_SCOPE
    # Flow records come as flows end: a SYN-only probe begun before the others comes late and
    # does not pull the window back (the scan goes on 81 s after its latest target).
    early = [
        flow(dst_ip=f"10.0.1.{i}", dst_port=502, state="rejected", payload=0, ts=1000.0 + i)
        for i in range(10)
    ]
    late = [flow(dst_ip="10.0.2.1", dst_port=102, state="syn_sent", payload=0, ts=960.0)]
    more = [
        flow(dst_ip=f"10.0.3.{i}", dst_port=502, state="rejected", payload=0, ts=1090.0 + i)
        for i in range(10)
    ]
    alerts = [a for a in run(early + late + more, rules=NO_SILENCE) if a.rule_id == "ICS-3006"]
    [alert_id] = dict.fromkeys(a.alert_id for a in alerts)
    assert _final(alerts, alert_id).evidence["distinct_targets"] == 21


def test_an_ot_probe_counts_after_a_full_set_of_it_probes() -> None:
    # 30 IT ports probed (the set's cap is 20 for a threshold of 5), then one OT port: an OT scan.
    it_ports = [flow(dst_port=1000 + p, state="syn_sent", payload=0, ts=1000.0 + p / 10) for p in range(30)]
    ot = flow(dst_port=502, state="syn_sent", payload=0, ts=1004.0)
    [alert] = [a for a in run([*it_ports, ot], rules=NO_SILENCE) if a.rule_id == "ICS-3006"]
    assert alert.evidence["ot_targets"] == ["10.0.0.9:502"]


def test_widened_copies_are_newer_versions_for_elasticsearch() -> None:
    # The ES sink indexes alerts with an external version; ES keeps the higher one.
    from ics_monitor.sinks.ecs import EcsMapper, Observer

    mapper = EcsMapper(Observer("sensor-1", "host-1"))
    alerts = run(
        [modbus(3, unit_id=u, ts=1000.0 + u / 10, frame=u + 1) for u in range(248)], rules=NO_SILENCE
    )
    versions = [getattr(mapper.document(a), "version", None) for a in alerts]
    assert all(isinstance(v, int) for v in versions) and versions == sorted(set(versions))


def test_modbus_function_sweep_by_count_and_by_refusals() -> None:
    tried = [modbus(code, ts=1000.0 + code, frame=code) for code in range(30, 42)]
    assert rule_ids(run(tried)) == ["ICS-3002"]
    assert run(tried[:11]) == []
    refused = [
        modbus(code, request=False, exception_code=1, ts=1000.0 + code, frame=code) for code in (41, 42, 43)
    ]
    [alert] = run(refused)
    assert alert.evidence["reason"] == "illegal_function_exceptions"
    assert "10.0.0.9, 3 function codes refused with ILLEGAL FUNCTION: 41, 42, 43." in alert.explanation
    assert "12 distinct function codes requested: 30, 31" in run(tried)[0].explanation
    assert (alert.src_ip, alert.dst_ip) == ("10.0.0.5", "10.0.0.9")
    assert run([modbus(3, request=False, exception_code=2, frame=i) for i in range(5)]) == []


def test_device_identification_enumeration() -> None:
    two = [modbus(43, mei_type=14, server="10.0.0.9"), modbus(17, server="10.0.0.10", frame=2)]
    assert rule_ids(run(two)) == ["ICS-3003"]
    same = [modbus(43, mei_type=14, frame=i) for i in range(5)]
    assert run(same) == []
    assert run([modbus(43, mei_type=13), modbus(43, mei_type=13, server="10.0.0.10")]) == []
    dnp3_reads = [dnp3(1, objects=({"group": 0},), dst=d, frame=d) for d in (10, 11)]
    assert _identification(run(dnp3_reads)) == ["ICS-3003"]
    # Each outstation's attributes read without a baseline is also a DNP3 attribute read.
    assert rule_ids(run(dnp3_reads)).count("ICS-3011") == 2


def _identification(alerts: list[Any]) -> list[str]:
    """Rule ids of the run's alerts but the per-device DNP3 attribute reads (ICS-3011)."""
    return [rule for rule in rule_ids(alerts) if rule != "ICS-3011"]


def _learned(records: list[Any]) -> Baseline:
    learner = BaselineLearner()
    for record in records:
        learner.observe(record)
    return learner.baseline()


def _recon(alerts: list[Any]) -> list[Any]:
    """The sweep and enumeration alerts (ICS-3000..3099 but the per-device ICS-3011) of a run
    against a baseline, which may add deviations."""
    return [a for a in alerts if a.rule_id.startswith("ICS-30") and a.rule_id != "ICS-3011"]


def test_units_a_pair_polled_while_learning_are_no_sweep() -> None:
    # A SCADA server polling the 32 units behind a Modbus gateway, every 5 s.
    def poll(start: float, units: range = range(1, 33)) -> list[Any]:
        return [
            modbus(3, unit_id=u, ts=start + u / 10, frame=int(start) + u, address=0, quantity=4)
            for u in units
        ]

    learned = _learned(poll(1000.0) + poll(1005.0))
    gateway = learned.conversation(("10.0.0.5", "10.0.0.9", "tcp", 502, "modbus"))
    assert gateway is not None and gateway.addresses.ranges == [[1, 32]]
    assert rule_ids(run(poll(2000.0), rules=NO_SILENCE)) == ["ICS-3001"]  # no baseline: a sweep
    assert run(poll(2000.0) + poll(2005.0), baseline=learned, rules=NO_SILENCE) == []
    # The same host walking units it never used: only the new ones count, and the alert says so.
    walk = poll(2000.0, range(1, 49))
    [alert] = _recon(run(walk, baseline=learned, rules=NO_SILENCE))
    assert alert.rule_id == "ICS-3001" and alert.evidence["unit_ids"] == list(range(33, 49))
    assert (
        alert.evidence["baseline"] == "not counted: unit ids this client used with the server while learning"
    )
    assert "16 different unit ids of 10.0.0.9 it never used while learning (threshold 16): 33-48." in (
        alert.explanation
    )
    assert _recon(run(walk[:47], baseline=learned, rules=NO_SILENCE)) == []  # 15 new units: below 16
    # Another client (not learned with this server) walking the same 32 units is a sweep.
    stranger = [modbus(3, unit_id=u, ts=2000.0 + u / 10, frame=u, client="10.0.0.66") for u in range(1, 33)]
    assert "ICS-3001" in rule_ids(run(stranger, baseline=learned, rules=NO_SILENCE))


def test_function_codes_a_pair_used_while_learning_are_no_function_sweep() -> None:
    # A diagnostics tool using 12 function codes, FC 20 always refused (ILLEGAL FUNCTION).
    codes = (1, 2, 3, 4, 5, 6, 7, 8, 11, 15, 16, 20)

    def session(start: float) -> list[Any]:
        records = []
        for code in codes:
            records.append(modbus(code, ts=start + code, frame=int(start) + 2 * code))
            refused = code == 20
            records.append(
                modbus(
                    code,
                    request=False,
                    ts=start + code + 0.1,
                    frame=int(start) + 2 * code + 1,
                    exception_code=1 if refused else None,
                )
            )
        return records + [
            modbus(20, request=False, exception_code=1, ts=start + 30 + i, frame=int(start) + 40 + i)
            for i in range(3)
        ]

    learned = _learned(session(1000.0))
    assert rule_ids(run(session(2000.0), rules=NO_SILENCE)) == ["ICS-3002"]
    assert run(session(2000.0), baseline=learned, rules=NO_SILENCE) == []
    # Twelve codes the pair never used, among routine ones: the alert names only the new ones.
    new = [modbus(code, ts=3000.0 + code / 100, frame=code) for code in range(40, 52)]
    [alert] = _recon(run(session(3000.0) + new, baseline=learned, rules=NO_SILENCE))
    assert alert.evidence["function_codes"] == list(range(40, 52))
    assert (
        "12 distinct function codes requested, none of them used while learning: 40, 41" in alert.explanation
    )
    refused = [modbus(c, request=False, exception_code=1, ts=3000.0 + c, frame=c) for c in (41, 42, 43)]
    [alert] = _recon(run(refused, baseline=learned, rules=NO_SILENCE))
    assert alert.evidence["reason"] == "illegal_function_exceptions"


def test_a_master_polling_its_outstations_is_no_address_sweep_once_learned() -> None:
    # One master, six outstations on a multi-drop line behind one terminal server, polled every 2 s.
    def poll(start: float, addresses: range = range(10, 16)) -> list[Any]:
        return [
            dnp3(1, dst=a, ts=start + a / 100, frame=int(start) + a, objects=({"group": 60, "variation": 1},))
            for a in addresses
        ]

    learned = _learned(poll(1000.0) + poll(1002.0))
    line = learned.conversation(("10.0.0.5", "10.0.0.9", "tcp", 20000, "dnp3"))
    assert line is not None and line.addresses.ranges == [[10, 15]]
    assert "link_addresses: [[10, 15]]" in learned.to_yaml()
    assert rule_ids(run(poll(2000.0), rules=NO_SILENCE)) == ["ICS-3005"]  # no baseline: a sweep
    assert run(poll(2000.0) + poll(2002.0), baseline=learned, rules=NO_SILENCE) == []
    # Link-only probes of addresses the master never used (DNP3_ENUMERATE's pattern) still count.
    probes = [dnp3(None, dst=a, ts=2010.0 + a / 10, frame=a) for a in range(10, 25)]
    first, *_, last = _recon(run(poll(2000.0) + probes, baseline=learned, rules=NO_SILENCE))
    assert first.rule_id == "ICS-3005" and first.evidence["link_addresses"] == [16, 17, 18, 19, 20]
    assert last.alert_id == first.alert_id and last.evidence["link_addresses"] == list(range(16, 25))
    assert first.evidence["baseline"].startswith("not counted: link addresses")
    assert (
        "5 different link addresses it never used with their server while learning: 16-20."
        in first.explanation
    )


def test_dnp3_requests_owed_no_answer_and_known_stations_are_no_sweep() -> None:
    """Found in review: requests no answer is owed to, an outstation's link keep-alives to its
    masters, a master that polls rarely but keeps its links alive: none is a sweep."""
    # CONFIRM and DIRECT_OPERATE_NR in unconfirmed link frames, broadcasts and the self address:
    # never answered by design.
    unconfirmed = {"function_code": 4, "function": "UNCONFIRMED_USER_DATA", "prm": True}
    owed_nothing = [
        *(
            dataclasses.replace(dnp3(0, dst=a, ts=1000.0 + a / 10, frame=a), link=unconfirmed)
            for a in range(10, 16)
        ),
        *(
            dataclasses.replace(dnp3(6, dst=a, ts=1001.0 + a / 10, frame=20 + a), link=unconfirmed)
            for a in range(10, 16)
        ),
        *(dnp3(2, dst=0xFFFC + n, ts=1002.0 + n, frame=60 + n) for n in range(4)),
    ]
    assert _recon(run(owed_nothing, rules=NO_SILENCE)) == []
    # Found in the second review: the same CONFIRMs in confirmed link frames are owed a link ACK,
    # which every live address sends: a sweep that way still counts.
    confirmed = {"function_code": 3, "function": "CONFIRMED_USER_DATA", "prm": True}
    probes = [
        dataclasses.replace(dnp3(0, dst=a, ts=1000.0 + a / 10, frame=a), link=confirmed) for a in range(30)
    ]
    acks = [_answer(p) for p in probes if 10 <= p.dst < 22]
    assert rule_ids(_recon(run(sorted([*probes, *acks], key=lambda r: r.ts), rules=NO_SILENCE))) == [
        "ICS-3005"
    ]
    # An outstation (10.0.0.9, address 10) keeping its links to five masters (addresses 1-5) alive:
    # it answered each master's requests at the application layer, so each address is a live station.
    masters = [dnp3(1, src=m, dst=10, ts=1000.0 + m, frame=m) for m in range(1, 6)]
    keepalives = [
        dnp3(None, src=10, dst=m, ts=1010.0 + m, frame=50 + m, client="10.0.0.9", server="10.0.0.5")
        for m in range(1, 6)
    ]
    answered = [_answer(m) for m in masters]
    assert _recon(run(sorted([*masters, *answered, *keepalives], key=lambda r: r.ts), rules=NO_SILENCE)) == []
    # Requests alone (any host may send them, with any source address) prove nothing.
    assert rule_ids(_recon(run([*masters, *keepalives], rules=NO_SILENCE))) == ["ICS-3005"]
    # A master polling six outstations every 120 s (each answers), link status every 10 s between.
    quiet: list[Any] = []
    for n in range(3):
        for a in range(10, 16):
            poll = dnp3(1, dst=a, ts=1000.0 + 120 * n + a / 100, frame=1000 * n + a)
            quiet += [poll, _answer(poll)]
    for t in range(1, 30):
        quiet += [
            dnp3(None, dst=a, ts=1000.0 + 10 * t + a / 100, frame=5000 + 10 * t + a) for a in range(10, 16)
        ]
    assert run(sorted(quiet, key=lambda r: r.ts), rules=NO_SILENCE) == []


def test_a_learned_master_sweeping_answering_addresses_is_a_sweep() -> None:
    """Found in review: a responder that answers every address at the application layer hid a
    sweep.  With a baseline that knows the pair, the addresses it never used count, answered or not."""
    learned = _learned([dnp3(1, dst=10, frame=1), dnp3(1, dst=11, frame=2)])
    reads = [dnp3(1, dst=a, ts=2000.0 + a / 10, frame=100 + a) for a in range(0, 20)]
    answered = sorted([*reads, *(_answer(r) for r in reads)], key=lambda r: r.ts)
    assert run(answered, rules=NO_SILENCE) == []  # no baseline: every address answered
    alert = _recon(run(answered, baseline=learned, rules=NO_SILENCE))[-1]
    assert alert.rule_id == "ICS-3005" and alert.evidence["link_addresses"] == [*range(0, 10), *range(12, 20)]
    assert "18 different link addresses it never used with their server while learning: 0-9, 12-19." in (
        alert.explanation
    )
    # Found in the second review: a baseline learned before link addresses were (none known for
    # the pair) leaves the answers to decide: a master polling outstations that answer is quiet.
    older = _learned([dnp3(1, dst=10, frame=1)])
    for conversation in older.conversations.values():
        conversation.addresses = type(conversation.addresses)()
    polls = [dnp3(1, dst=a, ts=3000.0 + a / 10, frame=200 + a) for a in range(10, 16)]
    assert (
        _recon(run(sorted([*polls, *(_answer(p) for p in polls)], key=lambda r: r.ts), baseline=older)) == []
    )


def test_identification_a_client_read_while_learning_is_no_enumeration() -> None:
    modbus_reads = [
        modbus(43, mei_type=14, unit_id=1, frame=1),
        modbus(43, mei_type=14, unit_id=2, frame=2, ts=1001.0),
    ]
    dnp3_reads = [dnp3(1, objects=({"group": 0},), dst=d, frame=d, ts=1000.0 + d) for d in (10, 11)]
    learned = _learned(modbus_reads + dnp3_reads)
    assert rule_ids(run(modbus_reads, rules=NO_SILENCE)) == ["ICS-3003"]
    assert run(modbus_reads + dnp3_reads, baseline=learned, rules=NO_SILENCE) == []
    # Per device: FC 17 of a unit whose identification it read is routine, a unit it never read counts.
    others = [
        modbus(17, unit_id=1, frame=5, ts=1005.0),
        modbus(43, mei_type=14, unit_id=3, frame=6, ts=1006.0),
        modbus(17, unit_id=4, frame=7, ts=1007.0),
    ]
    [alert] = _recon(run(modbus_reads + others, baseline=learned, rules=NO_SILENCE))
    assert alert.evidence["devices"] == ["10.0.0.9/3-4"]
    assert "identification of 2 devices it never read while learning: 10.0.0.9/3" in alert.explanation
    # Found in review: a client that read unit 1's identification once while learning and polled
    # units 1-32 reads the identification of all 32 afterwards: 31 devices it never read.
    polls = [modbus(3, unit_id=u, frame=10 + u, ts=1000.0 + u, address=0, quantity=1) for u in range(1, 33)]
    gateway = _learned([modbus(43, mei_type=14, unit_id=1, frame=1), *polls])
    walk = [modbus(43, mei_type=14, unit_id=u, frame=100 + u, ts=2000.0 + u / 10) for u in range(1, 33)]
    last = _recon(run(walk, baseline=gateway, rules=NO_SILENCE))[-1]
    assert last.rule_id == "ICS-3003" and last.evidence["distinct_devices"] == 31
    assert last.evidence["devices"] == ["10.0.0.9/2-32"]  # in numeric order, as runs
    # A DNP3 outstation the master polled (class 0) but never read the attributes of counts.
    polled = _learned([dnp3(1, objects=({"group": 60},), dst=d, frame=d) for d in (10, 11)])
    assert rule_ids(_recon(run(dnp3_reads, baseline=polled, rules=NO_SILENCE))) == ["ICS-3003"]
    # ... and so does one whose attributes it never read, though it read another's.
    one = _learned(dnp3_reads[:1])
    assert rule_ids(_recon(run([*dnp3_reads, dnp3_reads[1]], baseline=one, rules=NO_SILENCE))) == []
    assert [
        a.evidence["devices"]
        for a in _recon(
            run(
                [dnp3_reads[1], dnp3(1, objects=({"group": 0},), dst=12, frame=9, ts=1003.0)],
                baseline=one,
                rules=NO_SILENCE,
            )
        )
    ] == [["10.0.0.9/11-12"]]


def test_s7_szl_enumeration_without_and_with_a_baseline() -> None:
    from ics_monitor.inventory.baseline import BaselineLearner

    reads = [
        s7(7, userdata=userdata(4, 1), szl_id=szl, frame=i) for i, szl in enumerate((0x11, 0x1C), start=1)
    ]
    [alert] = run(reads)
    assert alert.rule_id == "ICS-3004" and alert.evidence["szl_ids"] == ["0x0011", "0x001c"]
    assert run(reads[:1] * 3) == []
    learner = BaselineLearner()
    learner.observe(s7(1, function_code=0x04))
    assert "ICS-3004" not in rule_ids(run(reads, baseline=learner.baseline()))
    stranger = [s7(7, userdata=userdata(4, 1), szl_id=szl, client="10.0.0.66") for szl in (0x11, 0x1C)]
    assert "ICS-3004" in rule_ids(run(stranger, baseline=learner.baseline()))


def test_dnp3_address_sweep_counts_link_only_probes() -> None:
    probes = [dnp3(None, dst=d, frame=d + 1, ts=1000.0 + d) for d in range(5)]
    [alert] = run(probes)
    assert alert.rule_id == "ICS-3005" and alert.evidence["link_addresses"] == [0, 1, 2, 3, 4]
    assert run(probes[:4]) == []


def _answer(request: Any, delay: float = 0.05, **fields: Any) -> Any:
    """The outstation's answer to a DNP3 request (an application response, or a link-layer one)."""
    code = 129 if request.function_code is not None else None
    return dnp3(
        code,
        request=False,
        src=request.dst,
        dst=request.src,
        ts=request.ts + delay,
        frame=request.frame + 1000,
        **fields,
    )


def test_dnp3_address_sweep_counts_only_addresses_that_never_answer() -> None:
    # A master polling twelve outstations on one line (one terminal server), every 2 s, each
    # answering: no baseline needed to tell it from a sweep.
    polls = [
        dnp3(1, dst=a, ts=1000.0 + 2 * n + a / 100, frame=100 * n + a, objects=({"group": 60},))
        for n in range(30)
        for a in range(10, 22)
    ]
    answered = sorted([*polls, *(_answer(p) for p in polls)], key=lambda r: r.ts)
    assert run(answered, rules=NO_SILENCE) == []
    # Parallel polling (every request out before the first answer) is no sweep either.
    burst = [dnp3(1, dst=a, ts=1000.0 + a / 1000, frame=a) for a in range(10, 22)]
    assert (
        run(sorted([*burst, *(_answer(r, delay=0.5) for r in burst)], key=lambda r: r.ts), rules=NO_SILENCE)
        == []
    )
    # An answer later than answer_timeout (5 s) comes too late: the address counted.
    late = sorted([*burst, *(_answer(r, delay=6.0) for r in burst)], key=lambda r: r.ts)
    assert rule_ids(run(late, rules=NO_SILENCE)) == ["ICS-3005"]
    # A link status sweep of 0..29: the twelve live outstations answer at the link layer, which
    # exchanges no data (some stations answer any address): every probe counts, and the alert
    # names, as what the sweep found, the addresses that answered at all.
    sweep = [dnp3(None, dst=a, ts=2000.0 + a / 10, frame=5000 + a) for a in range(0, 30)]
    live = [_answer(r) for r in sweep if 10 <= r.dst < 22]
    alert = run(sorted([*sweep, *live], key=lambda r: r.ts), rules=NO_SILENCE)[-1]
    assert alert.rule_id == "ICS-3005"
    assert alert.evidence["link_addresses"] == list(range(30))
    assert alert.evidence["answered_addresses"] == list(range(10, 22))
    assert "30 different link addresses that sent it no application data within 5 s: 0-29." in (
        alert.explanation
    )
    assert "Addresses that answered at all: 10-21." in alert.explanation
    # An application-layer sweep (READ class 0) where only the twelve outstations answer counts
    # the other eighteen.
    reads = [dnp3(1, dst=a, ts=3000.0 + a / 10, frame=7000 + a, objects=({"group": 60},)) for a in range(30)]
    data = [_answer(r) for r in reads if 10 <= r.dst < 22]
    alert = run(sorted([*reads, *data], key=lambda r: r.ts), rules=NO_SILENCE)[-1]
    assert alert.evidence["link_addresses"] == [*range(0, 10), *range(22, 30)]
    # The evidence names at most 64 addresses that answered (state per host is capped too).
    wide = [dnp3(None, dst=a, ts=4000.0 + a / 100, frame=8000 + a) for a in range(200)]
    echoes = [_answer(r) for r in wide[:100]]
    alert = run(sorted([*wide, *echoes], key=lambda r: r.ts), rules=NO_SILENCE)[-1]
    assert alert.evidence["answered_addresses"] == list(range(64))
    # Outstations that answered the master earlier (within the window) never count.
    probes = [dnp3(None, dst=a, ts=1061.0 + a / 10, frame=9000 + a) for a in range(10, 22)]
    assert run([*answered, *probes], rules=NO_SILENCE) == []


def test_ot_port_scan_from_flow_records() -> None:
    failed = [
        flow(dst_ip=f"10.0.1.{i}", dst_port=502, state="rejected", payload=0, ts=1000.0 + i) for i in range(5)
    ]
    [alert] = run(failed)
    assert alert.rule_id == "ICS-3006" and alert.src_ip == "10.0.0.5" and alert.dst_ip is None
    assert len(alert.evidence["ot_targets"]) == 5
    it_only = [
        flow(dst_port=p, state="syn_sent", payload=0, ts=1000.0 + p / 100) for p in (80, 443, 22, 25, 8081)
    ]
    assert run(it_only) == []
    assert rule_ids(run([*it_only, flow(dst_port=102, state="syn_sent", payload=0, ts=1001.0)])) == [
        "ICS-3006"
    ]
    ok = [flow(dst_ip=f"10.0.1.{i}", state="closed", ts=1000.0 + i) for i in range(10)]
    assert run(ok) == []


def test_learned_service_checks_are_no_scan() -> None:
    """A monitoring system's or load balancer's TCP checks (connect, reset) of services: a scan
    cold, quiet against a baseline that saw them accepted (no ICS-3006, no ICS-5002); refused
    knocks are never learned, and knocks at other services still count."""

    def check(ip: str, port: int, ts: float, accepted: bool = True) -> Any:
        record = flow(dst_ip=ip, dst_port=port, state="reset", payload=0, ts=ts, packets_to_server=3)
        if accepted:
            return dataclasses.replace(record, tcp_flags_to_client=("SYN", "ACK"))
        return dataclasses.replace(
            record, state="rejected", packets_to_client=1, tcp_flags_to_client=("RST",)
        )

    targets = [("10.0.1.1", 502), ("10.0.1.1", 80), ("10.0.1.2", 102), ("10.0.1.2", 44818), ("10.0.1.3", 22)]
    rounds = [check(ip, port, 1000.0 + 10 * r + i) for r in range(3) for i, (ip, port) in enumerate(targets)]
    assert "ICS-3006" in rule_ids(run(rounds))
    learner = BaselineLearner()
    for record in rounds:
        learner.observe_flow(record)
    baseline = learner.baseline()
    later = [dataclasses.replace(r, ts_start=r.ts_start + 3600, ts_end=r.ts_end + 3600) for r in rounds]
    assert run(later, baseline=baseline) == []
    # Refused ones (a closed port) are no conversation: a scan when they come again.
    refused = [check(ip, port, 1000.0 + i, accepted=False) for i, (ip, port) in enumerate(targets)]
    learner = BaselineLearner()
    for record in refused:
        learner.observe_flow(record)
    assert "ICS-3006" in rule_ids(run(refused, baseline=learner.baseline()))
    # Knocks at five services never checked while learning are a scan.
    others = [check("10.0.1.9", port, 5000.0 + i) for i, port in enumerate((502, 102, 20000, 44818, 4840))]
    assert "ICS-3006" in rule_ids(run(others, baseline=baseline))


def test_udp_scan_counts_unanswered_probes_with_an_ot_port_among_them() -> None:
    def probe(ip: str, port: int, ts: float, back: int = 0, sent: int = 1) -> Any:
        return flow(
            dst_ip=ip,
            dst_port=port,
            transport="udp",
            state=None,
            payload=0,
            ts=ts,
            packets_to_server=sent,
            packets_to_client=back,
        )

    targets = [(f"10.0.1.{h}", port) for h in (1, 2) for port in (161, 20000, 47808)]
    probes = [probe(ip, port, 1000.0 + i) for i, (ip, port) in enumerate(targets)]
    alert, wider_alert = run(probes)
    assert alert.rule_id == "ICS-3009" and alert.src_ip == "10.0.0.5" and alert.dst_ip is None
    assert alert.evidence["distinct_targets"] == 5 and alert.evidence["hosts"] == 2
    # Reported when the fifth target comes; 10.0.1.2:47808 after it widens the same alert.
    assert alert.evidence["ot_targets"] == ["10.0.1.1:20000", "10.0.1.1:47808", "10.0.1.2:20000"]
    assert wider_alert.alert_id == alert.alert_id and wider_alert.evidence["distinct_targets"] == 6
    assert wider_alert.evidence["ot_targets"][-1] == "10.0.1.2:47808"
    assert run(probes[:4]) == []
    # Answered datagrams, one-way streams and broadcast discovery are not probes.
    assert run([probe(ip, port, 1000.0 + i, back=1) for i, (ip, port) in enumerate(targets)]) == []
    assert run([probe(ip, port, 1000.0 + i, sent=50) for i, (ip, port) in enumerate(targets)]) == []
    broadcasts = ["255.255.255.255", "10.0.1.255", "224.0.0.251", "239.255.255.250", "ff02::1"]
    assert run([probe(ip, 47808, 1000.0 + i) for i, ip in enumerate(broadcasts)]) == []
    # IT ports only: not an OT scan, until an OT port comes.
    it_only = [probe("10.0.1.1", port, 1000.0 + i) for i, port in enumerate((53, 123, 161, 514, 1900))]
    assert run(it_only) == []
    assert rule_ids(run([*it_only, probe("10.0.1.2", 20000, 1010.0)])) == ["ICS-3009"]
    # With a baseline, a port the source talked to while learning is no probe target (a silent
    # peer): 4 of the 6 left.  Its other ports, and other sources, still count.
    learner = BaselineLearner()
    for ip in ("10.0.1.1", "10.0.1.2"):
        learner.observe_flow(probe(ip, 20000, 900.0, back=1, sent=2))
    assert "ICS-3009" not in rule_ids(run(probes, baseline=learner.baseline()))
    wider = [*probes, probe("10.0.1.1", 502, 1006.0)]
    assert "ICS-3009" in rule_ids(run(wider, baseline=learner.baseline()))
    stranger = [dataclasses.replace(p, src_ip="10.0.0.66") for p in probes]
    assert "ICS-3009" in rule_ids(run(stranger, baseline=learner.baseline()))
    # Each more than the window after the last: a trickle does not add up; a slow scan does.
    assert run([probe(ip, port, 1000.0 + 601 * i) for i, (ip, port) in enumerate(targets)]) == []
    assert "ICS-3009" in rule_ids(
        run([probe(ip, port, 1000.0 + 200 * i) for i, (ip, port) in enumerate(targets)])
    )
    # Seen through a SPAN that mirrors the path twice: three datagrams each, and as many copies
    # beside them, are three probes sent (over the limit of 3 only by the copies).
    doubled = [
        dataclasses.replace(probe(ip, port, 1000.0 + i, sent=6), mirror_copies_to_server=3)
        for i, (ip, port) in enumerate(targets)
    ]
    assert rule_ids(run(doubled)) == ["ICS-3009"]
    assert run([dataclasses.replace(p, mirror_copies_to_server=2) for p in doubled]) == []


def test_icmp_sweep_counts_only_unanswered_requests() -> None:
    def ping(ip: str, ts: float, sent: tuple[int, ...] = (8,), back: tuple[int, ...] = ()) -> Any:
        return flow(
            dst_ip=ip,
            dst_port=0,
            transport="icmp",
            state=None,
            payload=0,
            ts=ts,
            packets_to_server=1,
            packets_to_client=len(back),
            icmp_types=(sent, back),
        )

    sweep = [ping(f"10.0.1.{i}", 1000.0 + i / 10) for i in range(1, 17)]
    [alert] = run(sweep)
    assert alert.rule_id == "ICS-3010" and alert.src_ip == "10.0.0.5" and alert.dst_ip is None
    assert alert.evidence["distinct_targets"] == 16 and alert.evidence["targets"][:3] == [
        "10.0.1.1",
        "10.0.1.2",
        "10.0.1.3",
    ]
    assert "each within 600 s of the last" in alert.explanation
    assert run(sweep[:15]) == []
    # A monitoring server pinging live devices: every ping answered.
    assert run([ping(f"10.0.1.{i}", 1000.0 + i / 10, back=(0,)) for i in range(1, 60)]) == []
    # Timestamp requests (nmap -PP) count; an echo reply alone or an error message does not.
    assert rule_ids(run([ping(f"10.0.1.{i}", 1000.0 + i / 10, sent=(13,)) for i in range(1, 17)])) == [
        "ICS-3010"
    ]
    assert run([ping(f"10.0.1.{i}", 1000.0 + i / 10, sent=(0,)) for i in range(1, 17)]) == []
    assert run([ping(f"10.0.1.{i}", 1000.0 + i / 10, sent=(3, 11)) for i in range(1, 17)]) == []
    # An echo answered only by a timestamp reply is still an unanswered echo.
    assert rule_ids(run([ping(f"10.0.1.{i}", 1000.0 + i / 10, back=(14,)) for i in range(1, 17)])) == [
        "ICS-3010"
    ]
    v6 = [
        flow(
            dst_ip=f"2001:db8::{i:x}",
            dst_port=0,
            transport="ipv6-icmp",
            state=None,
            payload=0,
            ts=1000.0 + i / 10,
            packets_to_client=0,
            icmp_types=((128,), ()),
        )
        for i in range(1, 17)
    ]
    assert rule_ids(run(v6)) == ["ICS-3010"]


# -- availability ----------------------------------------------------------------------------------------


def test_error_storm() -> None:
    errors = [modbus(3, request=False, exception_code=2, ts=1000.0 + i / 10, frame=i) for i in range(20)]
    [alert] = run(errors)
    assert alert.rule_id == "ICS-4001" and alert.evidence["errors"] == 20
    # The source is the client whose requests drew the errors, not the answering device.
    assert (alert.src_ip, alert.dst_ip, alert.dst_port) == (CLIENT, SERVER, 502)
    assert alert.explanation.startswith(f"{SERVER} answered {CLIENT} with 20 modbus error responses")
    assert run(errors[:19]) == []
    slow = [modbus(3, request=False, exception_code=2, ts=1000.0 + i, frame=i) for i in range(40)]
    assert run(slow) == []
    dnp3_errors = [dnp3(129, request=False, iin=0x0001, ts=1000.0 + i / 10, frame=i) for i in range(20)]
    assert rule_ids(run(dnp3_errors)) == ["ICS-4001"]
    s7_errors = [s7(2, request=False, error_class=0x85, ts=1000.0 + i / 10, frame=i) for i in range(20)]
    assert rule_ids(run(s7_errors)) == ["ICS-4001"]


def test_request_flood() -> None:
    flood = [modbus(3, address=1, quantity=1, ts=1000.0 + i / 200, frame=i) for i in range(1000)]
    alerts = run(flood)
    assert rule_ids(alerts) == ["ICS-4002"]
    assert alerts[0].evidence["requests"] == 1000
    # 1000 requests 5 ms apart: 4.995 s from the first to the last, not the 10 s window.
    assert alerts[0].evidence["seconds"] == 4.995 and alerts[0].evidence["rate_per_second"] == 200.2
    assert "within 4.995 s (200.2/s; threshold 1000 per 10.0 s" in alerts[0].explanation
    polling = [modbus(3, address=0, quantity=1, ts=1000.0 + i / 50, frame=i) for i in range(3000)]
    assert run(polling, rules=NO_SILENCE) == []


def test_write_flood() -> None:
    """Writes count on their own: 300 within 10 s (a setpoint forced 80 times a second by a host
    without a learned rate) is a flood, in Modbus, DNP3 and S7 alike; reads at that rate are not."""
    writes = [modbus(6, address=1, values=(1,), ts=1000.0 + i / 80, frame=i) for i in range(300)]
    [alert] = run(writes)
    assert alert.rule_id == "ICS-4002" and alert.evidence["counted"] == "writes"
    assert alert.evidence["requests"] == 300 and "sent 300 modbus write requests" in alert.explanation
    assert run(writes[:299]) == []
    reads = [modbus(3, address=1, quantity=1, ts=1000.0 + i / 80, frame=i) for i in range(800)]
    assert run(reads, rules=NO_SILENCE) == []
    operates = [dnp3(5, ts=1000.0 + i / 80, frame=i, sequence=i % 16) for i in range(300)]
    assert "ICS-4002" in rule_ids(run(operates, rules=NO_SILENCE))
    s7_writes = [s7(1, function_code=0x05, ts=1000.0 + i / 80, frame=i) for i in range(300)]
    assert rule_ids(run(s7_writes, rules=NO_SILENCE)) == ["ICS-4002"]


def _learned(records: list[object]) -> Baseline:
    learner = BaselineLearner()
    for record in records:
        learner.observe(record)
    return learner.baseline()


def test_learned_peaks_per_window() -> None:
    """The learner keeps the most requests and error responses seen in one 10 s window (each
    started by the first record after the last one ended), as the detectors count them."""
    polls = [modbus(3, address=0, quantity=1, ts=1000.0 + i / 60, frame=i) for i in range(1200)]  # 60/s
    refused = [modbus(3, request=False, exception_code=2, ts=1000.0 + i, frame=i) for i in range(30)]  # 1/s
    baseline = _learned([*polls, *refused])
    [conversation] = baseline.conversations.values()
    assert conversation.peaks == [601, 11]  # 0..10 s inclusive: 601 polls, 11 refusals
    data = conversation.to_dict()
    assert (data["peak_requests_10s"], data["peak_errors_10s"]) == (601, 11)
    assert Baseline.from_dict(baseline.to_dict()).conversations[conversation.key].peaks == [601, 11]


def test_flood_and_error_storm_thresholds_follow_the_learned_peaks() -> None:
    """A client that learned to poll at 120/s (an IO gateway) is no flood at 150/s, but is past
    twice its peak; one that learned a steady drizzle of exceptions (a poll of an unmapped
    register) is no error storm at that rate, but is at twice it.  Without a baseline the
    configured thresholds hold."""
    fast = [modbus(3, address=0, quantity=1, ts=1000.0 + i / 120, frame=i) for i in range(1300)]
    refusing = [modbus(3, request=False, exception_code=2, ts=1000.0 + i / 3, frame=i) for i in range(40)]
    baseline = _learned([*fast, *refusing])
    [conversation] = baseline.conversations.values()
    assert conversation.peaks == [1201, 31]

    def flood(rate: float) -> list[object]:
        return [
            modbus(3, address=0, quantity=1, ts=5000.0 + i / rate, frame=i) for i in range(int(rate * 10))
        ]

    assert [
        a.rule_id for a in run(flood(150), rules=NO_SILENCE, baseline=baseline) if a.rule_id == "ICS-4002"
    ] == []
    [alert] = [a for a in run(flood(300), rules=NO_SILENCE, baseline=baseline) if a.rule_id == "ICS-4002"]
    assert (alert.evidence["threshold"], alert.evidence["learned_peak"], alert.evidence["requests"]) == (
        2402,
        1201,
        2402,
    )
    assert "threshold 2402 per 10.0 s, learned peak 1201 per 10 s" in alert.explanation
    [plain] = [a for a in run(flood(150), rules=NO_SILENCE) if a.rule_id == "ICS-4002"]
    assert plain.evidence["threshold"] == 1000 and "no learned rate" in plain.explanation

    def storm(per_second: float) -> list[object]:
        return [
            modbus(3, request=False, exception_code=2, ts=5000.0 + i / per_second, frame=i)
            for i in range(int(per_second * 10))
        ]

    assert [a for a in run(storm(5), rules=NO_SILENCE, baseline=baseline) if a.rule_id == "ICS-4001"] == []
    [storm_alert] = [a for a in run(storm(7), rules=NO_SILENCE, baseline=baseline) if a.rule_id == "ICS-4001"]
    assert (storm_alert.evidence["threshold"], storm_alert.evidence["learned_peak"]) == (62, 31)
    assert [a.rule_id for a in run(storm(5), rules=NO_SILENCE) if a.rule_id == "ICS-4001"] == ["ICS-4001"]
    # A client polling the server on two ports is counted as one by the detector: the learned
    # peaks add up (600 + 600 per 10 s, so 2400 with the headroom).
    two_ports = [
        dataclasses.replace(m, dst_port=port, flow_id=f"f{port}")
        for port in (502, 503)
        for m in [modbus(3, address=0, quantity=1, ts=1000.0 + i / 60, frame=i) for i in range(600)]
    ]
    two = _learned(two_ports)
    assert sorted(c.peaks[0] for c in two.conversations.values()) == [600, 600]
    assert [a for a in run(flood(220), rules=NO_SILENCE, baseline=two) if a.rule_id == "ICS-4002"] == []
    # Another client of the same server learned nothing: the configured threshold.
    other = [
        modbus(3, address=0, quantity=1, ts=5000.0 + i / 150, frame=i, client="10.0.0.77")
        for i in range(1500)
    ]
    assert [a.rule_id for a in run(other, rules=NO_SILENCE, baseline=baseline)].count("ICS-4002") == 1


def test_a_learned_slow_client_floods_below_the_fixed_threshold() -> None:
    """An HMI that wrote 5 times a second while learning (peak 51 per 10 s) writing 90 times a
    second is a flood (threshold: its peak x 2, raised to the floor of 300), though under the
    1000 a client without a learned rate needs; at 25 a second it is not."""
    slow = [modbus(6, address=1, values=(1,), ts=1000.0 + i / 5, frame=i) for i in range(300)]
    baseline = _learned(slow)
    [conversation] = baseline.conversations.values()
    assert conversation.peaks[0] == 51

    def writes(rate: float) -> list[object]:
        return [
            modbus(6, address=1, values=(1,), ts=5000.0 + i / rate, frame=i) for i in range(int(rate * 10))
        ]

    [alert] = [
        a
        for a in {a.alert_id: a for a in run(writes(90), rules=NO_SILENCE, baseline=baseline)}.values()
        if a.rule_id == "ICS-4002"
    ]
    assert (alert.evidence["threshold"], alert.evidence["learned_peak"], alert.evidence["requests"]) == (
        300,
        51,
        300,
    )
    assert [a for a in run(writes(25), rules=NO_SILENCE, baseline=baseline) if a.rule_id == "ICS-4002"] == []
    # An S7 program upload in chunks from a learned engineering station: the transfer rules' business.
    reads = [s7(1, function_code=0x04, ts=1000.0 + i / 2, frame=i) for i in range(100)]
    learned = _learned(reads)
    upload = [s7(1, function_code=0x1E, ts=5000.0 + i / 100, frame=i) for i in range(900)]
    assert [a for a in run(upload, rules=NO_SILENCE, baseline=learned) if a.rule_id == "ICS-4002"] == []
    polls = [s7(1, function_code=0x04, ts=5000.0 + i / 100, frame=i) for i in range(900)]
    assert rule_ids(run(polls, rules=NO_SILENCE, baseline=learned)) == ["ICS-4002"]


def test_connection_flood_per_ot_service() -> None:
    """500 TCP connections to one OT service within 10 s from flow records (in the order flows
    end, not begin); not on IT ports unless an OT protocol was identified there; not flows seen
    without their SYN; a connection-per-poll client stays under."""

    def connections(count: int, *, port: int = 502, src: str = CLIENT, every: float = 0.01) -> list[Any]:
        records = [flow(dst_port=port, src_ip=src, payload=0, ts=2000.0 + i * every) for i in range(count)]
        # Ended in the reverse order within each second: the rate still comes from their starts.
        per_second = max(1, int(1 / every))
        return [r for i in range(0, count, per_second) for r in records[i : i + per_second][::-1]]

    [alert] = run(connections(500))
    assert alert.rule_id == "ICS-4005" and alert.src_ip == CLIENT and alert.dst_port == 502
    assert (alert.evidence["connections"], alert.evidence["seconds"], alert.evidence["rate_per_second"]) == (
        500,
        4.99,
        100.2,
    )
    assert alert.evidence["sources"] == [f"{CLIENT} (500)"]
    assert run(connections(499)) == []
    assert run(connections(500, every=0.05)) == []  # 500 over 25 s: two windows
    assert run(connections(600, port=8080)) == []  # an IT port
    identified = [flow(dst_port=8080, app_protocol="modbus", ts=1990.0), *connections(500, port=8080)]
    assert rule_ids(run(identified)) == ["ICS-4005"]
    midstream = [dataclasses.replace(r, tcp_flags_to_server=("ACK",)) for r in connections(600)]
    assert run(midstream) == []
    # Spoofed sources count together; the alert names no single source.
    spoofed = [
        dataclasses.replace(r, src_ip=f"10.9.{i // 250}.{i % 250 + 1}")
        for i, r in enumerate(connections(500))
    ]
    [alert] = run(spoofed)
    assert alert.src_ip is None and alert.evidence["distinct_sources"] == "32+"


def _poll(i: int, answered: bool) -> list[object]:
    request = modbus(3, address=0, quantity=1, ts=1000.0 + 2 * i, frame=2 * i + 1)
    if not answered:
        return [request]
    return [
        request,
        modbus(3, request=False, address=0, quantity=1, values=(0,), ts=1000.5 + 2 * i, frame=2 * i + 2),
    ]


def test_device_stops_answering() -> None:
    records = [r for i in range(5) for r in _poll(i, True)] + [
        r for i in range(5, 15) for r in _poll(i, False)
    ]
    [alert] = run(records)
    assert alert.rule_id == "ICS-4003"
    assert alert.evidence["unanswered_requests"] == 9 and alert.evidence["silent_seconds"] == 16.0
    # A short outage (the master retries, the device answers again) is not reported.
    short = [r for i in range(30) for r in _poll(i, i % 10 not in (3, 4, 5, 6, 7))]
    assert run(short) == []
    # Requests nobody answers by design do not count (unit 0 broadcasts alert as such, nothing else).
    broadcasts = [modbus(6, unit_id=0, address=1, values=(1,), ts=1000.0 + i, frame=i) for i in range(30)]
    assert rule_ids(run(broadcasts)) == ["ICS-1308"]
    confirms = [dnp3(0, ts=1000.0 + i, frame=i) for i in range(30)]
    assert run(confirms) == []
    # A server never seen answering: its flow's record says whether it sent anything at all.  Its
    # TCP stack did (the handshake, ACKs): a hung application, or a man in the middle dropping the
    # requests.  Nothing came back: a capture of one direction, which says nothing of the device.
    unanswered = [modbus(3, address=0, quantity=1, ts=1000.0 + 2 * i, frame=i + 1) for i in range(15)]
    record = dataclasses.replace(flow(flow_id="f-modbus", app_protocol="modbus", ts=999.0), ts_end=1030.0)
    [alert] = run([*unanswered, record])
    assert alert.rule_id == "ICS-4003" and alert.evidence["unanswered_requests"] == 15
    assert alert.frames == (1, 15) and alert.evidence["last_answer_ts"] is None
    one_way = dataclasses.replace(record, packets_to_client=0, payload_bytes_to_client=0)
    assert run([*unanswered, one_way]) == []
    # Requests to an IP broadcast address are answered, if at all, from the devices' addresses.
    broadcast = [
        dataclasses.replace(dnp3(1, ts=1000.0 + i, frame=i), dst_ip="255.255.255.255") for i in range(30)
    ]
    assert [a for a in run(broadcast) if a.rule_id == "ICS-4003"] == []


def _gateway(cycles: int, answer: Any, *, units: tuple[int, ...] = (1, 2), paired: bool = True) -> list[Any]:
    """A Modbus/TCP gateway's units polled once a second each; ``answer(cycle, unit)`` says how
    the request is answered: None (not at all), a unit id (a normal answer naming that unit), or
    (unit, exception code).  Paired answers carry their request's frame, as the dissector's do."""
    records: list[Any] = []
    frame = 0
    asked: set[int] = set()
    echoed: set[int] = set()  # units that answered as themselves
    for cycle in range(cycles):
        for unit in units:
            frame += 1
            ts = 1000.0 + cycle + unit / 10
            request = modbus(3, unit_id=unit, address=0, quantity=1, ts=ts, frame=frame)
            records.append(request)
            asked.add(unit)
            how = answer(cycle, unit)
            if how is None:
                continue
            answering, exception = how if isinstance(how, tuple) else (how, None)
            frame += 1
            response = modbus(
                3,
                request=False,
                unit_id=answering,
                values=None if exception else (0,),
                exception_code=exception,
                ts=ts + 0.05,
                frame=frame,
                # As the dissector pairs them: by unit and transaction id, or an answer under
                # another unit id to a request to 255 or 0, or under a unit the flow never asked
                # to a unit that never answered as itself (``modbus.response_unit_mismatch``).
                request_frame=request.frame
                if paired
                and (answering == unit or unit in (0, 255) or (answering not in asked and unit not in echoed))
                else None,
            )
            records.append(dataclasses.replace(response, transaction_id=request.transaction_id))
            if answering == unit:
                echoed.add(unit)
    return records


def _stopped(alerts: list[Any]) -> list[Any]:
    return list({a.alert_id: a for a in alerts if a.rule_id == "ICS-4003"}.values())


def test_a_gateway_unit_that_stops_answering_while_another_answers() -> None:
    """Unit 2 behind a Modbus gateway dies: unit 1's answers come from the same IP, and say
    nothing of unit 2 (red-team finding: any answer from the IP reset the count)."""
    for paired in (True, False):
        records = _gateway(40, lambda cycle, unit: unit if unit == 1 or cycle < 5 else None, paired=paired)
        [alert] = _stopped(run(records))
        assert alert.evidence["unit_id"] == 2 and alert.evidence["unanswered_requests"] == 16
        assert alert.evidence["silent_seconds"] == 15.0 and alert.evidence["last_answer_ts"] == 1004.25
        assert alert.key == f"{CLIENT}>{SERVER}:modbus/2"
        assert f"{SERVER} left 16 consecutive modbus requests to unit 2 from {CLIENT}" in alert.explanation
    # Both answering: nothing.
    assert _stopped(run(_gateway(40, lambda cycle, unit: unit))) == []


def test_a_flaky_unit_is_judged_against_the_silences_it_came_back_from() -> None:
    """A slow serial device behind a gateway (the public iti/modbus_test_2 capture: a unit back
    after 12.5 s, later after 18.6 s) is not stopped until silent twice as long as the longest
    silence it ended by answering in this run; a unit that never came back from one, at 15 s."""

    def answered(silences: list[tuple[int, int]]) -> Any:
        return lambda cycle, unit: unit if unit == 1 or not any(a <= cycle < b for a, b in silences) else None

    # Unit 2 silent 13 cycles (back after 13 s), then 20 (back after 20 s): both within 2 x 13.
    assert _stopped(run(_gateway(80, answered([(10, 23), (40, 60)])))) == []
    # ... then silent to the end: an alert once past 2 x 20 s, not at 15 s.
    [alert] = _stopped(run(_gateway(140, answered([(10, 23), (40, 60), (80, 140)]))))
    assert alert.evidence["unit_id"] == 2 and 40.1 < alert.evidence["silent_seconds"] <= 41.0
    # Found in review: a silence that was reported (an outage) does not widen the threshold.
    outages = [
        a for a in run(_gateway(140, answered([(10, 40), (50, 80), (90, 140)]))) if a.rule_id == "ICS-4003"
    ]
    assert outages[-1].count == 3  # each of the three at 15 s (throttled into one alert)
    assert outages[0].evidence["silent_seconds"] == 15.0
    # Never back from a silence: 15 s, as before.
    [first] = _stopped(run(_gateway(80, answered([(10, 80)]))))
    assert first.evidence["silent_seconds"] == 15.0


@pytest.mark.parametrize(
    ("exception", "stopped"), [(11, True), (10, True), (2, False), (4, False), (6, False)]
)
def test_a_gateway_answering_for_a_dead_unit(exception: int, stopped: bool) -> None:
    """Exceptions 10 and 11 are the gateway's word that the device behind it did not answer:
    the unit's count runs on.  Any other exception comes from the device, which is alive."""
    records = _gateway(40, lambda cycle, unit: unit if unit == 1 or cycle < 5 else (unit, exception))
    alerts = _stopped(run(records))
    if not stopped:
        assert alerts == []
        return
    [alert] = alerts
    assert alert.evidence["unit_id"] == 2 and alert.evidence["unanswered_requests"] == 16
    # The 16th request's exception is yet to come when it fires.
    assert (
        alert.evidence["gateway_exceptions"] == 15 and alert.evidence["gateway_exception_code"] == exception
    )
    assert f"15 of them answered by the gateway with exception {exception}," in alert.explanation
    # The unit answering now and then between the gateway's exceptions is up: a short outage.
    flaky = _gateway(40, lambda cycle, unit: unit if unit == 1 or cycle % 6 == 0 else (unit, exception))
    assert _stopped(run(flaky)) == []


def test_a_device_answering_as_another_unit_is_answering() -> None:
    """Devices that answer a request to unit 0 or 255 (or any unit) as unit 1: the answer is to
    that request (same transaction id; the dissector pairs by unit and transaction, so it comes
    unpaired), not a second device's silence."""
    as_one = _gateway(40, lambda cycle, unit: 1, units=(1, 255))
    assert _stopped(run(as_one)) == []
    assert _stopped(run(_gateway(40, lambda cycle, unit: 1, units=(255,)))) == []
    assert _stopped(run(_gateway(40, lambda cycle, unit: 1, units=(0, 1, 3)))) == []
    # A device that ignores the unit id: asked as unit 5, it answers as 1, paired or not.
    for paired in (True, False):
        assert _stopped(run(_gateway(40, lambda cycle, unit: 1, units=(5,), paired=paired))) == []
        # And when it falls silent, unit 5 (what its master asks for) stopped answering.
        silent = _gateway(140, lambda cycle, unit: 1 if cycle < 10 else None, units=(5,), paired=paired)
        [alert] = _stopped(run(silent))
        assert alert.evidence["unit_id"] == 5
    # Without transaction ids (RTU framing), a device polled at one address only.
    rtu = [
        dataclasses.replace(r, transaction_id=None) for r in _gateway(40, lambda cycle, unit: 1, units=(255,))
    ]
    assert _stopped(run(rtu)) == []
    # A device answering 255 as unit 1 beside a unit 2 that died: unit 2 alone is reported.
    beside = _gateway(40, lambda cycle, unit: 1 if unit != 2 or cycle < 5 else None, units=(1, 2, 255))
    [alert] = _stopped(run(beside))
    assert alert.evidence["unit_id"] == 2


def _pipelined(
    cycles: int, depth: int, answering: int, *, paired: bool, silent_from: int | None = None
) -> list[Any]:
    """A master keeping ``depth`` requests to unit 255 in flight (one sent a second, each answered
    ``depth`` - 1 requests later) to a device that answers as unit ``answering``; from cycle
    ``silent_from`` on, nothing is answered.  ``paired``: the answers carry their request's frame
    (the dissector pairs an answer under another unit by its transaction id alone)."""
    records: list[Any] = []
    sent: list[Any] = []
    for cycle in range(cycles):
        ts = 1000.0 + cycle
        request = modbus(3, unit_id=255, address=0, quantity=1, ts=ts, frame=len(records) + 1)
        records.append(request)
        sent.append(request)
        if len(sent) < depth or (silent_from is not None and cycle >= silent_from):
            continue
        asked = sent.pop(0)
        response = modbus(
            3,
            request=False,
            unit_id=answering,
            values=(0,),
            ts=ts + 0.05,
            frame=len(records) + 1,
            request_frame=asked.frame if paired else None,
        )
        records.append(dataclasses.replace(response, transaction_id=asked.transaction_id))
    return records


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("depth", [2, 3, 8])
def test_pipelined_requests_answered_as_another_unit(depth: int, paired: bool) -> None:
    """A master with several requests in flight (pipelining) to a device answering as another unit:
    each answer is to an earlier request than the last one sent, found by its request's frame or
    transaction id; the device is answering (found in review: only the latest request was kept,
    so no answer matched and the count ran to a false "stopped answering")."""
    assert _stopped(run(_pipelined(60, depth, 1, paired=paired))) == []
    assert _stopped(run(_pipelined(60, depth, 255, paired=paired))) == []
    # The same device falling silent is still reported: counted from the first request after its
    # last answer, as without pipelining.
    silent = _pipelined(60, depth, 1, paired=paired, silent_from=20)
    [alert] = _stopped(run(silent))
    assert alert.evidence["unit_id"] == 255 and alert.evidence["silent_seconds"] == 15.0
    assert alert.evidence["last_answer_ts"] == 1019.05
    assert alert.frames[0] == next(r.frame for r in silent if r.ts == 1020.0)


def test_an_answer_ends_only_a_request_still_awaiting_one() -> None:
    """Found in review: answers matched by transaction id against every request a device was sent
    lately (answered or not), other devices' before the answering one's own.  Unit 2 falls silent
    while unit 1 is answered one request late and unpaired, both with one transaction counter:
    unit 1's answers ended unit 2's count, which hid unit 2 and reported unit 1."""
    records: list[Any] = []
    pending: list[Any] = []
    for cycle in range(60):
        ts = 1000.0 + cycle
        for unit in (2, 1):
            request = dataclasses.replace(
                modbus(3, unit_id=unit, address=0, quantity=1, ts=ts, frame=len(records) + 1),
                transaction_id=cycle,
            )
            records.append(request)
            if unit == 1:
                pending.append(request)
            elif cycle < 20:
                answer = modbus(
                    3,
                    request=False,
                    unit_id=2,
                    values=(0,),
                    ts=ts + 0.01,
                    frame=len(records) + 1,
                    request_frame=request.frame,
                )
                records.append(dataclasses.replace(answer, transaction_id=cycle))
        if len(pending) == 2:
            asked = pending.pop(0)
            answer = modbus(3, request=False, unit_id=1, values=(0,), ts=ts + 0.05, frame=len(records) + 1)
            records.append(dataclasses.replace(answer, transaction_id=asked.transaction_id))
    [alert] = _stopped(run(records))
    assert alert.evidence["unit_id"] == 2 and alert.evidence["silent_seconds"] == 15.0


def test_requests_kept_for_pairing_are_bounded_and_let_go() -> None:
    """Only Modbus/TCP requests sent before the last was answered are kept (up to 7 besides the
    last), and none once the last is answered; a silent device keeps no more."""
    from ics_monitor.detect import DetectionEngine
    from ics_monitor.detect.availability import (
        _EARLIER,
        _REQUEST_FRAME,
        _UNANSWERED,
        MAX_IN_FLIGHT,
        StoppedAnswering,
    )

    engine = DetectionEngine(RULES)
    [detector] = [d for d in engine.detectors if isinstance(d, StoppedAnswering)]
    silent = _pipelined(40, 2, 1, paired=True, silent_from=5)
    for record in silent:
        engine.observe(record)
    [state] = detector.states.values()
    [count] = state[2].values()
    assert len(count[_EARLIER]) == MAX_IN_FLIGHT - 1
    answered = modbus(
        3, request=False, unit_id=1, values=(0,), ts=1041.0, frame=999, request_frame=silent[-1].frame
    )
    engine.observe(answered)
    assert count[_EARLIER] is None
    # Polled and answered in turn (no pipelining), and S7 or RTU requests: nothing kept.
    engine = DetectionEngine(RULES)
    [detector] = [d for d in engine.detectors if isinstance(d, StoppedAnswering)]
    rtu = [
        dataclasses.replace(r, transaction_id=None)
        for r in _gateway(10, lambda cycle, unit: None, units=(7,))
    ]
    for record in (
        _gateway(10, lambda cycle, unit: unit)
        + rtu
        + [s7(4, ts=1100.0 + i, frame=900 + i) for i in range(10)]
    ):
        engine.observe(record)
    assert all(count[_EARLIER] is None for state in detector.states.values() for count in state[2].values())
    # A gateway's exception 10 or 11 settles the request (the gateway gave up on it), though the
    # unit's count runs on: nothing of the unit's awaits an answer to pair.
    engine = DetectionEngine(RULES)
    [detector] = [d for d in engine.detectors if isinstance(d, StoppedAnswering)]
    for record in _gateway(20, lambda cycle, unit: unit if unit == 1 else (unit, 11)):
        engine.observe(record)
    [state] = detector.states.values()
    dead = state[2][2]
    assert dead[_EARLIER] is None and dead[_REQUEST_FRAME] is None and dead[_UNANSWERED] == 20


def test_a_dnp3_outstation_silent_behind_a_shared_address() -> None:
    """A terminal server carries outstations 10 and 11: 11 stops answering while 10 answers.
    An outstation asked at the self-address (0xFFFC) answers as itself."""

    def poll(silent: int | None, stations: tuple[int, ...] = (10, 11)) -> list[Any]:
        records: list[Any] = []
        for cycle in range(40):
            for station in stations:
                frame = len(records) + 1
                ts = 1000.0 + cycle + station / 100
                sequence = cycle % 16
                records.append(dnp3(1, src=1, dst=station, sequence=sequence, ts=ts, frame=frame))
                if station == silent and cycle >= 5:
                    continue
                response = dnp3(
                    129,
                    request=False,
                    src=10 if station == 0xFFFC else station,
                    dst=1,
                    sequence=sequence,
                    iin=0,
                    ts=ts + 0.05,
                    frame=frame + 1,
                )
                # The dissector pairs a response with the request of its two addresses: not the
                # self-address's.
                paired = frame if station != 0xFFFC else None
                records.append(dataclasses.replace(response, request_frame=paired))
        return records

    [alert] = _stopped(run(poll(11)))
    assert alert.evidence["link_address"] == 11 and alert.evidence["unanswered_requests"] == 16
    assert alert.key == f"{CLIENT}>{SERVER}:dnp3/11" and "requests to outstation 11" in alert.explanation
    assert _stopped(run(poll(None))) == []
    assert _stopped(run(poll(None, (10, 0xFFFC)))) == []


def test_devices_counted_per_server_are_capped() -> None:
    """An address sweep through one server (ICS-3008's) leaves at most MAX_DEVICES counts, the
    sweep's forgotten first: the outstation polled before it is still judged."""
    from ics_monitor.detect import DetectionEngine
    from ics_monitor.detect.availability import MAX_DEVICES, StoppedAnswering

    engine = DetectionEngine(RULES, strict=True)
    [detector] = [d for d in engine.detectors if isinstance(d, StoppedAnswering)]
    alerts: list[Any] = []
    for cycle in range(5):  # outstation 10 answers, then dies
        alerts += engine.observe(dnp3(1, dst=10, ts=1000.0 + cycle, frame=2 * cycle + 1))
        alerts += engine.observe(
            dnp3(129, request=False, src=10, dst=1, ts=1000.5 + cycle, frame=2 * cycle + 2)
        )
    for address in range(1000):
        alerts += engine.observe(dnp3(1, dst=100 + address, ts=1005.0 + address / 100, frame=100 + address))
    for cycle in range(20):
        alerts += engine.observe(dnp3(1, dst=10, ts=1016.0 + cycle, frame=2000 + cycle))
    devices = detector.states[(CLIENT, SERVER, "dnp3")][2]
    assert 10 in devices and len(devices) <= MAX_DEVICES
    [alert] = _stopped(alerts + engine.finish())
    assert alert.evidence["link_address"] == 10 and alert.evidence["last_answer_ts"] == 1004.5


def test_a_service_that_refuses_its_clients_has_stopped_answering() -> None:
    """The PLC's Modbus service dies: the HMI's reconnects are refused for 20 s, then it answers
    again.  The refused attempts' flow records come late (as flows end), some after the answer
    that ended the outage: still one outage.  Attempts to a port that never answered Modbus, or
    a short outage, are not one."""
    answered = [r for i in range(5) for r in _poll(i, True)]  # answers to 1008.5

    def attempts(start: float, count: int, state: str = "rejected", port: int = 502) -> list[Any]:
        return [
            dataclasses.replace(flow(dst_port=port, payload=0, ts=start + i, state=state), ts_end=start + i)
            for i in range(count)
        ]

    recovered = modbus(3, request=False, address=0, quantity=1, values=(0,), ts=1031.0, frame=99)
    late = [*answered, *attempts(1010.0, 6), recovered, *attempts(1016.0, 14)]
    [alert] = run(late)
    assert alert.rule_id == "ICS-4003" and alert.evidence["unanswered_connections"] == 16
    assert alert.evidence["last_answer_ts"] == 1008.5 and alert.protocol == "modbus"
    assert "left 16 consecutive connection attempts to its modbus port 502 (refused)" in alert.explanation
    silent = run([*answered, *attempts(1010.0, 20, state="syn_sent")])
    assert "(no answer)" in silent[0].explanation
    assert run([*answered, *attempts(1010.0, 20, port=503)]) == []
    assert run([*answered, *attempts(1010.0, 10), recovered, *attempts(1032.0, 5)]) == []
    assert run(attempts(1010.0, 20)) == []  # never answered there: a closed port, not an outage


def test_dnp3_sequence_anomaly() -> None:
    ordered = [dnp3(1, sequence=i % 16, ts=1000.0 + i, frame=i) for i in range(40)]
    retries = [dnp3(1, sequence=(i // 2) % 16, ts=1000.0 + i, frame=i) for i in range(40)]
    assert run(ordered, rules=NO_SILENCE) == [] and run(retries, rules=NO_SILENCE) == []
    jumps = [dnp3(1, sequence=s, ts=1000.0 + i, frame=i) for i, s in enumerate((6, 6, 11, 3, 10, 0, 5, 13))]
    [alert] = run(jumps)
    assert alert.rule_id == "ICS-4004" and alert.evidence["out_of_order_requests"] == 5
    # Separate TCP connections of one master start their own sequence.
    per_flow = [
        dnp3(1, sequence=s, flow_id=f"f{i}", ts=1000.0 + i, frame=i)
        for i, s in enumerate((6, 3, 11, 0, 9, 2))
    ]
    assert run(per_flow) == []


def test_thresholds_come_from_the_rules() -> None:
    rules = RULES.configured("ICS-3001", min_unit_ids=3)
    sweep = [modbus(3, unit_id=u, frame=u) for u in (1, 2, 3)]
    assert rule_ids(run(sweep, rules=rules)) == ["ICS-3001"]


def test_ot_port_misuse_on_a_port_found_speaking_an_ot_protocol() -> None:
    """S7 served on 1102 makes 1102 an S7 port of that server: service probes there (nmap -sV's
    HTTP, TLS, RDP) are ICS-3007, also those that came before the port was seen speaking S7; the
    same port of another server, and ports never seen speaking an OT protocol, are not judged."""
    s7 = flow(dst_port=1102, app_protocol="s7comm", ts=1100.0)
    probes = [
        flow(dst_port=1102, app_protocol=app, ts=1000.0 + i, reply=0) for i, app in enumerate(("http", "tls"))
    ]
    later = flow(dst_port=1102, app_protocol="rdp", ts=1200.0)
    alerts = run([*probes, s7, later])
    assert [a.rule_id for a in alerts] == ["ICS-3007", "ICS-3007", "ICS-3007"]
    final = alerts[-1]
    assert final.evidence["service"] == "s7comm" and final.evidence["app_protocols"] == ["http", "tls", "rdp"]
    assert "to the s7comm port 1102 of" in final.explanation
    # Another server's 1102, or the same probes with no S7 ever seen there: quiet.
    assert run([s7, dataclasses.replace(later, dst_ip="10.0.0.99")]) == []
    assert run([*probes, later]) == []
    # Probes long before (past the memory of _PENDING_SECONDS) are not judged late.
    old = flow(dst_port=1102, app_protocol="http", ts=100.0, reply=0)
    assert run([old, s7]) == []
    # Learned: a baseline that saw Modbus on 5020 judges what comes there from the first flow.
    learner = BaselineLearner()
    learner.observe(dataclasses.replace(modbus(3, address=0, quantity=2), dst_port=5020))
    baseline = learner.baseline()
    assert [key[3:] for key in baseline.conversations] == [(5020, "modbus")]
    odd = flow(dst_port=5020, app_protocol="tls", ts=2000.0)
    assert "ICS-3007" in rule_ids(run([odd], baseline=baseline))
    assert "ICS-3007" not in rule_ids(run([dataclasses.replace(odd, dst_port=5021)], baseline=baseline))


def test_ot_port_misuse_from_flow_records() -> None:
    """Another protocol on an OT port (ICS-3007, one alert per protocol), or bytes that decode as
    nothing on the Modbus and DNP3 ports (ICS-3008); never the port's own protocol, keep-alive
    bytes, flows with lost bytes, or undecoded data on port 102 seen mid-stream (MMS and ICCP share
    S7's framing, and open with the COTP connection request the S7 dissector takes)."""

    def misuse(midstream: bool = False, **kwargs: object) -> list[tuple[str, object, object]]:
        record = flow(**kwargs)  # type: ignore[arg-type]
        if midstream:
            record = dataclasses.replace(record, tcp_flags_to_server=("ACK", "PSH"))
        return [(a.rule_id, a.evidence["app_protocol"], a.evidence["answered"]) for a in run([record])]

    assert misuse(service="modbus", app_protocol="rdp", payload=43, reply=9) == [("ICS-3007", "rdp", True)]
    assert misuse(service="s7comm", dst_port=102, app_protocol="http", reply=0) == [
        ("ICS-3007", "http", False)
    ]
    assert misuse(service="dnp3", dst_port=20000, payload=48, reply=0) == [("ICS-3008", None, False)]
    assert misuse(service="dnp3", dst_port=20000, transport="udp", payload=30) == [("ICS-3008", None, True)]
    assert misuse(service="modbus", payload=24) == [("ICS-3008", None, True)]
    # Seen from its SYN, a connection's first bytes are its opening: on port 102 every ISO-on-TCP
    # protocol (S7, MMS, ICCP) opens with a COTP connection request, which the S7 dissector takes;
    # anything else there is undecodable, and a few bytes are enough.
    assert misuse(service="s7comm", dst_port=102, payload=400) == [("ICS-3008", None, True)]
    assert misuse(service="s7comm", dst_port=102, payload=4, reply=0) == [("ICS-3008", None, False)]
    assert misuse(service="modbus", payload=7) == [("ICS-3008", None, True)]
    quiet = [
        {"service": "modbus", "app_protocol": "modbus"},
        # Mid-stream on port 102: an MMS or ICCP connection picked up after its opening.
        {"service": "s7comm", "dst_port": 102, "app_protocol": None, "payload": 400, "midstream": True},
        {"service": "s7comm", "dst_port": 102, "payload": 1},  # TCP keep-alive byte
        {"service": "modbus", "payload": 6, "packets_to_server": 10},  # 1 byte beyond one per packet
        {"service": "modbus", "payload": 7, "midstream": True},
        # An idle Windows client's keep-alives.
        {"service": "modbus", "payload": 30, "packets_to_server": 30, "midstream": True},
        {"service": "modbus", "payload": 30, "packets_to_server": 34},
        {"service": "modbus", "payload": 400, "missed_bytes": 1200},
        {"service": None, "dst_port": 5020, "app_protocol": "tls"},
        {"service": "https", "dst_port": 443, "app_protocol": "tls"},
    ]
    for kwargs in quiet:
        assert misuse(**kwargs) == [], kwargs
    # Seen twice through a mirrored path (the flow table leaves the copies' payload out): the
    # copies are not packets the client sent, so they do not excuse bytes as keep-alives.
    doubled = dataclasses.replace(
        flow(service="modbus", payload=16, packets_to_server=12), tcp_flags_to_server=("ACK", "PSH")
    )
    assert run([doubled]) == []
    assert rule_ids(run([dataclasses.replace(doubled, mirror_copies_to_server=5)])) == ["ICS-3008"]
    # Connect, send one bad 12-byte ADU (an MBAP length of 65535), close: five client packets, four
    # of them the handshake's and teardown's.  Seen from mid-stream (no SYN) the same counts prove
    # nothing.
    one_shot = flow(service="modbus", payload=12, packets_to_server=5, reply=0)
    assert rule_ids(run([one_shot])) == ["ICS-3008"]
    assert run([dataclasses.replace(one_shot, tcp_flags_to_server=("ACK", "PSH"))]) == []
    keepalives = dataclasses.replace(
        flow(service="modbus", payload=30, packets_to_server=60), tcp_flags_to_server=("ACK", "PSH")
    )
    assert run([dataclasses.replace(keepalives, mirror_copies_to_server=30)]) == []
    # The frames cited: the client's first payload and the device's first answer, in frame order;
    # the one there is; the flow's first frame (its SYN) when the record names neither.
    rdp = flow(service="modbus", app_protocol="rdp", payload=43, reply=9, ts=1000.0)
    for sent, answer, frames in ((1004, 1005, [1004, 1005]), (1004, 0, [1004]), (0, 0, [1000])):
        (alert,) = run(
            [
                dataclasses.replace(
                    rdp, first_payload_frame_to_server=sent, first_payload_frame_to_client=answer
                )
            ]
        )
        assert list(alert.frames) == frames
    # One scanner, three protocols on one port: one alert that widens to name them all (a service
    # scan probes each port a dozen ways); the same protocol again: a count.
    alerts = run(
        [
            flow(service="modbus", app_protocol=app, ts=1000.0 + n)
            for n, app in enumerate(("tls", "http", "ssh", "tls"))
        ]
    )
    assert len({a.alert_id for a in alerts}) == 1
    assert [a.evidence["app_protocols"] for a in alerts[:3]] == [
        ["tls"],
        ["tls", "http"],
        ["tls", "http", "ssh"],
    ]
    assert alerts[-1].count == 2 and "spoke tls, http, ssh to the modbus port 502" in alerts[2].explanation
    # Another port of the same device is another alert.
    other = run(
        [flow(service="modbus", app_protocol="tls"), flow(service="dnp3", dst_port=20000, app_protocol="tls")]
    )
    assert len({a.alert_id for a in other}) == 2
    assert (
        "spoke rdp to the modbus port 502 of 10.0.0.9"
        in run([flow(service="modbus", app_protocol="rdp", payload=43, reply=9)])[0].explanation
    )


def _cr(i: int, ts: float, *, client: str = CLIENT) -> Any:
    """An S7 COTP connection request opening flow ``s-<client>-<i>``."""
    return cotp_request(
        ts=ts, frame=1000 + i, flow_id=f"s-{client}-{i}", client=client, client_port=40000 + i
    )


def _session(
    i: int,
    opened: float,
    closed: float | None,
    *,
    client: str = CLIENT,
    s7: bool = True,
    reason: str = "closed",
) -> tuple[Any | None, Any | None]:
    """A connection opened at ``opened``: an S7 one's connection request (None for Modbus, counted
    from its record), and its flow record ending at ``closed`` (None: no record yet)."""
    port = 102 if s7 else 502
    record = None
    if closed is not None:
        record = dataclasses.replace(
            flow(
                flow_id=f"s-{client}-{i}",
                src_ip=client,
                dst_port=port,
                ts=opened - 0.01,
                app_protocol="s7comm" if s7 else "modbus",
            ),
            ts_end=closed,
            first_frame=1000 + i,
            end_reason=reason,
            tcp_flags_to_client=("SYN", "ACK"),
        )
    return (_cr(i, opened, client=client) if s7 else None), record


def _timeline(sessions: list[tuple[Any | None, Any | None]], delay: float = 15.0) -> list[Any]:
    """Requests at their times; each flow record ``delay`` s after its connection closed (as the
    flow table sends a closed one), with the clock ticking every second meanwhile."""
    timed = [(request.ts, 0, request) for request, _ in sessions if request is not None]
    timed += [(record.ts_end + delay, 1, record) for _, record in sessions if record is not None]
    end = max(when for when, _, _ in timed)
    timed += [
        (900.0 + t, 2, modbus(3, ts=900.0 + t, frame=1, flow_id="clock", client="10.0.0.99"))
        for t in range(int(end - 900) + 60)
    ]
    return [record for _, _, record in sorted(timed, key=lambda item: (item[0], item[1]))]


def held_alerts(records: list[Any]) -> list[Any]:
    """The ICS-4006 alerts of ``records``."""
    return [alert for alert in run(records) if alert.rule_id == "ICS-4006"]


def test_sessions_held_open_at_once() -> None:
    """ICS-4006: a client holding 12 S7 connections to one PLC at once, live from their COTP
    connection requests; not one that opens a connection per poll and closes it (its flow records
    come 15 s late), not 11; once per client and service until its connections drop."""
    held = [_session(i, 1000.0 + 0.01 * i, 1010.0) for i in range(12)]
    [alert] = held_alerts(_timeline(held))
    assert alert.rule_id == "ICS-4006" and alert.src_ip == CLIENT and alert.dst_port == 102
    assert alert.evidence["sessions"] == 12 and alert.evidence["protocol"] == "s7comm"
    assert alert.frames == (1000, 1011) and alert.ts == 1000.11
    assert held_alerts(_timeline(held[:11])) == []
    # Four polls a second, each on its own connection closed 0.1 s later: 60 look open until the
    # records come, one at a time is the truth.
    churn = [_session(i, 1000.0 + 0.25 * i, 1000.1 + 0.25 * i) for i in range(400)]
    assert held_alerts(_timeline(churn)) == []
    # Held until the capture ends (no flow record closes them): held to the end, if that is long
    # enough to be a hold.
    later = modbus(3, ts=1005.0, frame=9999, flow_id="other", client="10.0.0.77")
    [alert] = held_alerts([*(request for request, _ in held), later])
    assert alert.evidence["sessions"] == 12
    assert held_alerts([request for request, _ in held]) == []
    # Opened and closed in a burst (a flood): no hold.
    burst = [_session(i, 1000.0 + 0.01 * i, 1000.5) for i in range(40)]
    assert held_alerts(_timeline(burst)) == []
    # Two holds by one client, the connections dropped between: raised twice (one alert, throttled,
    # counting two); one long hold is raised once.
    again = [_session(100 + i, 1100.0 + 0.01 * i, 1110.0) for i in range(12)]
    assert [alert.count for alert in held_alerts(_timeline(held + again))] == [1, 2]
    # Later connections that look many until their records come do not raise the earlier peak
    # again.
    polls = [_session(100 + i, 1100.0 + 0.25 * i, 1100.1 + 0.25 * i) for i in range(100)]
    assert [alert.count for alert in held_alerts(_timeline(held + polls))] == [1]
    long = [_session(i, 1000.0 + 0.01 * i, 1500.0) for i in range(12)]
    assert [alert.count for alert in held_alerts(_timeline(long))] == [1]
    # Twelve clients with one connection each are no one's exhaustion.
    spread = [_session(i, 1000.0 + 0.01 * i, 1010.0, client=f"10.0.1.{i + 1}") for i in range(12)]
    assert held_alerts(_timeline(spread)) == []


def test_modbus_sessions_held_open_count_from_their_records() -> None:
    """Modbus has no opening PDU: its connections count from flow records that saw the SYN, judged
    once the overlapping ones are in.  Records without the SYN (a capture of data packets only,
    whose connections end in idle timeouts) count for nothing."""
    held = [_session(i, 1000.0 + 0.01 * i, 1010.0 + 0.01 * i, s7=False) for i in range(12)]
    [alert] = held_alerts(_timeline(held))
    assert alert.evidence["sessions"] == 12 and alert.evidence["protocol"] == "modbus"
    assert alert.dst_port == 502 and abs(alert.ts - 1000.1) < 1e-6  # its record's start
    assert held_alerts(_timeline(held[:11])) == []
    midstream = [
        (None, dataclasses.replace(record, tcp_flags_to_server=("ACK", "PSH"), end_reason="idle_timeout"))
        for _, record in held
    ]
    assert held_alerts(_timeline(midstream)) == []
    cut = [(None, dataclasses.replace(record, end_reason="end_of_capture")) for _, record in held]
    [alert] = held_alerts(_timeline(cut))
    assert alert.evidence["sessions"] == 12
    # Opened and held idle, nothing sent: a slot taken all the same, on the port's protocol.
    idle = [
        (None, dataclasses.replace(record, app_protocol=None, service="modbus", payload_bytes_to_server=0))
        for _, record in held
    ]
    [alert] = held_alerts(_timeline(idle))
    assert alert.evidence["protocol"] == "modbus"
    # Half-open (the client never completed the handshake): ICS-4005's flood, not held sessions.
    half_open = [(None, dataclasses.replace(record, packets_to_server=1)) for _, record in idle]
    assert held_alerts(_timeline(half_open)) == []


def test_s7_rack_slot_sweep() -> None:
    """ICS-3012: connection requests for three destination TSAPs from one client to one PLC within
    the window; two (nmap's s7-info, a PG and an OP connection) are not; nor three over 10 minutes."""

    def request(slot: int, ts: float, kind: int = 1) -> Any:
        tsap = {
            "hex": f"{kind:02x}{slot:02x}",
            "connection_type": kind,
            "connection_type_name": "PG",
            "rack": 0,
            "slot": slot,
        }
        return cotp_request(ts=ts, frame=int(ts), flow_id=f"c{ts}", dst_tsap=tsap)

    [alert] = run([request(slot, 1000.0 + slot) for slot in range(3)])
    assert alert.rule_id == "ICS-3012" and alert.evidence["distinct_tsaps"] == 3
    assert alert.evidence["tsaps"][0] == "0x0100 (rack 0, slot 0, PG)"
    assert run([request(2, 1000.0), request(0, 1001.0, kind=2)]) == []
    assert run([request(2, 1000.0 + 601 * i, kind=i + 1) for i in range(3)]) == []
    assert len(run([request(2, 1000.0 + 290 * i, kind=i + 1) for i in range(3)])) == 1  # a slow sweep
    assert run([request(2, 1000.0 + i) for i in range(10)]) == []  # one TSAP, many connections


def test_writes_across_a_device_s_addresses() -> None:
    """ICS-4007: 200 distinct holding registers of one unit written within 60 s, one by one or in
    blocks, whatever the pace; not 199, not over 10 minutes, not addresses the client wrote while
    learning; DNP3 operates count the points they carry, not a range header without them."""
    singles = [modbus(6, address=a, values=(0xFFFF,), ts=1000.0 + a / 5, frame=a + 1) for a in range(200)]
    [alert] = [a for a in run(singles) if a.rule_id == "ICS-4007"]
    assert alert.evidence["addresses"] == 200 and alert.evidence["runs"] == [[0, 199]]
    assert alert.frames == (1, 200) and "wrote 200 distinct addresses" in alert.explanation
    assert [a for a in run(singles[:199]) if a.rule_id == "ICS-4007"] == []
    slow = [modbus(6, address=a, values=(1,), ts=1000.0 + 3 * a, frame=a + 1) for a in range(200)]
    assert [a for a in run(slow) if a.rule_id == "ICS-4007"] == []
    blocks = [
        modbus(16, address=100 * b, quantity=100, values=(0,) * 100, ts=1000.0 + b, frame=b + 1)
        for b in (0, 1)
    ]
    assert rule_ids([a for a in run(blocks) if a.rule_id == "ICS-4007"]) == ["ICS-4007"]
    # A recipe the client downloaded while learning is no sweep when it comes again.
    learned = _learned(blocks)
    again = [dataclasses.replace(r, ts=r.ts + 5000) for r in blocks]
    assert [a for a in run(again, baseline=learned) if a.rule_id == "ICS-4007"] == []
    # DNP3: 200 CROBs operated, one per point; a fuzzer's range header of 513 points carrying none.
    crobs = [
        dnp3(5, objects=({"group": 12, "points": [{"index": i}]},), ts=1000.0 + i / 10, frame=i)
        for i in range(200)
    ]
    assert rule_ids([a for a in run(crobs) if a.rule_id == "ICS-4007"]) == ["ICS-4007"]
    empty = [
        dnp3(4, objects=({"group": 12, "start": 256, "stop": 768, "points": []},), ts=1000.0 + i, frame=i)
        for i in range(5)
    ]
    assert [a for a in run(empty) if a.rule_id == "ICS-4007"] == []


def test_sessions_knocked_off_by_another_host() -> None:
    """ICS-4008: the master's sessions ending as another host connects, three times within a
    minute; the master's reconnections (the ping-pong's other half) never make it the intruder;
    with a baseline, the learned client is the one knocked off whichever session came first."""
    master, intruder = CLIENT, "10.0.0.66"

    def session(client: str, start: float, end: float, frame: int, app: str | None = "dnp3") -> Any:
        record = flow(src_ip=client, dst_port=20000, ts=start, app_protocol=app, flow_id=f"{client}-{start}")
        return dataclasses.replace(record, ts_end=end, first_frame=frame)

    records = [session(master, 900.0, 1000.0, 1)]
    for n in range(4):
        at = 1000.0 + 2 * n
        records.append(session(intruder, at, at + 0.2, 10 * n + 2, app=None))
        records.append(session(master, at + 0.01, at + 2.0, 10 * n + 3))
    # Flow records come as flows end (and 15 s late): in end order.
    records.sort(key=lambda r: r.ts_end)
    alerts = [a for a in run(records) if a.rule_id == "ICS-4008"]
    assert {a.src_ip for a in alerts} == {intruder} and alerts[0].evidence["victims"] == [master]
    assert alerts[0].evidence["displaced"] == 3 and alerts[-1].count == 2
    assert [a for a in run(records[:4]) if a.rule_id == "ICS-4008"] == []  # two displaced: under it
    # The intruder's session came first: cold, it holds the service and nobody is reported; a
    # baseline that knows the master makes the master the one knocked off.
    early = [session(intruder, 800.0, 800.1, 1, app="dnp3"), *records]
    assert [a for a in run(early) if a.rule_id == "ICS-4008"] == []
    learner = BaselineLearner()
    learner.observe_flow(session(master, 100.0, 200.0, 1))
    alerts = [a for a in run(early, baseline=learner.baseline()) if a.rule_id == "ICS-4008"]
    assert {a.src_ip for a in alerts} == {intruder}
    # A client that connects per poll (no session of 10 s) is displaced by nobody.
    polls = [r for r in records if r.ts_start != 900.0]
    assert [a for a in run(polls) if a.rule_id == "ICS-4008"] == []


def test_a_sweep_of_thousands_of_writes_is_a_few_alert_records() -> None:
    """20,000 coils written one by one, every other one: the write sweep widens as it doubles, not
    per request, and its merged runs stay bounded (the scattered ones past the cap are counted)."""
    writes = [modbus(5, address=2 * a, values=(1,), ts=1000.0 + a / 1000, frame=a + 1) for a in range(20_000)]
    alerts = [a for a in run(writes) if a.rule_id == "ICS-4007"]
    assert 1 < len(alerts) <= 12
    assert alerts[-1].evidence["addresses"] >= 10_000 and len(alerts[-1].evidence["runs"]) <= 64


def _poll_and_write(cycles: int, write_answered: Any, *, exception: int | None = None) -> list[Any]:
    """A client reads unit 1 every second and writes it every 5th: ``write_answered(cycle)`` says
    whether the write is answered (with ``exception``, when given); reads always are."""
    records: list[Any] = []
    frame = 0
    for cycle in range(cycles):
        ts = 1000.0 + cycle
        frame += 1
        read = modbus(3, unit_id=1, address=0, quantity=1, ts=ts, frame=frame)
        frame += 1
        answer = modbus(
            3, request=False, unit_id=1, values=(0,), ts=ts + 0.05, frame=frame, request_frame=read.frame
        )
        records += [read, dataclasses.replace(answer, transaction_id=read.transaction_id)]
        if cycle % 5 == 2:
            frame += 1
            write = modbus(6, unit_id=1, address=4, values=(7,), ts=ts + 0.5, frame=frame)
            records.append(write)
            if write_answered(cycle):
                frame += 1
                reply = modbus(
                    6,
                    request=False,
                    unit_id=1,
                    address=4,
                    values=None if exception else (7,),
                    exception_code=exception,
                    ts=ts + 0.55,
                    frame=frame,
                    request_frame=write.frame,
                )
                records.append(dataclasses.replace(reply, transaction_id=write.transaction_id))
    return records


def test_writes_unanswered_while_the_polls_are_answered() -> None:
    """Found by a red-team review: a man in the middle dropping the operator's writes (or their
    answers) while polls go through raised nothing (ICS-4003 counts a silent device).  ICS-4009:
    the third write in a row passed over by answers to later requests."""
    [alert] = [a for a in run(_poll_and_write(40, lambda cycle: cycle < 10)) if a.rule_id == "ICS-4009"]
    assert (alert.src_ip, alert.dst_ip, alert.evidence["device"]) == (CLIENT, SERVER, 1)
    assert alert.evidence["blocked_writes"] == 3 and alert.evidence["functions"] == ["FC6 (6)"]
    assert alert.ts == 1012.5  # the first write passed over (cycle 12)
    assert f"{SERVER} left 3 modbus writes to unit 1 from {CLIENT} unanswered" in alert.explanation
    # Answered (an exception too: the device took it as its own), or only two in a row: nothing.
    assert [a for a in run(_poll_and_write(40, lambda cycle: True)) if a.rule_id == "ICS-4009"] == []
    refused = _poll_and_write(40, lambda cycle: True, exception=2)
    assert [a for a in run(refused) if a.rule_id == "ICS-4009"] == []
    twice = _poll_and_write(40, lambda cycle: cycle not in (12, 17))
    assert [a for a in run(twice) if a.rule_id == "ICS-4009"] == []
    # Answered out of order (a gateway's later read first), within grace (5 s): not passed over.
    swapped: list[Any] = []
    for n in range(12):
        ts, frame = 2000.0 + n, 10 * n + 1
        write = modbus(6, unit_id=1, address=4, values=(7,), ts=ts, frame=frame)
        read = modbus(3, unit_id=1, address=0, quantity=1, ts=ts + 0.1, frame=frame + 1)
        answers = [
            modbus(
                3,
                request=False,
                unit_id=1,
                values=(0,),
                ts=ts + 0.15,
                frame=frame + 2,
                request_frame=read.frame,
            ),
            modbus(
                6,
                request=False,
                unit_id=1,
                values=(7,),
                ts=ts + 0.3,
                frame=frame + 3,
                request_frame=write.frame,
            ),
        ]
        swapped += [write, read, *answers]
    assert [a for a in run(swapped) if a.rule_id == "ICS-4009"] == []
    # (Never answered, the same writes are passed over: the test sees the case it means.)
    unanswered = [r for r in swapped if not (r.direction == "response" and r.function_code == 6)]
    assert len([a for a in run(unanswered) if a.rule_id == "ICS-4009"]) == 1
    # Found in review: writes answered late (8 s: a flash parameter write) while later polls are
    # answered at once are passed over, then answered: not blocked.
    slow: list[Any] = []
    for n in range(5):
        ts, frame = 3000.0 + 10 * n, 100 * n + 1
        write = modbus(6, unit_id=1, address=4, values=(7,), ts=ts, frame=frame)
        slow.append(write)
        for k in range(1, 9):
            read = modbus(3, unit_id=1, address=0, quantity=1, ts=ts + k, frame=frame + 2 * k)
            slow += [
                read,
                modbus(
                    3,
                    request=False,
                    unit_id=1,
                    values=(0,),
                    ts=ts + k + 0.05,
                    frame=frame + 2 * k + 1,
                    request_frame=read.frame,
                ),
            ]
        slow.append(
            modbus(
                6,
                request=False,
                unit_id=1,
                values=(7,),
                ts=ts + 8.5,
                frame=frame + 20,
                request_frame=write.frame,
            )
        )
    assert [a for a in run(slow) if a.rule_id == "ICS-4009"] == []
    without_answers = [r for r in slow if not (r.direction == "response" and r.function_code == 6)]
    assert len([a for a in run(without_answers) if a.rule_id == "ICS-4009"]) == 1
