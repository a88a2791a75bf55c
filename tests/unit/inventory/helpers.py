"""Run captures through the real pipeline with an inventory (and optional analysis parts)."""

from __future__ import annotations

from pathlib import Path

from ics_monitor.capture import open_captures
from ics_monitor.config import Config, DissectConfig
from ics_monitor.dissect import Registry, default_registry
from ics_monitor.inventory.assets import AssetChange, Inventory
from ics_monitor.pipeline import Analysis, Pipeline, RunStats
from ics_monitor.sinks.memory import ListSink

Collect = ListSink  # the name the inventory tests use


def registry() -> Registry:
    """The shipped dissectors."""
    return default_registry()


def inventory_of(
    *captures: Path, inventory: Inventory | None = None
) -> tuple[Inventory, list[AssetChange], RunStats]:
    """Replay ``captures`` (merged by time) into an inventory; return it, its changes and the run's stats."""
    inventory = inventory if inventory is not None else Inventory()
    changes = ListSink()
    analysis = Analysis(inventory, change_sinks=[changes])
    pipeline = Pipeline(Config(dissect=DissectConfig(strict=True)), registry(), analysis=analysis)
    stats = pipeline.run(open_captures([str(path) for path in captures]))
    return inventory, changes.records, stats
