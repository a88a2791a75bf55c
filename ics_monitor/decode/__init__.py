"""Link-to-transport decoding of frames into ``Packet`` records; anomalies instead of exceptions."""

from ics_monitor.decode.decoder import Decoder

__all__ = ["Decoder"]
