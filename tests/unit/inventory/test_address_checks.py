"""The address checks' IPv4 fast path (``socket.inet_pton``) against ``ipaddress``, the reference.

``ipv4_packed`` must take exactly the strings ``ipaddress`` takes as IPv4, and every check built on
it must answer as the ``ipaddress`` form it shortcuts, edge addresses and non-addresses included.
"""

from __future__ import annotations

import ipaddress

import pytest

from ics_monitor.core.addresses import ip_sort_key, ipv4_packed
from ics_monitor.inventory import assets
from ics_monitor.inventory.baseline import is_asset_ip

TEXTS = [
    "0.0.0.0",
    "0.0.0.1",
    "10.0.0.1",
    "10.0.0.255",
    "127.0.0.1",
    "192.168.1.0",
    "198.18.255.254",
    "223.255.255.255",
    "224.0.0.1",
    "239.255.255.255",
    "240.0.0.1",
    "255.255.255.254",
    "255.255.255.255",
    # Not IPv4 in ipaddress's sense: leading zeros, short forms, out of range, junk.
    "010.0.0.1",
    "10.1",
    "10.0.0.256",
    "1.2.3.4.5",
    " 10.0.0.1",
    "10.0.0.1\x00",
    "",
    "abc",
    "\u0661\u0660.0.0.1",  # Arabic-Indic digits
    # IPv6: left to ipaddress.
    "::",
    "::1",
    "fe80::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:10.0.0.1",
]


def _reference_v4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


@pytest.mark.parametrize("text", TEXTS)
def test_ipv4_packed_takes_what_ipaddress_takes(text: str) -> None:
    reference = _reference_v4(text)
    assert ipv4_packed(text) == (None if reference is None else reference.packed)


def _reference_sort_key(text: str) -> tuple[int, bytes]:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return (9, text.encode())
    return (address.version, address.packed)


def _reference_owned(text: str, broadcast: bool) -> bool:
    """The ``ipaddress`` form: an address, not multicast or unspecified, ``broadcast`` False for v4."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (address.is_multicast or address.is_unspecified or (address.version == 4 and broadcast))


def _reference_host(text: str) -> bool:
    return _reference_owned(text, text == "255.255.255.255")


def _reference_asset(text: str) -> bool:
    return _reference_owned(text, text.endswith(".255"))


@pytest.mark.parametrize("text", TEXTS)
def test_checks_answer_as_ipaddress(text: str) -> None:
    assert ip_sort_key(text) == _reference_sort_key(text)
    assert assets.is_host_ip(text) is _reference_host(text)
    assert is_asset_ip(text) is _reference_asset(text)
    if _reference_host(text) or text in ("0.0.0.0", "224.0.0.1"):
        address = ipaddress.ip_address(text)
        prefix = 24 if address.version == 4 else 64
        assert assets.subnet_of(text) == str(ipaddress.ip_network(f"{text}/{prefix}", strict=False))


def test_inventory_orders_assets_numerically() -> None:
    inventory = assets.Inventory()
    changes: list[assets.AssetChange] = []
    for ip in ("10.0.0.20", "10.0.0.3", "2001:db8::1", "9.255.0.1", "10.0.0.100"):
        inventory._host(ip, 1.0, 1, changes)
    assert [asset.ip for asset in inventory.assets()] == [
        "9.255.0.1",
        "10.0.0.3",
        "10.0.0.20",
        "10.0.0.100",
        "2001:db8::1",
    ]
