"""LINKTYPE_* numbers (tcpdump.org link-layer header types) that the decoder understands."""

from __future__ import annotations

from typing import Final

NULL: Final = 0
EN10MB: Final = 1
RAW_BSD: Final = 12  # DLT_RAW on OpenBSD-derived systems: same meaning as RAW
RAW_BSD_14: Final = 14
LOOP: Final = 108
RAW: Final = 101
LINUX_SLL: Final = 113
IPV4: Final = 228
IPV6: Final = 229
LINUX_SLL2: Final = 276
# Link types whose frames start with the IP header.
RAW_TYPES: Final = frozenset((RAW, RAW_BSD, RAW_BSD_14, IPV4, IPV6))

NAMES = {
    NULL: "NULL",
    EN10MB: "EN10MB",
    RAW_BSD: "RAW",
    RAW_BSD_14: "RAW",
    RAW: "RAW",
    LOOP: "LOOP",
    LINUX_SLL: "LINUX_SLL",
    IPV4: "IPV4",
    IPV6: "IPV6",
    LINUX_SLL2: "LINUX_SLL2",
}
