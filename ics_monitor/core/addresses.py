"""Formatting of packed addresses, done once per flow or event, never per packet; their sort order."""

from __future__ import annotations

import ipaddress
import socket


def format_ip(packed: bytes) -> str:
    """Return the text form of a packed IPv4 or IPv6 address ('' for none)."""
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    if len(packed) == 16:
        return socket.inet_ntop(socket.AF_INET6, packed)
    return ""


def format_mac(packed: bytes | None) -> str | None:
    """Return a MAC address as lowercase colon-separated hex, or None."""
    if not packed:
        return None
    return packed.hex(":")


def ip_sort_key(text: str) -> tuple[int, bytes]:
    """Sort key of an IP address in text form: IPv4 before IPv6, numerically; anything else last."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return (9, text.encode())
    return (address.version, address.packed)
