"""The set of dissectors a run uses, and which to try first for a given flow."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ics_monitor.dissect.api import Dissector


class Registry:
    """Dissectors by name; ``candidates`` orders them for a flow (port hint first)."""

    def __init__(self, dissectors: Iterable[Dissector] = ()) -> None:
        self._dissectors: dict[str, Dissector] = {}
        for dissector in dissectors:
            self.register(dissector)

    def register(self, dissector: Dissector) -> None:
        """Add a dissector; names are unique."""
        if not dissector.name:
            raise ValueError(f"{type(dissector).__name__} has no name")
        if dissector.name in self._dissectors:
            raise ValueError(f"dissector {dissector.name!r} registered twice")
        self._dissectors[dissector.name] = dissector

    def __iter__(self) -> Iterator[Dissector]:
        return iter(self._dissectors.values())

    def __len__(self) -> int:
        return len(self._dissectors)

    def names(self) -> list[str]:
        """Names of the registered dissectors, in registration order."""
        return list(self._dissectors)

    def candidates(self, transport: str, server_port: int, client_port: int) -> list[Dissector]:
        """Dissectors for ``transport``: those hinted by either port first, then the rest."""
        hinted: list[Dissector] = []
        others: list[Dissector] = []
        for dissector in self._dissectors.values():
            if transport not in dissector.transports:
                continue
            ports = dissector.tcp_ports if transport == "tcp" else dissector.udp_ports
            if server_port in ports or client_port in ports:
                hinted.append(dissector)
            else:
                others.append(dissector)
        return hinted + others


def default_registry() -> Registry:
    """The dissectors shipped with ics-monitor, most specific first."""
    dissectors: list[Dissector] = []
    # One line per protocol package (imports stay local so a broken package names itself):
    from ics_monitor.dissect.modbus.dissector import ModbusDissector

    dissectors.append(ModbusDissector())
    from ics_monitor.dissect.dnp3.dissector import Dnp3Dissector

    dissectors.append(Dnp3Dissector())
    from ics_monitor.dissect.s7comm.dissector import S7commDissector

    dissectors.append(S7commDissector())
    from ics_monitor.dissect.identify import identifiers

    dissectors.extend(identifiers())
    return Registry(dissectors)
