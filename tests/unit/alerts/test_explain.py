"""The explanation filler (``alerts.explain``, compiled): the edges ``detect.rules``' tests do not reach."""

from __future__ import annotations

from types import MappingProxyType

from ics_monitor.alerts.explain import as_text, explanation


def test_long_lists_and_mappings_are_cut_at_sixteen_items_and_say_so() -> None:
    assert as_text(list(range(17))) == ", ".join(str(n) for n in range(16)) + ", ..."
    assert as_text(tuple(range(16))) == ", ".join(str(n) for n in range(16))
    many = {f"k_{n}": n for n in range(17)}
    text = as_text(many)
    assert text.startswith("k 0 0, k 1 1") and text.endswith("k 15 15, ...")


def test_empty_containers_read_none_and_blank_values_are_left_out() -> None:
    assert as_text([]) == "none"
    assert as_text({}) == "none"
    assert as_text({"a": None, "b": ""}) == "none"
    assert as_text({"a": None, "exception_code": 2}) == "exception code 2"


def test_mappings_that_are_not_dicts_read_as_mappings() -> None:
    assert as_text(MappingProxyType({"block_type": "OB"})) == "block type OB"
    assert as_text([MappingProxyType({"n": 1}), 2]) == "n 1; 2"


def test_only_named_fields_are_converted_and_missing_ones_read_a_question_mark() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise AssertionError("a field no template names was converted")

    text = explanation(
        "{src_ip} wrote {values}.",
        " {why} ",
        "Check {dst_ip}.",
        frozenset({"src_ip", "values", "why", "dst_ip"}),
        {"src_ip": "10.0.0.1", "values": [1, 2], "unused": Unprintable()},
    )
    assert text == "10.0.0.1 wrote 1, 2. Why it matters: ? What to check: Check ?."
    # No names known (a template the loader could not parse): every field is converted.
    assert explanation("{a}", "{b}", "-", None, {"a": {"x_y": 1}, "b": (3,)}) == (
        "x y 1 Why it matters: 3 What to check: -"
    )
