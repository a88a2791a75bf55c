"""The YAML loader of rules, zones, settings and baselines."""

from __future__ import annotations

import pytest
import yaml

from ics_monitor.core.yamlfile import load_yaml


def test_colon_scalars_stay_text_other_numbers_as_yaml_says() -> None:
    document = load_yaml(
        "[10:20:30:40:50:51, 1:30, 1:30.5, 2001:db8::1, '1:2', !!int 1:30, 12, 0x1f, 0o7, 1_000, "
        "1.5, .inf, -2, true, null, 2024-01-02]"
    )
    assert document[:6] == ["10:20:30:40:50:51", "1:30", "1:30.5", "2001:db8::1", "1:2", 90]
    assert document[6:13] == [12, 31, "0o7", 1000, 1.5, float("inf"), -2]
    assert document[13] is True and document[14] is None and str(document[15]) == "2024-01-02"
    # The change is this loader's only: PyYAML's own safe loader still reads base 60.
    assert yaml.safe_load("10:20") == 620


def test_still_a_safe_loader() -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']")
