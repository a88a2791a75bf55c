"""Asset inventory and behaviour baseline: who is on the network, what they are, what they do.

``assets`` keeps one record per device (keyed by IP, MAC attached when it is the device's own),
with vendor (MAC OUI), roles, identity, services and history; ``baseline`` (learned conversations,
function codes, ranges) lives beside it.  Nothing here writes files or renders output: sinks and the
CLI do.  Submodules are imported directly (``from ics_monitor.inventory.assets import Inventory``)
so that using one does not load the other.
"""
