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


def ipv4_packed(text: str) -> bytes | None:
    """The 4 bytes of an IPv4 address in dotted-quad form, else None (IPv6, or not an address).

    The C parser takes exactly the strings ``ipaddress`` takes as IPv4 (four decimal octets up to
    255, no leading zeros) in about a hundredth of its time: the fast path of the checks below,
    which keep ``ipaddress`` for everything else.
    """
    try:
        return socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):  # ValueError: not ASCII, or a NUL inside
        return None


def ipv4_assignable(packed: bytes) -> bool:
    """An IPv4 address a device can hold as its own: not multicast (224/4), not 0.0.0.0."""
    return not (0xE0 <= packed[0] <= 0xEF or packed == b"\x00\x00\x00\x00")


def ip_sort_key(text: str) -> tuple[int, bytes]:
    """Sort key of an IP address in text form: IPv4 before IPv6, numerically; anything else last."""
    packed = ipv4_packed(text)
    if packed is not None:
        return (4, packed)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return (9, text.encode())
    return (address.version, address.packed)
