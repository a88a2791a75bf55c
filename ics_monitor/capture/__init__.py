"""Frame sources: capture files (pcap, pcapng, plain or compressed) and, later, live interfaces.

A source yields ``(ts, link_type, data, wire_len)`` tuples in capture order and nothing else: no
decoding, no flow logic.  Memory stays flat whatever the file size (fixed-size read chunks).
"""

from ics_monitor.capture.files import CaptureFile, MergedSource, open_capture, open_captures

__all__ = ["CaptureFile", "MergedSource", "open_capture", "open_captures"]
