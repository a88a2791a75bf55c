"""Detection: always-on rules, reconnaissance, availability, baseline deviation and zone policy.

``DetectionEngine`` runs the detectors; ``RuleSet`` loads ``rules/*.yaml`` (thresholds, enablement,
texts, ATT&CK mapping); ``Zones`` loads ``zones.yaml``.  Detectors produce ``alerts.Alert`` records
and never write anything themselves: sinks do.
"""

from ics_monitor.detect.engine import DETECTORS, DetectionEngine
from ics_monitor.detect.rules import Rule, RuleError, RuleSet
from ics_monitor.detect.zones import Zones, ZonesError

__all__ = ["DETECTORS", "DetectionEngine", "Rule", "RuleError", "RuleSet", "Zones", "ZonesError"]
