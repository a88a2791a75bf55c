"""The baseline model: learning, ranges, caps, YAML round trip, diff."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ics_monitor.inventory import baseline as model
from ics_monitor.inventory.baseline import FORMAT, Baseline, BaselineLearner, PollStats, RangeSet
from tests.unit.detect.records import CLIENT, SERVER, dnp3, flow, modbus, s7


def _learned() -> Baseline:
    learner = BaselineLearner()
    for i in range(20):
        ts = 1000.0 + i
        learner.observe(modbus(3, ts=ts, frame=4 * i + 1, address=0, quantity=10))
        learner.observe(
            modbus(
                3,
                request=False,
                ts=ts + 0.1,
                frame=4 * i + 2,
                address=0,
                quantity=10,
                values=tuple(range(i, i + 10)),
                request_frame=4 * i + 1,
            )
        )
        learner.observe(modbus(6, ts=ts + 0.5, frame=4 * i + 3, address=20, quantity=1, values=(100 + i,)))
    learner.observe(dnp3(5, objects=({"group": 12, "variation": 1, "points": [{"index": 3}]},)))
    learner.observe(dnp3(5, objects=({"group": 41, "variation": 2, "points": [{"index": 1, "value": 55}]},)))
    learner.observe(
        dnp3(129, request=False, objects=({"group": 30, "points": [{"index": 2, "value": 7.5}]},))
    )
    items = (
        {
            "area": 0x84,
            "db": 5,
            "address": 10,
            "length": 2,
            "transport_size": 4,
            "transport_size_name": "WORD",
        },
        {
            "area": 0x83,
            "area_name": "FLAGS",
            "address": 102,
            "bit": 2,
            "length": 1,
            "transport_size": 1,
            "transport_size_name": "BIT",
        },
        {
            "area": 0x84,
            "db": 5,
            "address": 20,
            "length": 3,
            "transport_size": 2,
            "transport_size_name": "BYTE",
        },
    )
    data_items = ({"values": [42, 43]}, {"values": [1]}, {"values": [7, 0, 9]})
    learner.observe(s7(1, function_code=5, items=items, data_items=data_items))
    learner.observe_flow(flow(dst_port=445, app_protocol="smb"))
    learner.observe_flow(flow(src_ip="10.0.0.77", dst_port=502, state="rejected", payload=0))
    return learner.baseline()


def test_learner_builds_conversations_functions_ranges_values_polling() -> None:
    baseline = _learned()
    modbus_conversation = baseline.conversation((CLIENT, SERVER, "tcp", 502, "modbus"))
    assert modbus_conversation is not None
    assert modbus_conversation.functions == {"3": ["FC3", 20], "6": ["FC6", 20]}
    assert modbus_conversation.covered(modbus_conversation.modbus, (1, "holding_registers", "read"), 0, 9)
    assert not modbus_conversation.covered(
        modbus_conversation.modbus, (1, "holding_registers", "read"), 5, 10
    )
    assert modbus_conversation.covered(modbus_conversation.modbus, (1, "holding_registers", "write"), 20, 20)
    assert modbus_conversation.value_range("written", "hr:1:20") == [100, 119]
    assert modbus_conversation.value_range("read", "hr:1:0") == [0, 19]
    poll = modbus_conversation.polling["3:1:0:10"]
    assert poll.median == pytest.approx(1.0) and poll.spread == pytest.approx(0.0) and poll.count == 19
    dnp3_conversation = baseline.conversation((CLIENT, SERVER, "tcp", 20000, "dnp3"))
    assert dnp3_conversation is not None
    assert dnp3_conversation.covered(dnp3_conversation.dnp3_points, (5, 12), 3, 3)
    assert dnp3_conversation.value_range("written", "g41:10:1") == [55, 55]
    assert dnp3_conversation.value_range("read", "g30:10:2") == [7.5, 7.5]
    s7_conversation = baseline.conversation((CLIENT, SERVER, "tcp", 102, "s7comm"))
    assert s7_conversation is not None
    assert s7_conversation.covered(s7_conversation.s7, ("write", "DB5"), 10, 13)
    # Written values are typed per element as values read; a block of bytes byte by byte.
    assert s7_conversation.value_range("written", "DB5:10:WORD") == [42, 42]
    assert s7_conversation.value_range("written", "DB5:12:WORD") == [43, 43]
    assert s7_conversation.value_range("written", "FLAGS:102.2:BIT") == [1, 1]
    assert [s7_conversation.value_range("written", f"DB5:{a}:BYTE") for a in (20, 21, 22)] == [
        [7, 7],
        [0, 0],
        [9, 9],
    ]
    assert s7_conversation.value_range("written", "DB5:20:BLOCK") is None
    assert s7_conversation.value_range("written", "DB5:10") is None
    assert baseline.knows_pair(CLIENT, SERVER) and not baseline.knows_pair(SERVER, CLIENT)
    assert baseline.conversation((CLIENT, SERVER, "tcp", 445, "smb")) is not None
    # A rejected connection attempt is not a conversation; its client is an asset (the inventory
    # lists every sender), the server answered with a reset and is one too.
    assert baseline.knows_ip("10.0.0.77") and not baseline.knows_pair("10.0.0.77", SERVER)
    assert baseline.assets[0] == {"ip": CLIENT, "macs": ["00:11:22:33:44:55"]}


def test_learner_keeps_the_units_and_link_addresses_requests_addressed(tmp_path: Path) -> None:
    learner = BaselineLearner()
    for unit in (1, 2, 3, 17, 1, 2):
        learner.observe(modbus(3, unit_id=unit, address=0, quantity=1))
    learner.observe(modbus(43, mei_type=14, unit_id=2))  # identification read of unit 2
    learner.observe(modbus(43, mei_type=13, unit_id=3))  # MEI 13 (CANopen) identifies nothing
    # Answers address nothing: unit 99 is not learned from one.
    learner.observe(modbus(3, request=False, unit_id=99, address=0, quantity=1, values=(1,)))
    for dst in (10, 11, 10):
        learner.observe(dnp3(1, dst=dst))
    learner.observe(dnp3(1, dst=11, objects=({"group": 0, "variation": 254},)))  # device attributes
    # A link-layer request teaches nothing (found in review: a link status sweep while learning
    # would have made every probed address routine).
    learner.observe(dnp3(None, dst=12))
    learner.observe(dnp3(1, dst=14, client="10.0.0.6", flow_id="other"))
    # The same pair on a second port (a gateway's second listener).
    learner.observe(dataclasses.replace(modbus(3, unit_id=40, flow_id="f-5020"), dst_port=5020))
    learned = learner.baseline()
    gateway = learned.conversation((CLIENT, SERVER, "tcp", 502, "modbus"))
    master = learned.conversation((CLIENT, SERVER, "tcp", 20000, "dnp3"))
    assert gateway is not None and gateway.addresses.ranges == [[1, 3], [17, 17]]
    assert gateway.identified.ranges == [[2, 2]]
    assert master is not None and master.addresses.ranges == [[10, 11]]
    assert master.identified.ranges == [[11, 11]]
    text = learned.to_yaml()
    assert "unit_ids: [[1, 3], [17, 17]]" in text and "identified_units: [[2, 2]]" in text
    assert "link_addresses: [[10, 11]]" in text and "identified_addresses: [[11, 11]]" in text
    # Every port of the pair merged, the conversations themselves untouched.
    profile = learned.pair_profile(CLIENT, SERVER, "modbus")
    assert profile is not None and profile.addresses.ranges == [[1, 3], [17, 17], [40, 40]]
    assert gateway.addresses.ranges == [[1, 3], [17, 17]]
    assert learned.pair_profile(CLIENT, SERVER, "dnp3") is master
    assert learned.pair_profile("10.0.0.6", SERVER, "modbus") is None
    # Saved, loaded from the YAML (the cache removed), then from the cache it wrote: the same.
    path = tmp_path / "baseline.yaml"
    learned.save(path)
    cache = tmp_path / ".baseline.yaml.cache"
    assert cache.is_file()
    cache.unlink()
    for loaded in (Baseline.load(path), Baseline.load(path)):
        again = loaded.conversation((CLIENT, SERVER, "tcp", 502, "modbus"))
        assert again is not None and again.addresses.ranges == [[1, 3], [17, 17]]
        assert again.identified.ranges == [[2, 2]]
        assert cache.is_file()


def test_yaml_round_trip_is_exact_sorted_and_readable(tmp_path: Path) -> None:
    baseline = _learned()
    path = tmp_path / "baseline.yaml"
    baseline.save(path)
    text = path.read_text()
    assert text.startswith("# ics-monitor baseline")
    assert "hr:1:20: [100, 119]" in text and "[[0, 9]]" in text
    # Numbers in keys sort as numbers, so an analyst finds address 9 before 10.
    conversation = model.Conversation("a", "b", "tcp", 502, "modbus")
    for point in ("hr:1:10", "hr:1:9", "co:2:1"):
        conversation.add_value("read", point, 1)
    for code in ("16", "3"):
        conversation.count_function(code, "F")
    as_dict = conversation.to_dict()
    assert list(as_dict["values"]["read"]) == ["co:2:1", "hr:1:9", "hr:1:10"]
    assert list(as_dict["functions"]) == ["3", "16"]
    data = yaml.safe_load(text)
    assert list(data) == ["format", "learned", "assets", "conversations"]
    loaded = Baseline.load(path)
    assert loaded.to_dict() == baseline.to_dict()
    assert loaded.to_yaml() == text
    assert baseline.diff(loaded) == [] and baseline.diff(loaded, counts=True) == []


def test_hand_edited_baseline_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(
        "format: ics-monitor-baseline/1\nconversations:\n  x:\n    client: 1.1.1.1\n    server: 2.2.2.2\n"
        "    transport: tcp\n    port: 502\n    protocol: modbus\n    functions: {'3': {name: READ}}\n"
    )
    loaded = Baseline.load(path)
    conversation = loaded.conversation(("1.1.1.1", "2.2.2.2", "tcp", 502, "modbus"))
    assert conversation is not None and conversation.knows_function("3")
    assert loaded.knows_ip("1.1.1.1")
    path.write_text("format: other\n")
    with pytest.raises(ValueError, match="not an ics-monitor baseline"):
        Baseline.load(path)
    path.write_text("format: [\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        Baseline.load(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("    peak_requests_10s: .inf\n", "peak_requests_10s must be a whole number from 0, not inf"),
        ("    peak_requests_10s: -5\n", "peak_requests_10s must be a whole number from 0, not -5"),
        ("    peak_errors_10s: abc\n", "peak_errors_10s must be a whole number from 0, not 'abc'"),
        ("    peak_errors_10s: 1.9\n", "peak_errors_10s must be a whole number from 0, not 1.9"),
        ("    longest_silence: -1\n", "longest_silence must be seconds from 0, not -1"),
        ("    longest_silence: .nan\n", "longest_silence must be seconds from 0, not nan"),
        ("    longest_silence: '12'\n", "longest_silence must be seconds from 0, not '12'"),
        (
            "    polling: {'3:1:0:10': {median: 1.0, window: [.nan, 1]}}\n",
            "poll 3:1:0:10: window must be \\[low, high\\]",
        ),
        ("    polling: {'3:1:0:10': {median: 1.0, window: [2, 1]}}\n", "window must be"),
        ("    polling: {'3:1:0:10': {median: 1.0, window: [1, .inf]}}\n", "window must be"),
        ("    polling: {'3:1:0:10': {median: 1.0, window: '12'}}\n", "window must be"),
        ("    polling: {'3:1:0:10': {median: 1.0, samples: .inf}}\n", "b.yaml: "),
    ],
)
def test_bad_learned_rates_and_windows_name_the_field(tmp_path: Path, line: str, message: str) -> None:
    """Hand-edited peaks and poll windows of the wrong kind stop the load with a message naming the
    conversation and the field (a NaN window would have switched drift checks off quietly)."""
    path = tmp_path / "b.yaml"
    path.write_text(
        "format: ics-monitor-baseline/1\nconversations:\n  x:\n    client: 1.1.1.1\n    server: 2.2.2.2\n"
        "    transport: tcp\n    port: 502\n    protocol: modbus\n" + line
    )
    with pytest.raises(ValueError, match=message):
        Baseline.load(path)


def test_streamed_text_equals_one_nested_dump_and_streamed_load_equals_safe_load(tmp_path: Path) -> None:
    """Entries emitted one at a time give the text a single dump of the whole document gives."""
    baseline = _learned()
    # A flow list long enough to wrap, inside a nested entry: wrapping must land where it would.
    wide = model.Conversation("10.9.9.9", "10.0.0.9", "tcp", 502, "modbus")
    for address in range(0, 400, 2):
        wide.modbus[(1, "holding_registers", "read")] = wide.modbus.get(
            (1, "holding_registers", "read"), model.RangeSet()
        )
        wide.modbus[(1, "holding_registers", "read")].add(address, address)
    baseline.conversations[wide.key] = wide
    baseline.asset_macs.setdefault("10.9.9.9", ["00:00:00:00:00:0a", "00:00:00:00:00:0b"])
    whole = yaml.dump(
        baseline.to_dict(),
        Dumper=model._FlowStyleDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=110,
    )
    text = baseline.to_yaml()
    header, _, body = text.partition("\nformat:")
    assert all(line.startswith("# ") for line in header.splitlines())
    assert "format:" + body == whole
    assert max(len(line) for line in text.splitlines()) > 100  # the wrapping case was exercised
    path = tmp_path / "baseline.yaml"
    baseline.save(path)
    assert path.read_text() == text and not (tmp_path / ".baseline.yaml.partial").exists()
    streamed = Baseline.load(path)
    parsed = Baseline.from_dict(yaml.safe_load(text))
    assert streamed.to_dict() == parsed.to_dict() == baseline.to_dict()
    empty = Baseline()
    assert "conversations: {}" in empty.to_yaml()
    empty.save(path)
    assert Baseline.load(path).to_dict() == empty.to_dict()


def _typed(value: object) -> object:
    """A value with its types spelled out: 1, 1.0 and True, 0.0 and -0.0 differ; order counts."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_typed(item) for item in value))
    if isinstance(value, dict):
        return ("dict", tuple((_typed(key), _typed(item)) for key, item in value.items()))
    return (type(value).__name__, repr(value))


def _state(baseline: Baseline) -> object:
    """Everything a detector reads of a baseline, in order and with types."""
    return _typed(
        (
            baseline.learned,
            baseline.asset_macs,
            [
                (
                    key,
                    c.flows,
                    c.requests,
                    c.peaks,
                    c.functions,
                    c.addresses.ranges,
                    c.identified.ranges,
                    [(k, r.ranges) for k, r in c.modbus.items()],
                    [(k, r.ranges) for k, r in c.dnp3_points.items()],
                    [(k, r.ranges) for k, r in c.s7.items()],
                    c.values,
                    [(k, (p.median, p.spread, p.count, p.window)) for k, p in c.polling.items()],
                    [(k, (r.median, r.count, r.window)) for k, r in c.responses.items()],
                )
                for key, c in baseline.conversations.items()
            ],
        )
    )


def _from_cache_and_yaml(path: Path) -> tuple[Baseline, Baseline]:
    cache = path.with_name(f".{path.name}.cache")
    assert cache.is_file()
    from_cache = Baseline.load(path)
    cache.unlink()
    return from_cache, Baseline.load(path)


def test_cache_is_used_only_for_the_exact_yaml_it_was_written_with(tmp_path: Path) -> None:
    import orjson

    baseline = _learned()
    path = tmp_path / "baseline.yaml"
    old_cache = tmp_path / ".baseline.yaml.json"
    old_cache.write_bytes(b'{"cache":"ics-monitor-baseline-cache/2"}\n')  # an older version's
    baseline.save(path)
    cache = tmp_path / ".baseline.yaml.cache"
    assert cache.is_file() and not old_cache.exists()
    from_cache, from_yaml = _from_cache_and_yaml(path)
    assert from_cache.to_dict() == from_yaml.to_dict() == baseline.to_dict()
    assert _state(from_cache) == _state(from_yaml)
    baseline.save(path)
    # An analyst's edit changes the YAML: the cache no longer matches and the edit counts.
    text = path.read_text()
    assert "hr:1:20: [100, 119]" in text
    path.write_text(text.replace("hr:1:20: [100, 119]", "hr:1:20: [100, 500]"))
    edited = Baseline.load(path)
    conversation = edited.conversation((CLIENT, SERVER, "tcp", 502, "modbus"))
    assert conversation is not None and conversation.value_range("written", "hr:1:20") == [100, 500]
    # The cache is what loads when it matches: a header, the tables of value keys and ranges, then
    # one line per conversation.
    baseline.save(path)
    lines = cache.read_bytes().splitlines(keepends=True)
    header = orjson.loads(lines[0])
    assert header["cache"] == "ics-monitor-baseline-cache/12" and header["format"] == FORMAT
    assert header["conversations"] == len(baseline.conversations) == len(lines) - 2
    keys, ranges = orjson.loads(lines[1])
    assert ["written", "hr:1:20"] in keys and [100, 119] in ranges
    # Changed since written, even into valid JSON (a digit): its body no longer matches the
    # digest in its header, and the YAML is read.
    changed = [[100, 120] if bounds == [100, 119] else bounds for bounds in ranges]
    cache.write_bytes(lines[0] + orjson.dumps([keys, changed]) + b"\n" + b"".join(lines[2:]))
    conversation = Baseline.load(path).conversation((CLIENT, SERVER, "tcp", 502, "modbus"))
    assert conversation is not None and conversation.value_range("written", "hr:1:20") == [100, 119]
    # A cache that matches the hash but is damaged inside falls back to the YAML, as does one of
    # another format or byte order, or a header of the wrong shape.
    record = orjson.loads(lines[2])
    record[8] = record[8][:-4]  # an index array cut short
    bad_index = list(record[:8]) + ["!!!!", record[9], record[10]]
    far_index = list(record[:8]) + [base64_of([len(keys) + 5]), base64_of([0]), record[10]]
    for damaged in (
        b"".join(lines) + lines[2],  # one conversation too many
        b"".join(lines)[:-20],  # cut inside a line
        b"".join(lines[:-1]),  # cut at a line's end: a conversation missing
        b"".join(lines) + b"junk\n",
        orjson.dumps({**header, "byteorder": "middle"}) + b"\n" + b"".join(lines[1:]),
        orjson.dumps({**header, "assets": {"10.0.0.1": 5}}) + b"\n" + b"".join(lines[1:]),
        orjson.dumps({**header, "assets": "x"}) + b"\n" + b"".join(lines[1:]),
        b"".join(lines[:2]) + b'["not","a","record"]\n' + b"".join(lines[3:]),
        b"".join(lines[:2]) + orjson.dumps(record) + b"\n" + b"".join(lines[3:]),
        b"".join(lines[:2]) + orjson.dumps(bad_index) + b"\n" + b"".join(lines[3:]),
        b"".join(lines[:2]) + orjson.dumps(far_index) + b"\n" + b"".join(lines[3:]),
        b"".join(lines[:1]) + b'[[["read"]],[]]\n' + b"".join(lines[2:]),
        b"not json",
        b'{"cache":"ics-monitor-baseline-cache/2","yaml_sha256":""}\n',
    ):
        cache.write_bytes(damaged)
        loaded = Baseline.load(path)
        assert loaded.to_dict() == baseline.to_dict() and _state(loaded) == _state(from_yaml)
        # The load that fell back to the YAML wrote a good cache for the next one.
        rewritten = cache.read_bytes().splitlines()
        assert orjson.loads(rewritten[0]) == header and len(rewritten) == len(lines)


def base64_of(numbers: list[int]) -> str:
    import base64
    from array import array

    return base64.b64encode(array("I", numbers).tobytes()).decode()


HAND_EDITED = """format: ics-monitor-baseline/1
learned: {first: 1.5, window: [1, 2.5]}
assets:
  10.0.0.1: {macs: [zz, aa, "00:11:22:33:44:55"]}
conversations:
  x:
    client: 10.0.0.5
    server: 10.0.0.9
    protocol: modbus
    transport: tcp
    port: 502
    functions: {'6': {name: b, count: 1}, '3': {name: a, count: 1}}
    unit_ids: [[1, 2], 17]
    identified_units: [2]
    modbus_units: {'2': {read: {coils: [[1, 2]]}}, '1': {write: {holding_registers: [[3, 4]]}, read: {holding_registers: [[1, 1]]}}}
    dnp3_objects: {'5': {g41: [], g12: [[1, 1]]}}
    s7_areas: {write: {DB1: [[0, 1]]}, read: {DB1: [[0, 1]]}}
    values: {written: {'hr:1:10': [1, 2], 'hr:1:9': [-0.0, 2.5]}, read: {'hr:1:1': [0, 0], 'co:1:0': [false, true]}}
    polling:
      b: {median: 1.23456789, spread: -0.0, samples: 50, window: [1.0000001, 2.5]}
      a: {median: 2.0}
"""


def test_cache_loads_what_the_yaml_does_hand_edited_or_learned(tmp_path: Path) -> None:
    # A hand-edited file keeps its own order, figures and types; a learned baseline saved holds
    # what its YAML does (polls learned enough, rounded; sorted sections), in the order that
    # decides which points a capped server profile keeps.
    edited = tmp_path / "edited.yaml"
    edited.write_text(HAND_EDITED)
    Baseline.load(edited)  # from the YAML: writes the cache
    from_cache, from_yaml = _from_cache_and_yaml(edited)
    assert _state(from_cache) == _state(from_yaml)
    conversation = from_cache.conversation(("10.0.0.5", "10.0.0.9", "tcp", 502, "modbus"))
    assert conversation is not None and list(conversation.functions) == ["6", "3"]
    assert repr(conversation.polling["b"].spread) == "-0.0" and conversation.polling["a"].count == 0
    # What JSON cannot hold as it is (a key that is not text, a date, NaN, an integer past 64
    # bits, which orjson reads as a float) gets no cache at all.
    learned_line = "learned: {first: 1.5, window: [1, 2.5]}"
    for was, odd in (
        (learned_line, "learned: {2: b}"),
        (learned_line, "learned: {first: 2024-01-02}"),
        (learned_line, "learned: {first: .nan}"),
        ("'hr:1:1': [0, 0]", "'hr:1:1': [0, 123456789012345678901234567890]"),
        ("coils: [[1, 2]]", "coils: [[1, 123456789012345678901234567890]]"),
        ("median: 2.0", "median: .inf"),
    ):
        assert was in HAND_EDITED
        edited.write_text(HAND_EDITED.replace(was, odd))
        first = Baseline.load(edited)
        assert not edited.with_name(".edited.yaml.cache").exists()
        assert _state(Baseline.load(edited)) == _state(first)

    learner = BaselineLearner()
    for address in reversed(range(10_000, 10_000 + model.MAX_VALUE_POINTS)):
        learner.observe(modbus(6, client="10.0.0.6", flow_id="fb", address=address, quantity=1, values=(2,)))
    for address in range(3_000):
        learner.observe(modbus(6, client="10.0.0.5", flow_id="fa", address=address, quantity=1, values=(1,)))
    learned = learner.baseline()
    next(iter(learned.conversations.values())).polling["sparse"] = PollStats(0.123456789, None, 1)
    path = tmp_path / "baseline.yaml"
    learned.save(path)
    from_cache, from_yaml = _from_cache_and_yaml(path)
    assert _state(from_cache) == _state(from_yaml)
    profiles = [b.server_profile(SERVER, "tcp", 502, "modbus") for b in (from_cache, from_yaml)]
    assert profiles[0] is not None and profiles[1] is not None
    assert profiles[0].values == profiles[1].values


def test_unquoted_mac_and_ipv6_stay_text_not_base60_numbers(tmp_path: Path) -> None:
    # YAML 1.1 reads 10:20:30:40:50:51 as the base-60 integer 2488057851: an analyst writing a MAC
    # without quotes meant the MAC (the compiled load refused the file, the interpreted one took a
    # number).  From the YAML and from the cache alike.
    path = tmp_path / "b.yaml"
    path.write_text(
        "format: ics-monitor-baseline/1\nlearned: {first: 1.5}\n"
        "assets:\n  10.0.0.1: {macs: [10:20:30:40:50:51, 00:11:22:33:44:55]}\n"
        "  2001:db8::1: {macs: [12:34:56:12:34:56]}\n"
    )
    from_yaml = Baseline.load(path)
    assert from_yaml.asset_macs == {
        "10.0.0.1": ["10:20:30:40:50:51", "00:11:22:33:44:55"],
        "2001:db8::1": ["12:34:56:12:34:56"],
    }
    from_cache, _ = _from_cache_and_yaml(path)
    assert _state(from_cache) == _state(from_yaml)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("'hr:1:1': [0, 0]", "'hr:1:1': [low, high]"), "value range of hr:1:1 must be [low, high]"),
        (("'hr:1:1': [0, 0]", "'hr:1:1': [null, null]"), "value range of hr:1:1 must be"),
        (("'hr:1:1': [0, 0]", "'hr:1:1': '14'"), "value range of hr:1:1 must be"),
        (("'hr:1:1': [0, 0]", "'hr:1:1': [1480, 1400]"), "with low <= high, not [1480, 1400]"),
        (("'hr:1:1': [0, 0]", "'hr:1:1': [.nan, .inf]"), "value range of hr:1:1 must be"),
        (("unit_ids: [[1, 2], 17]", "unit_ids: [one]"), "unit_ids must be a list of [first, last] ranges"),
        (("unit_ids: [[1, 2], 17]", "unit_ids: [[1, 256]]"), "(or single numbers) 0-255, not [[1, 256]]"),
        (("unit_ids: [[1, 2], 17]", "unit_ids: 17"), "unit_ids must be a list"),
        (
            ("unit_ids: [[1, 2], 17]", "link_addresses: [[1, 2]]"),
            "link_addresses belongs to dnp3 conversations",
        ),
        (("identified_units: [2]", "identified_units: [x]"), "identified_units must be a list"),
        (("port: 502", "port: -502"), "port must be a number 0..65535, not -502"),
        (("port: 502", "port: yes"), "port must be a number 0..65535, not True"),
        (("port: 502", "port: 99999999999999999999999"), "port must be a number 0..65535"),
        (("protocol: modbus", "protocol: [modbus]"), "protocol must be a protocol name"),
        (("transport: tcp", "transport: [tcp]"), "transport must be tcp, udp, icmp"),
        (('macs: [zz, aa, "00:11:22:33:44:55"]', "macs: '00:11:22:33:44:55'"), "macs must be a list"),
    ],
)
def test_hand_edited_values_of_the_wrong_kind_are_refused_in_one_line(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    # Each once loaded and then failed a detector on every record, crashed `baseline show`, or
    # made a conversation no traffic matches (its alerts silently gone).
    assert edit[0] in HAND_EDITED
    path = tmp_path / "b.yaml"
    path.write_text(HAND_EDITED.replace(*edit))
    with pytest.raises(ValueError, match=re.escape(message)):
        Baseline.load(path)
    # A quoted port and an upper-case transport are what they say.
    path.write_text(
        HAND_EDITED.replace("port: 502", "port: '502'").replace("transport: tcp", "transport: TCP")
    )
    assert Baseline.load(path).conversation(("10.0.0.5", "10.0.0.9", "tcp", 502, "modbus")) is not None


def test_streamed_load_handles_anchors_types_and_rejects_odd_documents(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    # Anchors and aliases, quoted and typed scalars, a float value: what a hand-edited file may hold.
    path.write_text(
        "format: ics-monitor-baseline/1\nlearned: {first: 1.5}\nconversations:\n"
        "  x: &base\n    client: 1.1.1.1\n    server: 2.2.2.2\n    transport: tcp\n    port: '502'\n"
        "    protocol: modbus\n    values: {read: {'hr:1:3': [0.5, 2]}}\n"
        "  y:\n    <<: *base\n    client: 1.1.1.2\n"
    )
    loaded = Baseline.load(path)
    first = loaded.conversation(("1.1.1.1", "2.2.2.2", "tcp", 502, "modbus"))
    assert first is not None and first.value_range("read", "hr:1:3") == [0.5, 2]
    second = loaded.conversation(("1.1.1.2", "2.2.2.2", "tcp", 502, "modbus"))  # from the merge key
    assert second is not None and second.value_range("read", "hr:1:3") == [0.5, 2]
    assert loaded.learned == {"first": 1.5}
    for text, reason in (
        ("", "not an ics-monitor baseline"),
        ("- 1\n- 2\n", "not an ics-monitor baseline"),
        ("format: ics-monitor-baseline/1\n---\nformat: x\n", "single document"),
        ("format: ics-monitor-baseline/1\nconversations:\n  x: *nowhere\n", "not valid YAML"),
        ("format: ics-monitor-baseline/1\nconversations:\n  x: {client: a}\n", "server"),
        ("format: ics-monitor-baseline/1\nconversations:\n  x: !!python/object:os.system {}\n", "YAML"),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=reason):
            Baseline.load(path)


def test_diff_reports_additions_removals_and_changes() -> None:
    before = _learned()
    learner = BaselineLearner()
    learner.observe(modbus(3, address=0, quantity=10))
    learner.observe(modbus(16, address=40, quantity=2, values=(1, 2)))
    after = learner.baseline()
    lines = after.diff(before)
    assert any(line.startswith("+ conversations.10.0.0.5 -> 10.0.0.9 dnp3 tcp/20000") for line in lines)
    assert any(
        line.startswith("- conversations.10.0.0.5 -> 10.0.0.9 modbus tcp/502.functions.16.name")
        for line in lines
    )
    assert not any(".count" in line or ".requests" in line for line in lines)
    assert any(".requests" in line for line in after.diff(before, counts=True))


def test_range_set_merges_and_coalesces() -> None:
    ranges = RangeSet()
    for start, end in ((10, 12), (20, 25), (13, 14), (0, 3), (4, 4), (24, 30)):
        ranges.add(start, end)
    assert ranges.to_list() == [[0, 4], [10, 14], [20, 30]]
    assert ranges.covers(11, 14) and not ranges.covers(14, 20) and not ranges.covers(5, 5)
    many = RangeSet()
    for i in range(model.MAX_RANGES + 10):
        many.add(i * 10, i * 10)
    assert len(many) == model.MAX_RANGES
    assert all(many.covers(i * 10, i * 10) for i in range(model.MAX_RANGES + 10))


def test_range_set_names_what_it_misses() -> None:
    ranges = RangeSet([[0, 4], [10, 14], [20, 30]])
    assert ranges.missing(2, 25) == [(5, 9), (15, 19)]
    assert ranges.missing(11, 13) == []
    assert ranges.missing(28, 40) == [(31, 40)]
    assert ranges.missing(-5, 0) == [(-5, -1)]
    assert RangeSet().missing(3, 7) == [(3, 7)]


@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 20)), max_size=40),
    st.integers(0, 320),
    st.integers(0, 40),
)
def test_range_set_missing_and_covered_make_the_whole(
    spans: list[tuple[int, int]], start: int, width: int
) -> None:
    ranges = RangeSet()
    for low, size in spans:
        ranges.add(low, low + size)
    end = start + width
    gaps = ranges.missing(start, end)
    holes = {value for low, high in gaps for value in range(low, high + 1)}
    for value in range(start, end + 1):
        assert (value in holes) != ranges.covers(value, value)
    assert all(low <= high for low, high in gaps) and gaps == sorted(gaps)


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 20)), max_size=200))
def test_range_set_covers_everything_added(spans: list[tuple[int, int]]) -> None:
    ranges = RangeSet()
    for start, width in spans:
        ranges.add(start, start + width)
    for start, width in spans:
        assert ranges.covers(start, start + width)
    flat = ranges.to_list()
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(flat))


@given(st.lists(st.tuples(st.integers(-5, 500), st.integers(-3, 20)), max_size=60))
def test_range_set_from_a_list_equals_adding_each(spans: list[tuple[int, int]]) -> None:
    # The constructor adopts a list already in canonical form as is (what to_dict wrote) and adds
    # any other one range by range: both must give what adding each range gives.
    pairs = [(start, start + width) for start, width in spans]
    added = RangeSet()
    for start, end in pairs:
        added.add(start, end)
    assert RangeSet(pairs).to_list() == added.to_list()
    assert RangeSet(added.to_list()).to_list() == added.to_list()


def test_loaded_baseline_holds_no_reference_cycle(tmp_path: Path) -> None:
    # Baseline.load freezes what it builds out of the cyclic collector's sight: that is only
    # harmless while the model has no cycle (a dropped baseline is then freed by reference counts).
    path = tmp_path / "baseline.yaml"
    _learned().save(path)
    gc.collect()
    loaded = Baseline.load(path)
    loaded = Baseline.load(path)  # the second load takes the JSON cache
    gc.unfreeze()
    gc.collect()
    del loaded
    assert gc.collect() == 0


def test_memory_is_capped_by_conversations_not_packets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "MAX_CONVERSATIONS", 3)
    learner = BaselineLearner()
    for i in range(5000):
        learner.observe(
            modbus(
                16,
                address=i * 3,
                quantity=1,
                values=(i,),
                ts=1000.0 + i,
                frame=i,
                client=f"10.1.0.{i % 10}",
                flow_id=f"f{i % 10}",
            )
        )
    assert len(learner.conversations) == 3
    conversation = next(iter(learner.conversations.values()))
    assert len(conversation.values) <= model.MAX_VALUE_POINTS
    assert all(len(r) <= model.MAX_RANGES for r in conversation.modbus.values())
    assert all(len(p.intervals) <= model.MAX_INTERVALS for p in conversation.polling.values())


def test_non_protocol_records_are_ignored() -> None:
    from tests.unit.detect.records import anomaly

    learner = BaselineLearner()
    learner.observe(anomaly("modbus.length_mismatch"))
    assert learner.baseline().to_dict()["conversations"] == {} and learner.events == 0


def test_probes_while_learning_are_not_learned() -> None:
    scanner, sender = "10.0.0.66", "10.0.0.30"
    udp = {"transport": "udp", "packets_to_client": 0, "reply": 0, "state": None}
    learner = BaselineLearner()
    # A scan: a datagram or two to each port with nothing back, a connect scan reset at once.
    for host in range(1, 4):
        for port in (161, 20000, 47808):
            target = f"10.0.1.{host}"
            learner.observe_flow(
                flow(src_ip=scanner, dst_ip=target, dst_port=port, packets_to_server=2, **udp)
            )
    # Host discovery: a lone ACK to port 80 and pings, nothing back (duplicated by two SPAN ports).
    learner.observe_flow(
        flow(
            src_ip=scanner, dst_ip="10.0.1.9", dst_port=80, state="midstream", payload=0, packets_to_client=0
        )
    )
    learner.observe_flow(
        flow(
            src_ip=scanner, dst_ip="10.0.1.9", dst_port=0, packets_to_server=4, **{**udp, "transport": "icmp"}
        )
    )
    for port in (102, 502):
        learner.observe_flow(
            flow(
                src_ip=scanner,
                dst_port=port,
                state="reset",
                payload=0,
                packets_to_server=2,
                packets_to_client=1,
            )
        )
    # What the dissector decoded is learned even from a probe: enforcing judges it by its records.
    learner.observe(dataclasses.replace(dnp3(23, flow_id="probe-dnp3", client=scanner), transport="udp"))
    learner.observe_flow(
        flow(
            src_ip=scanner,
            dst_port=20000,
            flow_id="probe-dnp3",
            app_protocol="dnp3",
            packets_to_server=1,
            **udp,
        )
    )
    # A one-way stream (more datagrams than a probe's), an exchange, a connection opened and
    # closed without payload (a health check): conversations.
    learner.observe_flow(flow(src_ip=sender, dst_port=514, packets_to_server=4, **udp))
    learner.observe_flow(flow(dst_port=502))
    learner.observe_flow(flow(src_ip=sender, dst_port=502, state="closed", payload=0, packets_to_client=3))
    baseline = learner.baseline()
    learned = {(c.client, c.port, c.protocol) for c in baseline.conversations.values()}
    assert learned == {
        (sender, 514, "unknown"),
        (CLIENT, 502, "unknown"),
        (sender, 502, "unknown"),
        (scanner, 20000, "dnp3"),
    }
    assert not baseline.knows_pair(scanner, "10.0.1.1") and not baseline.knows_ip("10.0.1.9")
    assert not any(baseline.knows_ip(f"10.0.1.{host}") for host in range(1, 4))
    assert baseline.knows_ip(scanner)  # a host that sent traffic, as the inventory has it


def test_senders_of_discovery_only_are_assets_but_not_conversations() -> None:
    learner = BaselineLearner()
    mdns = {"dst_port": 5353, "transport": "udp", "packets_to_client": 0, "reply": 0, "state": None}
    learner.observe_flow(flow(src_ip="10.0.0.70", dst_ip="224.0.0.251", packets_to_server=9, **mdns))
    learner.observe_flow(flow(src_ip="10.0.0.71", dst_ip="10.0.0.255", packets_to_server=1, **mdns))
    baseline = learner.baseline()
    assert baseline.knows_ip("10.0.0.70") and baseline.knows_ip("10.0.0.71")
    assert not baseline.conversations and not baseline.knows_ip("224.0.0.251")


def test_arp_senders_are_known_assets() -> None:
    from ics_monitor.events.base import ArpEvent

    learner = BaselineLearner()
    learner.observe(
        ArpEvent(
            ts=1.0,
            frame=1,
            operation=1,
            operation_name="request",
            sender_mac="00:90:e8:0a:0b:01",
            sender_ip="192.168.10.1",
            target_mac="00:00:00:00:00:00",
            target_ip="192.168.10.11",
        )
    )
    baseline = learner.baseline()
    assert baseline.knows_ip("192.168.10.1") and baseline.knows_mac("00:90:e8:0a:0b:01")
    assert not baseline.knows_ip("192.168.10.11") and learner.events == 0


def test_loading_costs_little_per_learned_point(tmp_path: Path) -> None:
    # 500 clients of one server that learned the same 400 registers: their keys and the usual
    # ranges are shared objects, and the cache is read a conversation at a time, so the load
    # peaks at a small cost per point (it was 380 bytes: a parsed document plus a copy of each).
    import tracemalloc

    from ics_monitor.inventory import baseline as module

    conversations = {
        str(i): {
            "client": f"10.1.{i // 250}.{i % 250}",
            "server": "10.0.0.1",
            "protocol": "modbus",
            "transport": "tcp",
            "port": 502,
            "values": {"read": {f"hr:1:{a}": [a % 3, a % 3 + a % 2] for a in range(400)}},
        }
        for i in range(500)
    }
    path = tmp_path / "baseline.yaml"
    Baseline.from_dict({"format": "ics-monitor-baseline/1", "conversations": conversations}).save(path)
    del conversations
    assert module._VALUE_KEYS == {} and module._RANGES == {}  # nothing shared outlives a load
    tracemalloc.start()
    try:
        loaded = Baseline.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert module._VALUE_KEYS == {} and module._RANGES == {}
    assert len(loaded.conversations) == 500
    conversation = loaded.conversation(("10.1.1.3", "10.0.0.1", "tcp", 502, "modbus"))
    assert conversation is not None and conversation.value_range("read", "hr:1:7") == [1, 2]
    assert peak / (500 * 400) < 100, f"{peak / (500 * 400):.0f} bytes per point"


def test_shared_ranges_keep_their_types_and_signs(tmp_path: Path) -> None:
    # Only integer ranges are shared: 0.0 and -0.0, 1 and 1.0 stay what each conversation learned.
    conversations = {
        str(i): {
            "client": f"10.1.0.{i}",
            "server": "10.0.0.1",
            "protocol": "modbus",
            "transport": "tcp",
            "port": 502,
            "values": {"read": {"hr:1:0": bounds}},
        }
        for i, bounds in enumerate(([0, 1], [0.0, 1.0], [-0.0, 0.0], [0, 1]))
    }
    path = tmp_path / "baseline.yaml"
    Baseline.from_dict({"format": "ics-monitor-baseline/1", "conversations": conversations}).save(path)
    for loaded in (Baseline.load(path), Baseline.load(path)):  # from the YAML's cache, twice
        ranges = [
            loaded.conversation((f"10.1.0.{i}", "10.0.0.1", "tcp", 502, "modbus")).values[("read", "hr:1:0")]  # type: ignore[union-attr]
            for i in range(4)
        ]
        assert [tuple(map(repr, r)) for r in ranges] == [
            ("0", "1"),
            ("0.0", "1.0"),
            ("-0.0", "0.0"),
            ("0", "1"),
        ]
        assert ranges[0] is ranges[3]
    assert "hr:1:0: [-0.0, 0.0]" in path.read_text()


def test_a_read_only_directory_still_loads(tmp_path: Path) -> None:
    # A baseline shipped read-only (a config bundle, a read-only mount): no cache can be written
    # or removed, and the load reads the YAML, even past a stale cache of an older format.  As
    # root (CI), permissions do not stop writes: a read-only bind mount does.
    import os
    import stat
    import subprocess

    baseline = _learned()
    source = tmp_path / "source"
    source.mkdir()
    baseline.save(source / "baseline.yaml")
    (source / ".baseline.yaml.cache").write_bytes(b'{"cache":"ics-monitor-baseline-cache/1"}')
    if os.geteuid() == 0:
        target = tmp_path / "ro"
        target.mkdir()
        subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True)
            assert Baseline.load(target / "baseline.yaml").to_dict() == baseline.to_dict()
            assert (
                target / ".baseline.yaml.cache"
            ).read_bytes() == b'{"cache":"ics-monitor-baseline-cache/1"}'
        finally:
            subprocess.run(["umount", str(target)], check=True)
    else:
        source.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            assert Baseline.load(source / "baseline.yaml").to_dict() == baseline.to_dict()
        finally:
            source.chmod(stat.S_IRWXU)


def test_the_longest_silence_of_a_conversation_is_learned_both_ways_and_kept() -> None:
    """Requests and responses alike end a silence; a record out of time order does not make one."""
    learner = BaselineLearner()
    for ts, request in ((1000.0, True), (1000.2, False), (1003.0, True), (1012.0, False), (1011.0, True)):
        learner.observe(
            modbus(3, ts=ts, request=request, address=0, quantity=1, values=None if request else (1,))
        )
    baseline = learner.baseline()
    [conversation] = baseline.conversations.values()
    assert conversation.silence == 9.0  # 1003.0 -> 1012.0 (the response); 1011.0 came late
    [entry] = baseline.to_dict()["conversations"].values()
    assert entry["longest_silence"] == 9.0
    assert Baseline.from_dict(baseline.to_dict()).conversations[conversation.key].silence == 9.0


def test_answer_times_count_the_device_s_own_time() -> None:
    answers = model.AnswerTimes()
    server = ("10.0.0.9", 502)
    answers.request("f", 1, 10.0, "unit 1 function 3")
    assert answers.answer("f", server, 1, 10.25) == ("unit 1 function 3", 0.25)
    assert answers.answer("f", server, 1, 10.3) is None  # answered once
    # Pipelined: the second request waited for the first one's answer.
    answers.request("f", 3, 11.0, "unit 1 function 3")
    answers.request("f", 4, 11.0, "unit 2 function 3")
    assert answers.answer("f", server, 3, 11.5) == ("unit 1 function 3", 0.5)
    assert answers.answer("f", server, 4, 11.9) == ("unit 2 function 3", 11.9 - 11.5)
    # Another client's request sent before this one counts; one sent after it does not.
    answers.request("g", 1, 12.0, None)
    answers.request("f", 5, 12.1, "unit 1 function 3")
    answers.request("g", 2, 12.2, None)
    assert answers.answer("g", server, 1, 12.3) is None  # not timed, but the device was busy
    assert answers.answer("g", server, 2, 12.35) is None
    assert answers.answer("f", server, 5, 12.6) == ("unit 1 function 3", 12.6 - 12.3)
    # Another server's answers do not count.
    answers.request("h", 1, 13.0, "unit 1 function 3")
    answers.request("f", 6, 13.0, "unit 1 function 3")
    assert answers.answer("h", ("10.0.0.10", 502), 1, 13.5) is not None
    assert answers.answer("f", server, 6, 13.2) == ("unit 1 function 3", 13.2 - 13.0)
    # One answered before it was sent, an unknown request and another flow's: not timed.
    answers.request("k", 1, 40.0, "unit 1 function 3")
    assert answers.answer("m", server, 1, 40.1) is None
    assert answers.answer("k", server, 1, 39.0) is None
    assert answers.answer("k", server, 99, 40.1) is None


def test_answer_times_stay_bounded() -> None:
    answers = model.AnswerTimes()
    for frame in range(model.MAX_PENDING_PER_FLOW * 3):
        answers.request("f", frame, 1.0 + frame, "unit 1 function 3")
    assert len(answers.flows["f"]) <= model.MAX_PENDING_PER_FLOW
    for flow_number in range(model.MAX_TIMED_FLOWS + 10):
        answers.request(flow_number, 1, 1.0, "unit 1 function 3")
    assert len(answers.flows) <= model.MAX_TIMED_FLOWS


def test_response_stats_keep_block_medians_thinned_over_the_whole_window() -> None:
    stats = model.ResponseStats()
    for value in [0.001] * 7:
        stats.add(value)
    stats.summarise()
    assert stats.median is None and stats.window is None  # not one block yet
    blocks = model.MAX_RESPONSE_BLOCKS * 3
    for block in range(blocks):
        for _ in range(model.RESPONSE_BLOCK):
            stats.add(0.001 if block < blocks // 2 else 0.003)
    # Thinned evenly: the first half's blocks and the second half's both stay.
    assert len(stats.medians) < model.MAX_RESPONSE_BLOCKS
    assert 0.001 in stats.medians and 0.003 in stats.medians
    stats.summarise()
    assert stats.window == (0.001, 0.003)
    assert stats.count == 7 + blocks * model.RESPONSE_BLOCK


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"window": [0.5, 0.1]}, "window must be"),
        ({}, "give a median or a window"),
        ({"median": "fast"}, "median must be seconds from 0, not 'fast'"),
        (0.5, "must be a mapping of median, window and samples"),
        ({"median": 0.5, "samples": "many"}, "samples must be a whole number"),
        ({"median": 0.9, "window": [0.1, 0.2]}, "median 0.9 lies outside its window"),
    ],
)
def test_response_time_rejects_nonsense_naming_the_entry(tmp_path: Path, entry: object, message: str) -> None:
    document = {
        "format": FORMAT,
        "conversations": {
            "c": {
                "client": CLIENT,
                "server": SERVER,
                "protocol": "modbus",
                "transport": "tcp",
                "port": 502,
                "response_time": {"unit 1 function 3": entry},
            }
        },
    }
    path = tmp_path / "baseline.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        Baseline.load(path, keep_cache=False)
    assert "response_time unit 1 function 3" in str(raised.value)


def test_response_time_reads_hand_edits(tmp_path: Path) -> None:
    conversation = {
        "client": CLIENT,
        "server": SERVER,
        "protocol": "modbus",
        "transport": "tcp",
        "port": 502,
        "response_time": {
            "unit 1 function 3": {"median": 0.002, "window": [0.001, 0.004], "samples": 120},
            "unit 2 function 3": {"median": 0.5},  # written by hand: the median alone
            "unit 3 function 3": {"window": [0.2, 0.4]},
            "unit 4 function 3": {"median": 0.002, "window": [0.001, 0.004], "samples": 9},
        },
    }
    path = tmp_path / "baseline.yaml"
    path.write_text(yaml.safe_dump({"format": FORMAT, "conversations": {"c": conversation}}))
    learned = Baseline.load(path, keep_cache=False).conversation((CLIENT, SERVER, "tcp", 502, "modbus"))
    assert learned is not None
    responses = learned.responses
    assert responses["unit 1 function 3"].window == (0.001, 0.004)
    assert (responses["unit 2 function 3"].median, responses["unit 2 function 3"].window) == (0.5, (0.5, 0.5))
    assert responses["unit 3 function 3"].median == pytest.approx(0.3)
    # Written by hand without samples: judged (counts as enough); with too few: left out.
    assert responses["unit 2 function 3"].count == model.MIN_RESPONSE_SAMPLES
    saved = learned.to_dict()["response_time"]
    assert sorted(saved) == ["unit 1 function 3", "unit 2 function 3", "unit 3 function 3"]
