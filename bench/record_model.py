"""What a record's form costs, compiled as the project is: field-dict records against native classes.

Usage: ``.venv/bin/python bench/record_model.py`` (needs mypyc, which ships with mypy, and a C
compiler).  Writes a small module to a temporary directory, compiles it with mypyc, and times, per
record of 24 fields (a Modbus request's shape): making it, ten "detectors" reading six fields each
(record by record, as the detection engine runs them, and detector by detector over all the
records), and freeing it; for records whose fields live in their ``__dict__`` (how
``events.base`` makes every record) and for a mypyc native class with typed attributes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

MODULE = textwrap.dedent(
    """
    from __future__ import annotations
    from typing import Any, Final
    from mypy_extensions import mypyc_attr

    NAMES: Final = ("ts", "frame", "flow_id", "transport", "src_ip", "src_port", "dst_ip", "dst_port",
        "direction", "event_type", "transaction_id", "unit_id", "length", "function_code", "function",
        "exception_code", "exception", "address", "quantity", "byte_count", "values", "request_frame",
        "truncated_at", "extra")
    TEMPLATE: dict[str, Any] = dict.fromkeys(NAMES)

    @mypyc_attr(native_class=False)
    class DictRecord:
        pass

    class NativeRecord:
        def __init__(self, ts: float, frame: int, flow_id: str, transport: str, src_ip: str, src_port: int,
                     dst_ip: str, dst_port: int, direction: str, event_type: str, transaction_id: int | None,
                     unit_id: int, length: int, function_code: int, function: str, exception_code: int | None,
                     exception: str | None, address: int | None, quantity: int | None, byte_count: int | None,
                     values: Any, request_frame: int | None) -> None:
            self.ts = ts; self.frame = frame; self.flow_id = flow_id; self.transport = transport
            self.src_ip = src_ip; self.src_port = src_port; self.dst_ip = dst_ip; self.dst_port = dst_port
            self.direction = direction; self.event_type = event_type; self.transaction_id = transaction_id
            self.unit_id = unit_id; self.length = length; self.function_code = function_code
            self.function = function; self.exception_code = exception_code; self.exception = exception
            self.address = address; self.quantity = quantity; self.byte_count = byte_count
            self.values = values; self.request_frame = request_frame
            self.truncated_at: int | None = None
            self.extra: Any = None

    def make_dict(n: int) -> list[Any]:
        out = []
        for i in range(n):
            f = TEMPLATE.copy()
            f["ts"] = 1.0 * i; f["frame"] = i; f["flow_id"] = "abc"; f["transport"] = "tcp"
            f["src_ip"] = "10.0.0.1"; f["src_port"] = 1234; f["dst_ip"] = "10.0.0.2"; f["dst_port"] = 502
            f["direction"] = "request"; f["event_type"] = "modbus"; f["transaction_id"] = i & 0xFFFF
            f["unit_id"] = 1; f["length"] = 6; f["function_code"] = 3; f["function"] = "READ"
            f["address"] = 0; f["quantity"] = 10
            record = DictRecord()
            record.__dict__ = f
            out.append(record)
        return out

    def make_native(n: int) -> list[Any]:
        return [NativeRecord(1.0 * i, i, "abc", "tcp", "10.0.0.1", 1234, "10.0.0.2", 502, "request", "modbus",
                             i & 0xFFFF, 1, 6, 3, "READ", None, None, 0, 10, None, None, None) for i in range(n)]

    def read_dict(records: list[Any], record_major: bool) -> int:
        total = 0
        if record_major:
            for record in records:
                fields: dict[str, Any] = record.__dict__
                for _ in range(10):
                    if fields["direction"] == "request" and fields["event_type"] == "modbus":
                        total += fields["function_code"] + fields["unit_id"]
                        if fields["src_ip"] == "x":
                            total += 1
            return total
        for _ in range(10):
            for record in records:
                fields = record.__dict__
                if fields["direction"] == "request" and fields["event_type"] == "modbus":
                    total += fields["function_code"] + fields["unit_id"]
                    if fields["src_ip"] == "x":
                        total += 1
        return total

    def read_native(records: list[NativeRecord], record_major: bool) -> int:
        total = 0
        if record_major:
            for record in records:
                for _ in range(10):
                    if record.direction == "request" and record.event_type == "modbus":
                        total += record.function_code + record.unit_id
                        if record.src_ip == "x":
                            total += 1
            return total
        for _ in range(10):
            for record in records:
                if record.direction == "request" and record.event_type == "modbus":
                    total += record.function_code + record.unit_id
                    if record.src_ip == "x":
                        total += 1
        return total
    """
)

RUN = textwrap.dedent(
    """
    import gc, time, record_model_probe as m
    gc.disable()
    n = 200_000
    for label, make, read in (("fields in __dict__", m.make_dict, m.read_dict), ("mypyc native class", m.make_native, m.read_native)):
        t = time.perf_counter(); records = make(n); made = time.perf_counter() - t
        t = time.perf_counter(); read(records, True); by_record = time.perf_counter() - t
        t = time.perf_counter(); read(records, False); by_detector = time.perf_counter() - t
        t = time.perf_counter(); del records; freed = time.perf_counter() - t
        print(f"{label:20} make {made / n * 1e9:4.0f} ns   10 detectors x 6 fields: record by record "
              f"{by_record / n * 1e9:5.0f} ns, detector by detector {by_detector / n * 1e9:5.0f} ns   free {freed / n * 1e9:4.0f} ns")
    """
)


def main() -> None:
    mypyc = Path(sys.executable).with_name("mypyc")
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "record_model_probe.py").write_text(MODULE)
        subprocess.run([str(mypyc), "record_model_probe.py"], cwd=directory, check=True, capture_output=True)
        subprocess.run(
            [sys.executable, "-c", RUN],
            cwd=directory,
            check=True,
            env={**os.environ, "PYTHONPATH": directory},
        )


if __name__ == "__main__":
    main()
