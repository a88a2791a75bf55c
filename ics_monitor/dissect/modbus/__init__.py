"""Modbus/TCP and Modbus over UDP (MBAP): framing, PDU decoding, pairing."""
