"""Typed configuration sections.  Components receive their section; none of them imports this module."""

from __future__ import annotations

from dataclasses import dataclass, field

from ics_monitor.flows import FlowConfig
from ics_monitor.inventory.assets import InventoryConfig


@dataclass(frozen=True, slots=True)
class DecodeConfig:
    """IP fragment reassembly limits."""

    fragment_timeout: float = 30.0
    max_fragment_datagrams: int = 1024


@dataclass(frozen=True, slots=True)
class DissectConfig:
    """Dissection switches.

    ``strict`` re-raises dissector exceptions (tests); ``detect_limit`` bytes per flow are examined
    before detection gives up.
    """

    strict: bool = False
    detect_limit: int = 8192


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """Inventory, detection and learning during a replay.

    ``tick``: capture seconds between the detection engine's time-driven checks (a device that
    stops answering, throttled summaries); ``learn_for``: seconds of capture time learned before
    enforcing (None: learn or enforce for the whole run, as the command says).
    """

    tick: float = 1.0
    learn_for: float | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """Everything a run needs to know."""

    decode: DecodeConfig = field(default_factory=DecodeConfig)
    flows: FlowConfig = field(default_factory=FlowConfig)
    dissect: DissectConfig = field(default_factory=DissectConfig)
    inventory: InventoryConfig = field(default_factory=InventoryConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
