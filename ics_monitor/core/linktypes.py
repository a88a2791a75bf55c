"""LINKTYPE_* numbers (tcpdump.org link-layer header types) that the decoder understands."""

from __future__ import annotations

NULL = 0
EN10MB = 1
RAW_BSD = 12  # DLT_RAW on OpenBSD-derived systems: same meaning as RAW
RAW_BSD_14 = 14
LOOP = 108
RAW = 101
LINUX_SLL = 113
IPV4 = 228
IPV6 = 229
LINUX_SLL2 = 276

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
