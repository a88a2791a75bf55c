"""Rules files: shipped set valid and complete, loader errors, explanations."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from ics_monitor.detect import DETECTORS, RuleError, RuleSet
from ics_monitor.detect.rules import RANGES, _template_names, default_directory

RULES_DIR = Path(__file__).resolve().parents[3] / "rules"

GOOD = """
rules:
  - id: ICS-1001
    name: stop
    title: Stop
    severity: 4
    category: c
    tactics: [TA0104]
    techniques: [T0858]
    params: {limit: 3}
    what: "{src_ip} stopped {dst_ip} ({items})."
    why: "Because {dst_ip} matters."
    check: "Check {missing}."
"""


def _write(tmp_path: Path, text: str, name: str = "s7comm.yaml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def test_shipped_rules_load_and_stay_in_their_ranges() -> None:
    assert default_directory() == RULES_DIR
    rules = RuleSet.load()
    assert len(rules) >= 55
    for rule in rules:
        stem = Path(rule.source).stem
        low, high = RANGES[stem]
        assert low <= int(rule.rule_id[4:]) <= high, rule.rule_id
        assert rule.explain({}).count("Why it matters:") == 1


def test_every_rule_has_a_detector_and_every_detector_rule_exists() -> None:
    rules = RuleSet.load()
    implemented = {rule_id for cls in DETECTORS for rule_id in cls.rule_ids}
    assert implemented == {rule.rule_id for rule in rules}


def test_readme_documents_every_range() -> None:
    readme = (RULES_DIR / "README.md").read_text()
    for stem, (low, high) in RANGES.items():
        assert re.search(rf"`{stem}\.yaml` \| ICS-{low}\.\.{high}", readme), stem
        assert (RULES_DIR / f"{stem}.yaml").is_file()


def test_explanation_fills_fields_lists_and_missing(tmp_path: Path) -> None:
    rule = RuleSet.load(_write(tmp_path, GOOD)).get("ICS-1001")
    text = rule.explain({"src_ip": "1.2.3.4", "dst_ip": "5.6.7.8", "items": [1, 2]})
    assert (
        text
        == "1.2.3.4 stopped 5.6.7.8 (1, 2). Why it matters: Because 5.6.7.8 matters. What to check: Check ?."
    )
    assert rule.tactics == ({"id": "TA0104", "name": "Execution"},)
    assert rule.throttle == 300.0 and rule.params == {"limit": 3}


def test_explanation_reads_mappings_as_words_never_as_a_python_repr(tmp_path: Path) -> None:
    rule = RuleSet.load(_write(tmp_path, GOOD)).get("ICS-1001")
    last = {"function": "READ_HOLDING_REGISTERS", "exception": None, "exception_code": 4}
    text = rule.explain(
        {"src_ip": "1.2.3.4", "dst_ip": last, "items": [{"type": "OB", "number": 1}, {"type": "DB"}]}
    )
    assert text.startswith(
        "1.2.3.4 stopped function READ_HOLDING_REGISTERS, exception code 4 (type OB, number 1; type DB)."
    )
    assert "{" not in text and "'" not in text
    assert rule.explain({"src_ip": {}, "items": [{}]}).startswith("none stopped ? (none).")


def test_explanation_converts_only_the_named_fields_and_reads_as_with_every_field(tmp_path: Path) -> None:
    # explain() converts only the fields its templates name: the text must be that of every field.
    rule = RuleSet.load(_write(tmp_path, GOOD)).get("ICS-1001")
    assert rule.names == {"src_ip", "dst_ip", "items", "missing"}
    fields = {"src_ip": "1.2.3.4", "dst_ip": "5.6.7.8", "items": (1, 2), "other": [9]}
    assert rule.explain(fields).startswith("1.2.3.4 stopped 5.6.7.8 (1, 2). Why it matters:")
    assert _template_names(["{a.b} {c[0]} {d!r:>5}", "{{e}}"]) == {"a", "c", "d"}
    assert _template_names(["{a:>{width}}"]) is None  # a field inside a format spec: give every field
    assert _template_names(["{a"]) is None
    for shipped in RuleSet.load():
        assert shipped.names is not None, shipped.rule_id
        every = {name: [name, 2] for name in shipped.names} | {"unrelated": 1}
        reference = dataclasses.replace(shipped)  # the same templates, explained with every field
        object.__setattr__(reference, "names", None)
        assert shipped.explain(every) == reference.explain(every), shipped.rule_id


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("ICS-1001", "ICS-2001"), "outside the s7comm range"),
        (("ICS-1001", "X1"), "must look like ICS-1234"),
        (("severity: 4", "severity: 7"), "severity"),
        (("T0858", "T9999"), "unknown ATT&CK"),
        (("TA0104", "TA9999"), "unknown ATT&CK"),
        (("name: stop", "name: Stop Now"), "snake_case"),
        (("    title: Stop\n", ""), "missing title"),
        (("    params:", "    colour: red\n    params:"), "unknown keys colour"),
        (("({items})", "({items:02x})"), "does not format"),
    ],
)
def test_bad_rules_are_rejected_with_the_file_named(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    with pytest.raises(RuleError, match=message) as error:
        RuleSet.load(_write(tmp_path, GOOD.replace(*edit)))
    assert "s7comm.yaml" in str(error.value)


def test_duplicates_and_missing_things(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    (tmp_path / "dnp3.yaml").write_text(GOOD.replace("ICS-1001", "ICS-1201"))
    with pytest.raises(RuleError, match=r"rule name .stop. used by ICS-1201 and ICS-1001"):
        RuleSet.load(tmp_path)
    (tmp_path / "dnp3.yaml").unlink()
    (tmp_path / "local.yaml").write_text(GOOD.replace("name: stop", "name: other"))
    with pytest.raises(RuleError, match="ICS-1001 defined twice"):
        RuleSet.load(tmp_path)
    with pytest.raises(RuleError, match="does not exist"):
        RuleSet.load(tmp_path / "nope")
    (tmp_path / "local.yaml").write_text("rules: 3")
    with pytest.raises(RuleError, match="'rules' list"):
        RuleSet.load(tmp_path)


def test_params_enablement_and_configured_copy(tmp_path: Path) -> None:
    rules = RuleSet.load(_write(tmp_path, GOOD))
    assert rules.param("ICS-1001", "limit") == 3
    with pytest.raises(RuleError, match="lacks parameter 'other'"):
        rules.param("ICS-1001", "other")
    with pytest.raises(KeyError):
        rules.get("ICS-1999")
    off = rules.configured("ICS-1001", enabled=False, limit=9)
    assert not off.enabled("ICS-1001") and off.param("ICS-1001", "limit") == 9
    assert rules.enabled("ICS-1001") and rules.param("ICS-1001", "limit") == 3
    assert not rules.enabled("ICS-1999")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("min_unit_ids: 16", 'min_unit_ids: "16"'), "'min_unit_ids' must be a number, not '16'"),
        (("min_unit_ids: 16", "min_unit_ids: 16.5"), "'min_unit_ids' must be a whole number"),
        (("min_unit_ids: 16", "min_unit_ids: null"), "'min_unit_ids' must be a number, not None"),
        (("min_unit_ids: 16", "min_unit_ids: true"), "'min_unit_ids' must be a number"),
        (("      min_unit_ids: 16\n", ""), "rule ICS-3001 lacks parameter 'min_unit_ids'"),
        (
            ("window: 600", "window: -600"),
            "'window' must be a number, 0 or more",
        ),
        (
            ("window: 600", "window: .nan"),
            "'window' must be a number, 0 or more",
        ),
        (
            ("name: modbus_unit_id_sweep\n", "name: modbus_unit_id_sweep\n    enabled: 'false'\n"),
            "enabled must be true or false",
        ),
        (("severity: 2\n", "severity: true\n"), "severity must be"),
        (
            ("name: modbus_unit_id_sweep\n", "name: modbus_unit_id_sweep\n    throttle: [1]\n"),
            "throttle must be",
        ),
        (
            ("protocol: modbus\n", "protocol: 502\n"),
            "protocol must be",
        ),
    ],
)
def test_a_copied_rules_directory_is_checked_against_the_shipped_kinds(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    # Detectors take parameters as they are (compiled, a count must be an int): a wrong kind is
    # refused at load with one line naming the file, the rule and the parameter.
    directory = tmp_path / "rules"
    directory.mkdir()
    for path in default_directory().glob("*.yaml"):
        (directory / path.name).write_text(path.read_text())
    recon = directory / "recon.yaml"
    shipped = recon.read_text()
    assert edit[0] in shipped
    recon.write_text(shipped.replace(*edit, 1))
    with pytest.raises(RuleError, match=re.escape(message)) as error:
        RuleSet.load(directory)
    assert str(error.value).startswith("recon.yaml: rule ICS-3001")
    # Whole-number counts stay whole; a time may be fractional.
    recon.write_text(shipped.replace("window: 600", "window: 2.5", 1))
    assert RuleSet.load(directory).param("ICS-3001", "window") == 2.5


def test_an_alert_takes_its_endpoints_from_every_kind_of_source() -> None:
    from ics_monitor.detect.api import Emitter
    from ics_monitor.inventory.assets import AssetChange
    from tests.unit.detect.records import CLIENT, anomaly, flow, modbus

    emitter = Emitter(RuleSet.load())
    change = AssetChange(
        kind="new_asset",
        asset_id="a1",
        ip="10.0.0.7",
        mac=None,
        field=None,
        before=None,
        after=None,
        ts=1.0,
        frame=1,
    )
    sources = [modbus(8, sub_function=1), anomaly("dnp3.bad_crc"), flow(service="http"), change, None]
    for number, source in enumerate(sources):
        # ICS-2001 names no protocol of its own: the alert's is the source's.
        emitter.fire("ICS-2001", f"key{number}", ts=1000.0 + number, source=source)
    event, fault, record, asset, nothing = [
        (a.flow_id, a.src_ip, a.dst_port, a.src_mac, a.community_id, a.protocol) for a in emitter.out
    ]
    assert event == ("f-modbus", CLIENT, 502, None, None, "modbus")
    assert fault == ("f-a", CLIENT, 502, None, None, "dnp3")  # an anomaly: its protocol field
    assert record[1:] == (CLIENT, 502, "00:11:22:33:44:55", "1:x", "http")  # a flow: MACs, service
    assert asset == (None, None, None, None, None, "asset_change")  # slotted: read by attribute
    assert nothing == (None, None, None, None, None, None)
