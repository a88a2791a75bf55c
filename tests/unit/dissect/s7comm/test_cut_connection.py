"""A COTP connection request or confirm cut by the snap length: S7 when the kept parameters hold a TSAP.

TIA Portal and HMIs address S7-1200/1500 CPUs with long TSAP names, which push the CR past a
short snap length; an RDP connection request to port 102 would look the same up to its cookie.
"""

from __future__ import annotations

from ics_monitor.dissect.api import ParseContext
from ics_monitor.dissect.s7comm.dissector import S7commDissector
from ics_monitor.dissect.s7comm.tpkt_cotp import kept_connection_header

# snap7's CR (pcaps/s7comm/snap7_session.pcap frame 4): TPDU size, calling TSAP 01 00, called 01 02.
SNAP7_CR = bytes.fromhex("0300001611e00000000100c0010ac1020100c2020102")
# A TIA-style CR: called TSAP "SIMATIC-ROOT-ES" before the calling one.
TIA_CR = (
    bytes.fromhex("03000023")
    + bytes([30, 0xE0, 0, 0, 0, 1, 0])
    + b"\xc2\x0fSIMATIC-ROOT-ES"
    + b"\xc1\x02\x06\x00"
    + b"\xc0\x01\x0a"
)
# mstsc's CR (pcaps/demo/plant_attack.pcap frame 841): a cookie, no parameters.
RDP_CR = bytes.fromhex(
    "0300002e29e00000000000436f6f6b69653a206d737473686173683d6f70657261746f720d0a0100080003000000"
)


def test_kept_parameters_with_a_tsap_make_an_s7_connection_header() -> None:
    # Cut after the calling TSAP: TPDU size and calling TSAP kept, the called TSAP lost.
    header = kept_connection_header(SNAP7_CR[4:18])
    assert header == bytes([13]) + SNAP7_CR[5:18]
    assert kept_connection_header(SNAP7_CR[4:13]) is None  # only the TPDU size: no TSAP yet
    # Cut in the calling TSAP after the whole called one (``SIMATIC-ROOT-ES``).
    assert kept_connection_header(TIA_CR[4:30]) == bytes([23]) + TIA_CR[5:28]
    assert kept_connection_header(TIA_CR[4:27]) is None  # cut inside the called TSAP
    assert kept_connection_header(RDP_CR[4:30]) is None  # a cookie is no parameter list


def test_a_cut_connection_request_on_port_102_is_an_s7_record_marked_truncated() -> None:
    dissector = S7commDissector()
    ctx = ParseContext("f", "tcp", "10.0.0.1", 40000, "10.0.0.2", 102)
    state = dissector.new_state(ctx)
    (record,) = dissector.truncated(state, memoryview(TIA_CR[:34]), 0, ctx, len(TIA_CR) - 34)
    assert record.event_type == "cotp" and record.pdu_type_name == "CR"
    assert record.__dict__["truncated"] is True
    assert record.dst_tsap is not None and record.src_tsap is not None  # both kept, the TPDU size not
    assert state.confirmed
    other = dissector.new_state(ctx)
    assert dissector.truncated(other, memoryview(RDP_CR[:30]), 0, ctx, len(RDP_CR) - 30) == ()
    assert not other.confirmed
