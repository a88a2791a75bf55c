"""Alerts: the record detectors produce, its ATT&CK for ICS mapping, and dedup/throttling.

Imports only ``events``/``core``-level vocabulary; detectors (``detect``) build alerts, sinks write
them with ``alert_to_dict``.  ``alert.schema.json`` (beside this file) is the JSON Schema of an alert.
"""

from pathlib import Path

from ics_monitor.alerts.record import SEVERITY_NAMES, Alert, AlertSeverity, alert_to_dict, make_alert_id
from ics_monitor.alerts.throttle import Throttle

SCHEMA_PATH = Path(__file__).with_name("alert.schema.json")

__all__ = [
    "SCHEMA_PATH",
    "SEVERITY_NAMES",
    "Alert",
    "AlertSeverity",
    "Throttle",
    "alert_to_dict",
    "make_alert_id",
]
