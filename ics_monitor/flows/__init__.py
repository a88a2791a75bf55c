"""Flow tracking and TCP reassembly: packets in, per-flow ordered bytes and flow records out."""

from ics_monitor.flows.table import (
    TO_CLIENT,
    TO_SERVER,
    Flow,
    FlowConfig,
    FlowHandler,
    FlowTable,
    flow_anomaly,
)

__all__ = ["TO_CLIENT", "TO_SERVER", "Flow", "FlowConfig", "FlowHandler", "FlowTable", "flow_anomaly"]
