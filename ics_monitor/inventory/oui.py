"""MAC address vendor lookup from the IEEE OUI registry that ``netaddr`` ships (offline, no download).

Only globally administered unicast MACs have a vendor: a locally administered address (bit 1 of the
first octet: virtual machines, containers, randomised MACs) or a multicast one names nobody, and
an unregistered prefix gives None.  Results are cached per prefix: a capture has few vendors and
the registry lookup reads an index file.  This module does no network I/O.
"""

from __future__ import annotations

import re

LOCALLY_ADMINISTERED = "(locally administered)"

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# Suffixes the registry's organisation names carry that say nothing ("Siemens AG," -> "Siemens AG").
_TRAILING = " ,.;"
_CACHE_LIMIT = 4096
_cache: dict[str, str | None] = {}


def is_unicast_mac(mac: str | None) -> bool:
    """True for a real station address: not None, not all-zero, not broadcast or multicast."""
    if not mac or mac == "00:00:00:00:00:00" or not _MAC.match(mac):
        return False
    return not int(mac[0:2], 16) & 0x01


def vendor_of(mac: str | None) -> str | None:
    """Organisation registered for the MAC's OUI, ``LOCALLY_ADMINISTERED``, or None when unknown."""
    if not is_unicast_mac(mac):
        return None
    assert mac is not None
    prefix = mac[:8]
    if prefix in _cache:
        return _cache[prefix]
    vendor = _lookup(prefix)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[prefix] = vendor
    return vendor


def _lookup(prefix: str) -> str | None:
    if int(prefix[0:2], 16) & 0x02:
        return LOCALLY_ADMINISTERED
    try:
        from netaddr import OUI
        from netaddr.core import NotRegisteredError
    except ImportError:  # pragma: no cover - netaddr is a declared dependency
        return None
    try:
        organisation = OUI(prefix.replace(":", "-")).registration(0).org
    except (NotRegisteredError, IndexError, ValueError):
        return None
    name = str(organisation).strip().rstrip(_TRAILING).strip()
    return name or None
