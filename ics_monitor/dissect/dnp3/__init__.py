"""DNP3 (IEEE 1815) over TCP and UDP: link, transport and application layers."""
