"""The per-frame and per-record parts of multi-core runs (``parallel``), compiled with the hot path.

``parallel`` starts and watches the processes; what runs once per frame in a worker (the shard
choice, decoding, the flow table, batching) and once per record on either side of the pipe (batch
encoding, decoding, the merge's hand-over) is here, so that ``make compiled`` covers it as it
covers ``Pipeline.run`` (see ``compiled.HOT_MODULES``).  Interpreted, the worker loop alone cost a
worker more than the decoding and dissection it drives.
"""

from __future__ import annotations

import dataclasses
import marshal
import struct
import sys
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any, Final

import orjson

from ics_monitor._records import rebuilt
from ics_monitor.core import linktypes
from ics_monitor.core.linktypes import EN10MB, LINUX_SLL, LINUX_SLL2
from ics_monitor.core.packet import IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Packet
from ics_monitor.decode.decoder import BACK_SECONDS, GAP_SECONDS
from ics_monitor.decode.headers import TUNNEL_PORTS, TUNNEL_PROTOCOLS
from ics_monitor.flows import FlowTable
from ics_monitor.pipeline import Pipeline, arp_event
from ics_monitor.sinks import JsonLinesSink

# Record kinds in the merged stream.
EVENT, FLOW, ARP, TICK, MARK, EVENT_LINE, FLOW_LINE, ARP_LINE = range(8)
# A protocol event the worker checked against the baseline and found nothing in (a response's read
# values within limits, a request's function and targets learned: ``deviation.WorkerCheck``): the
# parent skips those checks.
EVENT_PASSED: Final = 8
# Stages within one frame, in the order Pipeline.run hands a frame's records on.
STAGE_TICK, STAGE_ARP, STAGE_DECODE, STAGE_DISSECT, STAGE_FLOW_ANOMALY, STAGE_FLOW = range(6)
STAGE_MARK: Final = 7
# A batch goes to the parent after this many records, and at least every MARK_EVERY frames (with a
# watermark) so a worker whose shard is quiet does not hold the merge back.
BATCH_RECORDS: Final = 512
MARK_EVERY: Final = 4096
# A worker checks records for the parent (``run_shard``) while at least this many of the batches
# it sent are not yet taken by the merge: the parent is behind.
CHECK_BACKLOG: Final = 8

_RAW_LINK_TYPES: Final = linktypes.RAW_TYPES  # bound here: a static, not a module-dict lookup
BROADCAST = -1
NON_IP: Final = -2
_U16: Final = struct.Struct("!H")
_PORTS: Final = struct.Struct("!HH")
_IPV4_ADDRESSES: Final = struct.Struct("!II")
# Untagged Ethernet, IPv4 with a 20-byte header: the bytes up to the end of both ports.
_ETHERNET_IPV4_KEY_SIZE: Final = 38


# -- shard choice ----------------------------------------------------------------------------------


def shard_of(vlan_fold: int, proto: int, address_xor: int, port_xor: int, workers: int) -> int:
    """The worker of a flow key.

    XOR makes the key symmetric (both directions land together).  The key is folded to 32 bits and
    mixed by multiplication and shifts (constants below 2**30, so every product stays within a
    compiled machine int): no tuple built and hashed per frame, and the same on every run (no
    salted hash), so shards are reproducible.
    """
    folded = address_xor
    while folded > 0xFFFFFFFF:  # IPv6: 128 bits of XORed addresses
        folded = (folded & 0xFFFFFFFF) ^ (folded >> 32)
    mixed = folded ^ (port_xor * 0x10001) ^ (proto << 24) ^ ((vlan_fold & 0xFFFF) << 8)
    mixed = ((mixed & 0xFFFFFFFF) * 0x2545F491) & 0xFFFFFFFF
    mixed ^= mixed >> 15
    mixed = (mixed * 0x2C1B3C6D) & 0xFFFFFFFF
    mixed ^= mixed >> 13
    return mixed % workers


def packet_shard(pkt: Packet, workers: int) -> int:
    """The worker owning a decoded IP packet (same value as ``frame_shard`` for its frames)."""
    fold = 0
    for tag in pkt.vlan:
        fold = fold * 4099 + tag + 1
    addresses = int.from_bytes(pkt.src_ip, "big") ^ int.from_bytes(pkt.dst_ip, "big")
    return shard_of(fold, pkt.ip_proto, addresses, pkt.sport ^ pkt.dport, workers)


def frame_shard(link_type: int, data: bytes, workers: int) -> int:
    """The worker owning a raw IP frame; -2 for non-IP (worker 0's); -1 when only decoding can tell.

    Ethernet II (one optional 802.1Q tag), IPv4 that is not a fragment ::

        0      6      12     14 [18]          +6           +9      +12     +16     +IHL   +2
        +------+------+------+[------+]-...-+-----------+-..-+-----+-------+-------+-...-+------+------+
        | dst  | src  | type |[ tci  ]|v/ihl| flags/frag|    |proto| src ip| dst ip|     |sport |dport |
        +------+------+------+[------+]-...-+-----------+-..-+-----+-------+-------+-...-+------+------+

    IPv6: next header at +6, addresses at +8 and +24, ports at +40 (TCP/UDP).  Only what the flow
    table keys a flow by is read: VLAN ids, protocol, addresses, ports (TCP and UDP only; zero
    otherwise, as the decoder leaves them).  Tunnels (GRE, IP in IP, VXLAN and Geneve ports) are
    for the decoder: their flows are the inner packets'.
    """
    size = len(data)
    # Most frames: untagged Ethernet, IPv4 with a 20-byte header, not a fragment.  Byte by byte:
    # compiled, each index is a machine load (an unpack made seven int objects).
    if (
        link_type == EN10MB
        and size >= _ETHERNET_IPV4_KEY_SIZE
        and data[12] == 0x08
        and data[13] == 0x00
        and data[14] == 0x45
        and not (data[20] & 0x3F or data[21])
    ):
        proto: int = data[23]
        ports = 0
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            if proto == IPPROTO_UDP and (data[36] << 8 | data[37]) in TUNNEL_PORTS:
                return BROADCAST  # a tunnel: the inner packet decides
            ports = (data[34] ^ data[36]) << 8 | (data[35] ^ data[37])
        elif proto in TUNNEL_PROTOCOLS:
            return BROADCAST
        address_xor = (
            (data[26] ^ data[30]) << 24
            | (data[27] ^ data[31]) << 16
            | (data[28] ^ data[32]) << 8
            | (data[29] ^ data[33])
        )
        return shard_of(0, proto, address_xor, ports, workers)
    fold = 0
    if link_type == EN10MB:
        if size < 14:
            return BROADCAST
        ether_type = data[12] << 8 | data[13]
        off = 14
        if ether_type == 0x8100:
            if size < 18:
                return BROADCAST
            fold = (data[14] << 8 | data[15]) & 0x0FFF
            fold += 1
            ether_type = data[16] << 8 | data[17]
            off = 18
        if ether_type not in (0x0800, 0x86DD):
            if ether_type in (0x8100, 0x88A8, 0x9100, 0x8847, 0x8848, 0x892F):
                return BROADCAST  # stacked tags, HSR or MPLS: let the decoder find what is inside
            return NON_IP
    elif link_type in _RAW_LINK_TYPES:
        if not size:
            return BROADCAST
        version = data[0] >> 4
        ether_type = 0x0800 if version == 4 else 0x86DD if version == 6 else 0
        off = 0
    elif link_type in (LINUX_SLL, LINUX_SLL2):
        if link_type == LINUX_SLL:
            if size < 16:
                return BROADCAST
            ether_type = data[14] << 8 | data[15]
            off = 16
        else:
            if size < 20:
                return BROADCAST
            ether_type = data[0] << 8 | data[1]
            off = 20
        if ether_type not in (0x0800, 0x86DD):
            if ether_type in (0x8100, 0x88A8, 0x9100, 0x8847, 0x8848, 0x892F):
                return BROADCAST
            return NON_IP
    else:
        return BROADCAST
    if ether_type == 0x0800:
        if size < off + 20:
            return BROADCAST
        version_ihl = data[off]
        header_len = (version_ihl & 0x0F) * 4
        fragment: int = _U16.unpack_from(data, off + 6)[0]
        if version_ihl >> 4 != 4 or header_len < 20 or fragment & 0x3FFF:
            return BROADCAST  # a fragment (or a broken header): decided after reassembly
        proto = data[off + 9]
        if proto in TUNNEL_PROTOCOLS:
            return BROADCAST
        addresses = _IPV4_ADDRESSES.unpack_from(data, off + 12)
        source = addresses[0]
        destination = addresses[1]
        ports = 0
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            start = off + header_len
            if size < start + 4:
                return BROADCAST
            pair = _PORTS.unpack_from(data, start)
            if proto == IPPROTO_UDP and pair[1] in TUNNEL_PORTS:
                return BROADCAST
            ports = pair[0] ^ pair[1]
        return shard_of(fold, proto, source ^ destination, ports, workers)
    if ether_type == 0x86DD:
        if size < off + 40 or data[off] >> 4 != 6:
            return BROADCAST
        proto = data[off + 6]
        ports = 0
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            if size < off + 44:
                return BROADCAST
            pair = _PORTS.unpack_from(data, off + 40)
            if proto == IPPROTO_UDP and pair[1] in TUNNEL_PORTS:
                return BROADCAST
            ports = pair[0] ^ pair[1]
        elif proto != IPPROTO_ICMPV6:
            return BROADCAST  # extension headers: the decoder finds the upper layer
        wide = int.from_bytes(data[off + 8 : off + 24], "big") ^ int.from_bytes(
            data[off + 24 : off + 40], "big"
        )
        return shard_of(fold, proto, wide, ports, workers)
    return BROADCAST


def advance_clock(table: FlowTable, ts: float) -> None:
    """Let a worker's flow table see time pass on a frame another worker owns.

    Mirrors the head of ``FlowTable.process`` so idle flows expire at the frame they would in one
    process (the table offers no public call for it).
    """
    if ts > table.now:
        table.now = ts
        if ts >= table._next_sweep:
            table.sweep()


# -- the worker loop -------------------------------------------------------------------------------


@dataclasses.dataclass
class ShardFigures:
    """What a worker counted over its input (for the parent's summary)."""

    frames: int = 0
    bytes: int = 0
    ip_packets: int = 0
    arp_packets: int = 0
    first_ts: float | None = None
    last_ts: float = 0.0


def run_shard(
    source: Iterable[tuple[float, int, bytes, int]],
    position: Callable[[], int],
    pipeline: Pipeline,
    index: int,
    workers: int,
    send: Callable[[list[Any]], None],
    tick: float | None,
    want_arp: bool,
    report_position: bool,
    check: Callable[[Any], bool] | None = None,
    backlog: Any = None,
) -> ShardFigures:
    """Worker ``index`` of ``workers``: read every frame, keep its shard, hand batches to ``send``.

    Each record goes out as ``(frame * 8 + stage, index, kind, record)``; worker 0 also sends the
    analysis clock (``tick``) and, every ``MARK_EVERY`` frames, the reading position.  ``check``
    (``WorkerCheck.passes``): protocol events it passes go out as ``EVENT_PASSED``.

    ``backlog`` (shared memory, ``.value``: how many of this worker's batches the parent's merge
    has taken) says who has CPU to spare.  The check is work the parent does for any event not
    marked, so it runs here only while the parent lags (``CHECK_BACKLOG`` batches or more sent and
    not yet taken: in the pipe, or received and waiting), and is left to the parent while this
    worker is the slower side: the two settle where neither waits for the other.  Counting what
    was sent, not what the parent's receiving thread has queued, sees a lag the pipe holds too:
    that thread waits for the interpreter lock the analysis holds, and a full pipe then stalled
    this worker unchecking.  Results do not depend on it (a pass only saves the parent a check);
    without ``backlog`` every event is checked.
    """
    decoder = pipeline.decoder
    table = pipeline.table
    decoder_anomalies, engine_events, table_anomalies, table_records = outputs(pipeline)
    ticks = index == 0 and tick is not None
    period = tick if tick is not None else 0.0
    next_tick = -float("inf")
    out: list[Any] = []
    frame_no = 0
    total_bytes = 0
    ip_packets = 0
    arp_packets = 0
    first_ts: float | None = None
    ts = 0.0
    checking = check is not None
    sent = 0  # batches handed to ``send``
    # The capture's clock (``decoder.CaptureClock``), watched by worker 0 alone: it reads every frame.
    clock = pipeline.clock
    clock_anomalies = clock.anomalies
    watch_clock = index == 0
    latest = 0.0
    behind = False
    for frame in source:
        ts = frame[0]
        link_type = frame[1]
        data = frame[2]
        wire_len = frame[3]
        frame_no += 1
        base = frame_no << 3
        if watch_clock:  # as ``Pipeline.run``: 0.0 is no time at all (a pcapng SPB)
            if ts > latest:
                if ts - latest >= GAP_SECONDS and latest > 0.0:
                    clock.gap(frame_no, ts, latest)
                latest = ts
                behind = False
            elif ts < latest - BACK_SECONDS and ts > 0.0 and not behind:
                behind = True
                clock.back(frame_no, ts, latest)
        if ticks and ts >= next_tick:
            out.append((base + STAGE_TICK, index, TICK, ts))
            next_tick = ts + period
        total_bytes += wire_len
        if first_ts is None:
            first_ts = ts
        # One worker owns everything: no hash to take (it was 3% of a lone worker's time on S7).
        owner = frame_shard(link_type, data, workers) if workers > 1 else index
        if owner == index or (owner == NON_IP and index == 0):
            pkt = decoder.decode(frame_no, ts, link_type, data, wire_len)
            if pkt is not None:
                if pkt.ip_version:
                    ip_packets += 1
                    table.process(pkt)
                elif pkt.arp is not None:
                    arp_packets += 1
                    if want_arp:
                        out.append((base + STAGE_ARP, index, ARP, arp_event(pkt)))
        elif owner >= 0:
            # An IP frame another worker owns: it moves this table's clock too, as in one process.
            advance_clock(table, ts)
        elif owner == BROADCAST:
            cut_headers = decoder.cut_headers
            pkt = decoder.decode(frame_no, ts, link_type, data, wire_len)
            if index:
                decoder_anomalies.clear()  # worker 0 alone reports on frames every worker decodes
                decoder.cut_headers = cut_headers  # and counts them
            if pkt is not None:
                if pkt.ip_version:
                    if packet_shard(pkt, workers) == index:
                        ip_packets += 1
                        table.process(pkt)
                    else:
                        advance_clock(table, ts)
                elif pkt.arp is not None and index == 0:
                    arp_packets += 1
                    if want_arp:
                        out.append((base + STAGE_ARP, index, ARP, arp_event(pkt)))
        if clock_anomalies:  # the capture's clock, then the decoder's: the frame's first records
            _collect(out, base + STAGE_DECODE, index, EVENT, clock_anomalies)
        if decoder_anomalies:
            _collect(out, base + STAGE_DECODE, index, EVENT, decoder_anomalies)
        if engine_events:
            if checking and check is not None:
                _collect_checked(out, base + STAGE_DISSECT, index, engine_events, check)
            else:
                _collect(out, base + STAGE_DISSECT, index, EVENT, engine_events)
        if table_anomalies:
            _collect(out, base + STAGE_FLOW_ANOMALY, index, EVENT, table_anomalies)
        if table_records:
            _collect(out, base + STAGE_FLOW, index, FLOW, table_records)
        if not frame_no % MARK_EVERY:
            out.append((base + STAGE_MARK, index, MARK, position() if report_position else 0))
            send(out)
            out = []
            sent += 1
            if check is not None and backlog is not None:
                checking = sent - backlog.value >= CHECK_BACKLOG
        elif len(out) >= BATCH_RECORDS:
            send(out)
            out = []
            sent += 1
            if check is not None and backlog is not None:
                checking = sent - backlog.value >= CHECK_BACKLOG
    # End of input, as Pipeline._finish: fragments, flows and dissectors flush.
    decoder.flush()
    if index:
        decoder_anomalies.clear()
    table.flush()
    base = (frame_no + 1) << 3
    _collect(out, base + STAGE_DECODE, index, EVENT, decoder_anomalies)
    if check is None:
        _collect(out, base + STAGE_DISSECT, index, EVENT, engine_events)
    else:
        _collect_checked(out, base + STAGE_DISSECT, index, engine_events, check)
    _collect(out, base + STAGE_FLOW_ANOMALY, index, EVENT, table_anomalies)
    _collect(out, base + STAGE_FLOW, index, FLOW, table_records)
    out.append((base + STAGE_MARK, index, MARK, position() if report_position else 0))
    send(out)
    return ShardFigures(frame_no, total_bytes, ip_packets, arp_packets, first_ts, ts)


def outputs(pipeline: Pipeline) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """The lists a frame's records appear in, in the order they are handed on.

    Decoder anomalies, dissector events, flow-table anomalies, flow records; each list is emptied
    by whoever reads it.
    """
    engine = pipeline.engine
    events: list[Any] = engine.events if engine is not None else []
    return pipeline.decoder.anomalies, events, pipeline.table.anomalies, pipeline.table.records


def _collect(out: list[Any], order: int, index: int, kind: int, records: list[Any]) -> None:
    for record in records:
        out.append((order, index, kind, record))
    records.clear()


def _collect_checked(
    out: list[Any], order: int, index: int, records: list[Any], check: Callable[[Any], bool]
) -> None:
    for record in records:
        out.append((order, index, EVENT_PASSED if check(record) else EVENT, record))
    records.clear()


# -- batch transport -------------------------------------------------------------------------------
#
# Records are frozen dataclasses whose fields live in a plain instance ``__dict__`` (see
# ``events.base``).  A batch crosses the pipe as ``marshal`` data: each record as its class's number
# in the batch's class table and its field values, in field order, as a tuple; the parent copies
# the class's field dict (a template of every key) and sets the values, then makes the object and
# installs the dict.  A record with a key beyond its fields (``truncated``) goes as its whole dict.
# marshal is C on both sides and has no opcode machinery: about twice as fast as pickle both ways.
# Values without their keys: marshal wrote and read 24 keys per Modbus record (40 per S7 one) and
# built each dict key by key through three resizes.  With a tuple and a copied template, taking a
# batch apart costs the parent 14% less on Modbus and S7 records and 7% less on DNP3 ones (real
# records, compiled, GC off), and a batch is half the bytes.
# marshal refuses anything but the exact built-in types (an enum, a named tuple ...): for such a
# batch, or a record of another kind of class, ``marshalled`` says None and ``parallel`` pickles.

# A pickle (protocol 2 and later) starts with its PROTO opcode; marshal data never does (its first
# byte is a type code, possibly with the 0x80 reference flag set: never the bare flag).  The batch
# goes out as marshal made it: prefixing a marker byte copied every batch once more.
PICKLE_PROTO: Final = 0x80
_LINE: Final = orjson.OPT_APPEND_NEWLINE  # as JsonLinesSink writes them

_DICT_BACKED: dict[type, bool] = {}
# What each side keeps per record class: its field names in order (the sender), and (class, field
# names, a dict of every field) (the receiver).
_FIELDS: dict[type, tuple[str, ...]] = {}
_CLASSES: dict[tuple[str, str], tuple[type, tuple[str, ...], dict[str, Any]]] = {}


def _dict_backed(cls: type) -> bool:
    """True for a dataclass whose instances keep every field in ``__dict__`` (no slots anywhere)."""
    known = _DICT_BACKED.get(cls)
    if known is None:
        known = dataclasses.is_dataclass(cls) and "__setstate__" not in dir(cls)
        for klass in cls.__mro__:
            if klass is not object and klass.__dict__.get("__slots__"):
                known = False
        _DICT_BACKED[cls] = known
    return known


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(field.name for field in dataclasses.fields(cls))
    return names


def _class(module: str, name: str) -> tuple[type, tuple[str, ...], dict[str, Any]]:
    known = _CLASSES.get((module, name))
    if known is None:
        loaded = sys.modules.get(module)
        if loaded is None:
            loaded = __import__(module, fromlist=["_"])
        cls = getattr(loaded, name)
        names = _field_names(cls)
        known = _CLASSES[(module, name)] = (cls, names, dict.fromkeys(names))
    return known


def _values(fields: dict[str, Any], names: tuple[str, ...]) -> tuple[Any, ...] | None:
    """A record's field values in field order, or None when its dict holds more than its fields.

    Every way a record is built fills its dict in field order (``events.base``: the JSON key order
    rests on it, and the records' unit tests check it), so the dict's values are in that order.
    """
    if len(fields) != len(names):
        return None
    return tuple(fields.values())


def marshalled(batch: list[Any]) -> bytes | None:
    """The batch as marshal data, or None when something in it is not for marshal."""
    classes: dict[type, int] = {}
    names_of: list[tuple[str, ...]] = []
    items: list[Any] = []
    for item in batch:
        kind: int = item[2]
        record = item[3]
        if kind <= ARP or kind == EVENT_PASSED:  # a record object (EVENT, FLOW, ARP are 0-2)
            cls = type(record)
            number = classes.get(cls)
            if number is None:
                if not _dict_backed(cls):
                    return None
                number = len(classes)
                classes[cls] = number
                names_of.append(_field_names(cls))
            fields: dict[str, Any] = record.__dict__
            values = _values(fields, names_of[number])
            items.append((item[0], item[1], kind, number, fields if values is None else values))
        else:
            items.append((item[0], item[1], kind, -1, record))
    table = [(cls.__module__, cls.__qualname__) for cls in classes]
    try:
        return marshal.dumps((table, items))
    except ValueError:  # a value of a type marshal does not take
        return None


def lines_marshalled(batch: list[Any]) -> tuple[bytes | None, list[Any]]:
    """The batch with its records as JSON lines (and what the parent's figures need), marshalled.

    Returns (data, lines): data None when marshal refuses something (``lines`` is then the batch
    in the 4-tuple form, for pickling).
    """
    dumps = orjson.dumps
    lines: list[Any] = []
    for item in batch:
        kind: int = item[2]
        record = item[3]
        if kind == EVENT:
            code = record.code if record.event_type == "anomaly" else None
            lines.append((item[0], item[1], EVENT_LINE, (code, dumps(record, option=_LINE))))
        elif kind == FLOW:
            label = record.app_protocol or record.service or record.transport
            lines.append((item[0], item[1], FLOW_LINE, (label, dumps(record, option=_LINE))))
        elif kind == ARP:
            lines.append((item[0], item[1], ARP_LINE, dumps(record, option=_LINE)))
        else:
            lines.append(item)
    try:
        # No class table (None): the items are already the parent's 4-tuples.
        return marshal.dumps((None, lines)), lines
    except ValueError:  # a tick or mark of a type marshal does not take
        return None, lines


def unmarshalled(data: bytes) -> list[Any]:
    """A batch from ``marshalled`` or ``lines_marshalled``."""
    decoded = marshal.loads(data)
    if decoded[0] is None:  # from lines_marshalled
        items: list[Any] = decoded[1]
        return items
    classes = [_class(entry[0], entry[1]) for entry in decoded[0]]
    # The records rebuilt in one C call in a compiled build (``_records.rebuilt``).
    return rebuilt(classes, decoded[1])


# -- the parent's merge ------------------------------------------------------------------------------


_first = itemgetter(0)


def merged(streams: list[Any]) -> Iterator[list[Any]]:
    """The workers' batches merged into chunks in (frame * 8 + stage, worker) order.

    ``streams``, in worker order, have ``next_batch()``: a worker's next batch (sorted, never
    splitting the records of one order) or None at its end.  Every round takes, from every
    stream, the records up to the smallest last order any stream has buffered (nothing later can
    sort before them), and sorts that chunk in C: no per-record heap or generator step.
    """
    buffers: list[list[Any]] = []
    offsets: list[int] = []
    live: list[Any] = []
    for stream in streams:
        batch = _next_batch(stream)
        if batch is not None:
            live.append(stream)
            buffers.append(batch)
            offsets.append(0)
    while live:
        watermark = min(buffer[-1][0] for buffer in buffers)
        chunk: list[Any] = []
        sources = 0
        for position in range(len(live)):
            buffer = buffers[position]
            start = offsets[position]
            end = bisect_right(buffer, watermark, start, len(buffer), key=_first)
            if end > start:
                sources += 1
                if start == 0 and end == len(buffer):
                    chunk.extend(buffer)
                else:
                    chunk.extend(buffer[start:end])
                offsets[position] = end
        if sources > 1:
            # The chunk holds the streams' parts in worker order and sort is stable: sorting by
            # order alone gives (order, worker) order, without a key tuple per record.
            chunk.sort(key=_first)
        yield chunk
        # Refill the streams taken to their end; drop those that ended.
        position = 0
        while position < len(live):
            if offsets[position] < len(buffers[position]):
                position += 1
                continue
            batch = _next_batch(live[position])
            if batch is None:
                del live[position]
                del buffers[position]
                del offsets[position]
            else:
                buffers[position] = batch
                offsets[position] = 0
                position += 1


def _next_batch(stream: Any) -> list[Any] | None:
    """The stream's next non-empty batch, or None at its end."""
    while True:
        batch: list[Any] | None = stream.next_batch()
        if batch is None or batch:
            return batch


def merge_into(pipeline: Pipeline, streams: list[Any]) -> None:
    """Hand the merged records to sinks and analysis, as ``Pipeline.run`` does frame by frame.

    ``streams`` give each worker's batches (see ``merged``).
    """
    stats = pipeline.stats
    analysis = pipeline.analysis
    held: list[Any] = analysis.anomalies if analysis is not None else []
    progress = pipeline.progress
    # Lines serialised by the workers go straight to the JSON-lines files (see parallel._serialized).
    event_writes = [sink._out.write for sink in pipeline.event_sinks if isinstance(sink, JsonLinesSink)]
    flow_writes = [sink._out.write for sink in pipeline.flow_sinks if isinstance(sink, JsonLinesSink)]
    anomalies = stats.anomalies
    protocols = stats.protocols
    # Without an analysis (or one that does not enforce the workers' baseline) a passed event is
    # an event: ``Analysis.event`` decides whether the pass counts.
    for chunk in merged(streams):
        for item in chunk:
            kind: int = item[2]
            record = item[3]
            if kind == EVENT_LINE:  # first: with lines, nearly every record is one
                code = record[0]
                if code is not None:
                    anomalies[code] += 1
                else:
                    stats.events += 1
                for write in event_writes:
                    write(record[1])
            elif kind == EVENT:
                pipeline.deliver_event(record)
            elif kind == EVENT_PASSED:
                pipeline.deliver_event(record, True)
            elif kind == FLOW:
                pipeline.deliver_flow(record)
            elif kind == ARP:
                pipeline.deliver_arp(record)
            elif kind == FLOW_LINE:
                stats.flows += 1
                protocols[record[0]] += 1
                for write in flow_writes:
                    write(record[1])
            elif kind == ARP_LINE:
                for write in event_writes:
                    write(record)
            elif kind == TICK:
                if analysis is not None:
                    analysis.advance(record)
            elif progress is not None and record:
                progress(record, item[0] >> 3)
            if held:
                pipeline._drain_events(held)


# -- the live worker loop ----------------------------------------------------------------------------


class LiveShard:
    """A live worker: decode what its fanout sockets give, batch the records, send them on.

    Frame numbers come from ``counter`` (shared by all workers, under ``lock``), taken as each
    frame leaves a socket; ``flush`` sends a mark carrying ``figures()`` (the worker's counters),
    and ``on_tick`` (the source's quiet-link tick) flushes, moving the flow table's clock when the
    link was quiet, so the merge never waits for frames that will not come.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        source: Any,
        index: int,
        counter: Any,
        lock: Any,
        send: Callable[[list[Any]], None],
        tick: float | None,
        want_arp: bool,
        figures: Callable[[], Any],
    ) -> None:
        self.pipeline = pipeline
        self.source = source
        self.index = index
        self.counter = counter
        self.lock = lock
        self.send = send
        self.tick = tick
        self.want_arp = want_arp
        self.figures = figures
        self.out: list[Any] = []
        # The last order sent: the stream must never go back (a heartbeat may repeat a frame number).
        self.floor = 0
        self.ip_packets = 0
        self.arp_packets = 0
        self.first_ts: float | None = None
        self.last_ts = 0.0

    def drain(self, base: int) -> None:
        """What the decoder, dissectors and flow table produced, as records of frame ``base``."""
        decoder_anomalies, engine_events, table_anomalies, table_records = outputs(self.pipeline)
        self._take(base + STAGE_DECODE, EVENT, decoder_anomalies)
        self._take(base + STAGE_DISSECT, EVENT, engine_events)
        self._take(base + STAGE_FLOW_ANOMALY, EVENT, table_anomalies)
        self._take(base + STAGE_FLOW, FLOW, table_records)

    def _take(self, order: int, kind: int, records: list[Any]) -> None:
        if records:
            _collect(self.out, max(self.floor, order), self.index, kind, records)

    def flush(self, quiet_at: float | None) -> None:
        """Send what is batched with a mark (the link quiet since ``quiet_at``, when given)."""
        # At the counter's value: every frame this worker takes later gets a larger number.
        value: int = self.counter.value
        order = max(self.floor, value << 3 | STAGE_MARK)
        if quiet_at is not None:
            advance_clock(self.pipeline.table, quiet_at)
            self.drain(value << 3)
        self.out.append((order, self.index, MARK, (quiet_at, self.figures())))
        self.floor = order
        batch = self.out
        self.out = []
        self.send(batch)

    def on_tick(self, now: float, quiet: bool) -> None:
        """The source's tick: flush, saying whether the link was quiet."""
        self.flush(now if quiet else None)

    def run(self) -> None:
        """Read the source until it stops; then flush everything, as at the end of a replay."""
        pipeline = self.pipeline
        decoder = pipeline.decoder
        table = pipeline.table
        decoder_anomalies, engine_events, table_anomalies, table_records = outputs(pipeline)
        counter = self.counter
        lock = self.lock
        index = self.index
        ticks = self.tick is not None
        period = self.tick if self.tick is not None else 0.0
        next_tick = -float("inf")
        source = self.source
        source.on_tick = self.on_tick
        # The system clock stepped back (set by hand, an NTP step): worker 0 reports it, as worker
        # 0 of a replay does (``CaptureClock``).  Not gaps: a fanout member's share of the link
        # may be quiet for hours while the others are busy.
        clock = pipeline.clock
        clock_anomalies = clock.anomalies
        watch_clock = index == 0
        latest = 0.0
        behind = False
        for frame in source:
            ts: float = frame[0]
            link_type: int = frame[1]
            data: bytes = frame[2]
            wire_len: int = frame[3]
            lock.acquire()
            frame_no: int = counter.value + 1
            counter.value = frame_no
            lock.release()
            base = frame_no << 3
            if watch_clock:
                if ts > latest:
                    latest = ts
                    behind = False
                elif ts < latest - BACK_SECONDS and ts > 0.0 and not behind:
                    behind = True
                    clock.back(frame_no, ts, latest)
            if ticks and ts >= next_tick:
                self.out.append((base + STAGE_TICK, index, TICK, ts))
                next_tick = ts + period
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts
            pkt = decoder.decode(frame_no, ts, link_type, data, wire_len)
            if pkt is not None:
                if pkt.ip_version:
                    self.ip_packets += 1
                    table.process(pkt)
                elif pkt.arp is not None:
                    self.arp_packets += 1
                    if self.want_arp:
                        self.out.append((base + STAGE_ARP, index, ARP, arp_event(pkt)))
            if clock_anomalies:  # the capture's clock, then the decoder's (as ``run_shard``)
                self._take(base + STAGE_DECODE, EVENT, clock_anomalies)
            if decoder_anomalies or engine_events or table_anomalies or table_records:
                self.drain(base)
            if len(self.out) >= BATCH_RECORDS:
                batch = self.out
                self.floor = max(self.floor, batch[-1][0])
                self.out = []
                self.send(batch)
        # Stopped: fragments, flows and dissectors flush, as at the end of a replay.
        decoder.flush()
        table.flush()
        self.drain(counter.value << 3)
        self.flush(None)  # also the final figures: the source closed its sockets, reading the last counters
