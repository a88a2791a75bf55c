"""Exceptions for programmer, configuration and input-file errors.

Problems found in traffic are never exceptions: they are anomaly events (see ``core.anomalies``).
"""

from __future__ import annotations


class IcsMonitorError(Exception):
    """Base of every error the CLI reports as one line."""


class ConfigError(IcsMonitorError):
    """The configuration or the command line is wrong."""


class CaptureError(IcsMonitorError):
    """A capture file cannot be read (missing, not a capture, truncated, corrupt).

    ``offset`` is the byte offset in the (uncompressed) file where reading stopped, or None
    when the file could not be opened at all.
    """

    def __init__(self, path: str, message: str, offset: int | None = None) -> None:
        self.path = path
        self.offset = offset
        self.reason = message
        where = f" at byte offset {offset}" if offset is not None else ""
        super().__init__(f"{path}: {message}{where}")
