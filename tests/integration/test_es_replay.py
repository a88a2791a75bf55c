"""The main job feeds a real Elasticsearch: ``ics-monitor replay --es-url`` on the demo plant.

What the analyst's SIEM must end up with, counted in the cluster against the embedded store of the
same run: every alert once, every asset once (updated by id, never duplicated), the flow records;
a second replay of the same capture adds nothing; and with the cluster unreachable the run still
succeeds, keeps everything in its spool, and ``es drain`` later delivers exactly the same set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from tests.conftest import PCAPS
from tests.support.elasticsearch import elasticsearch_url, free_port

__all__ = ["elasticsearch_url"]  # the session fixture used below

pytestmark = [pytest.mark.elasticsearch, pytest.mark.xdist_group("elasticsearch")]

NORMAL = PCAPS / "demo" / "plant_normal.pcap"
ATTACK = PCAPS / "demo" / "plant_attack.pcap"
CLI = [sys.executable, "-c", "from ics_monitor.cli.app import main; main()"]


def cli(*args: str, prefix: str, check: bool = True, **settings: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ICS_MONITOR_ES_")}
    environment["ICS_MONITOR_ES_INDEX_PREFIX"] = prefix
    for name, value in settings.items():
        environment[f"ICS_MONITOR_ES_{name.upper()}"] = value
    environment["COLUMNS"] = "200"
    result = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=environment, timeout=600, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def stored_alerts(state: Path, prefix: str) -> set[str]:
    result = cli("alerts", "--state", str(state), "--json", prefix=prefix)
    return {json.loads(line)["alert_id"] for line in result.stdout.splitlines() if line.strip()}


def stored_assets(state: Path, prefix: str) -> int:
    result = cli("assets", "--state", str(state), "--json", prefix=prefix)
    return sum(1 for line in result.stdout.splitlines() if line.strip())


def cluster_counts(url: str, prefix: str) -> dict[str, Any]:
    client = Elasticsearch(url)
    try:
        client.indices.refresh(index=f"{prefix}-*")
        counts: dict[str, Any] = {}
        for kind in ("alert", "asset", "flow", "anomaly"):
            counts[kind] = client.count(index=f"{prefix}-{kind}*", allow_no_indices=True)["count"]
        hits = client.search(index=f"{prefix}-alert*", size=1000, source=["rule.id"])["hits"]["hits"]
        counts["alert_ids"] = {hit["_id"] for hit in hits}
        counts["rules"] = {hit["_source"]["rule"]["id"] for hit in hits}
        return counts
    finally:
        client.close()


@pytest.fixture(scope="module")
def learned_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not NORMAL.is_file() or not ATTACK.is_file():
        pytest.fail("the demo captures are part of the repository: pcaps/demo/")
    state = tmp_path_factory.mktemp("es-replay") / "state"
    cli("baseline", "learn", "--state", str(state), str(NORMAL), prefix="unused")
    return state


def test_replay_feeds_every_alert_and_asset_once(learned_state: Path, elasticsearch_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    cli("es", "setup", "--es-url", elasticsearch_url, prefix=prefix)
    result = cli(
        "replay", "--state", str(learned_state), "--es-url", elasticsearch_url, str(ATTACK), prefix=prefix
    )
    assert "documents delivered" in result.stderr and "kept in the spool" not in result.stderr
    alerts = stored_alerts(learned_state, prefix)
    assets = stored_assets(learned_state, prefix)
    counts = cluster_counts(elasticsearch_url, prefix)
    assert len(alerts) >= 10  # the attack phase: stop, download, restart, sweep ...
    # Alert documents carry the alert id as _id: the same set as the store, none twice.
    assert counts["alert"] == len(alerts) and counts["alert_ids"] == alerts
    assert {"ICS-1001", "ICS-1003", "ICS-1201"} <= counts["rules"]
    assert counts["asset"] == assets and assets >= 5
    assert counts["flow"] > 0
    # The same capture again: ids are deterministic, so the cluster gains nothing.
    cli("replay", "--state", str(learned_state), "--es-url", elasticsearch_url, str(ATTACK), prefix=prefix)
    again = cluster_counts(elasticsearch_url, prefix)
    assert {kind: again[kind] for kind in ("alert", "asset", "flow")} == {
        kind: counts[kind] for kind in ("alert", "asset", "flow")
    }


def test_unreachable_cluster_spools_and_drain_delivers_the_same(
    learned_state: Path, elasticsearch_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    for name in ("baseline.yaml", ".baseline.yaml.cache"):
        source = learned_state / name
        if source.is_file():
            (state / name).write_bytes(source.read_bytes())
    prefix = f"t{uuid.uuid4().hex[:10]}"
    cli("es", "setup", "--es-url", elasticsearch_url, prefix=prefix)
    down = f"http://127.0.0.1:{free_port()}"
    # Delivery gives up quickly at exit (the spool keeps the documents for the next run).
    result = cli(
        "replay", "--state", str(state), "--es-url", down, str(ATTACK), prefix=prefix, check=False,
        close_timeout="3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kept in the spool" in result.stderr
    assert "Traceback" not in result.stderr
    assert cluster_counts(elasticsearch_url, prefix)["alert"] == 0
    drained = cli("es", "drain", "--state", str(state), "--es-url", elasticsearch_url, prefix=prefix)
    assert "spool_pending: 0" in drained.stdout
    alerts = stored_alerts(state, prefix)
    counts = cluster_counts(elasticsearch_url, prefix)
    assert counts["alert_ids"] == alerts and counts["alert"] == len(alerts)
    assert counts["asset"] == stored_assets(state, prefix)
