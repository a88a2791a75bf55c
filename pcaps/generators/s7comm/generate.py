"""Make the S7comm captures of pcaps/s7comm/ from real python-snap7 stacks, then record them in MANIFEST.

Each capture: tcpdump on lo (``--immediate-mode -U -s 0``, filter ``tcp port N``) is started
and awaited, then the server (``s7_server.py``) until it prints READY, then the client
(``s7_client.py``, python-snap7 2.1's C client) runs one fixed scenario; then the server
gets SIGTERM and tcpdump SIGINT, each waited for by PID.  The file is moved into
pcaps/s7comm/ only if the client saw exactly the outcomes it expects, tcpdump dropped
nothing, and tshark finds every S7 request answered, the expected number of S7 PDUs and
TCP connections, and no more malformed frames than listed in ``EXPECTED_MALFORMED``.

python-snap7 2.1 (C libsnap7 client and server) and 3.3 (pure-Python server that accepts
block transfer) both install the module ``snap7``, so each gets its own venv under
``$S7GEN_VENVS`` (default /tmp/ics-monitor-s7gen), made here with pip when missing.

Needs root (tcpdump; port 102), tcpdump, tshark, ss, and PyPI for the first run.
Must not write outside pcaps/s7comm/, pcaps/MANIFEST, its venvs and a temporary directory.

usage: .venv/bin/python pcaps/generators/s7comm/generate.py [NAME ...]   (default: all)
environment: S7GEN_VENVS (venv root), KEEP_WORK=1 (keep the logs and transcripts)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent.parent
OUT = PCAPS / "s7comm"
GENERATOR = "generators/s7comm/generate.py"
VENV_ROOT = Path(os.environ.get("S7GEN_VENVS", "/tmp/ics-monitor-s7gen"))
SNAP7_VERSIONS = {"2.1": "2.1.0", "3.3": "3.3.0"}
sys.path.insert(0, str(PCAPS / "generators"))
sys.path.insert(0, str(HERE))

import s7_data  # noqa: E402
from manifest import update  # noqa: E402


@dataclass(frozen=True)
class Capture:
    server: str  # python-snap7 version of the server: "2.1" (C) or "3.3" (pure Python)
    server_args: tuple[str, ...]
    scenario: str  # s7_client.py scenario
    port: int
    connections: int
    s7_pdus: int  # S7 PDUs tshark finds: fixed by the scenario, so a change means a changed stack
    content: str  # MANIFEST text


CAPTURES: dict[str, Capture] = {
    "snap7_session": Capture(
        "2.1",
        (),
        "session",
        102,
        1,
        74,
        "python-snap7 2.1.0 C client and C server (libsnap7), TCP 102, one connection: COTP CR/CC "
        "(TSAP 0x0100 -> 0x0102, rack 0 slot 2), setup communication (PDU 480); read var / write var "
        "with read-back on DB1, M (MB0, MB16), I (EB0), Q (AB0), T (T0-T1) and C (C0-C1); one 10-item "
        "read (DB1.DBX6.2 BIT, DB1.DBW0 INT 1234, DB1.DBD2 REAL 3.5, DB1.DBW8 WORD 0xBEEF, MW4 WORD x2, "
        "EB0 x2, AB0, T1, C1, DB99 missing -> item return code 0x0A), one 5-item write (DB1.DBX6.1 BIT, "
        "MB20, DB10.DBD0 DWORD, AB4, DB1.DBW30 INT) and a 4-item read-back; DB10 1000-byte read in 3 "
        "PDUs, 600-byte write in 2 PDUs; errors: read DB99 (0x0A), read DB2 past the end (0x05), write "
        "DB99 (0x0A); read SZL 0x0000/0, 0x0011/0, 0x0011/1, 0x001C/0, 0x001C/1, 0x0424/0, 0x0131/1, "
        "0x0232/4; 0x0131/0 and unknown 0x0F99/0 answered with USERDATA error 0xD402; CPU state (SZL "
        "0x0424). Identity (libsnap7's fixed values, not settable): order number 6ES7 315-2EH14-0AB0, "
        "firmware V3.2.6, AS name SNAP7-SERVER, module CPU 315-2 PN/DP, serial S C-C2UR28922012; the "
        "0x0424 record holds the capture time",
    ),
    "snap7_control": Capture(
        "2.1",
        (),
        "control",
        102,
        1,
        34,
        "python-snap7 2.1.0 C client and C server, TCP 102, one connection: CPU state (SZL 0x0424), "
        "PLC stop (0x29), hot start (PI 0x28 P_PROGRAM), PLC stop, cold start (PI P_PROGRAM 'C '), CPU "
        "state after each; read clock, set clock 2024-05-17 12:34:56 (USERDATA group 7), read clock "
        "(clock values are the capture time); set session password (group 5 subfunction 1, password "
        "'ICSMpw1' as libsnap7 encodes it) and clear password (subfunction 2); PI _GARB (compress), "
        "_MODU (copy RAM to ROM), _DELE DB2",
    ),
    "snap7_blocks": Capture(
        "2.1",
        (),
        "blocks",
        102,
        1,
        26,
        "python-snap7 2.1.0 C client and C server, TCP 102, one connection: USERDATA group 3 list blocks "
        "(DB count 4), list blocks of type DB (1, 2, 3, 10), of type OB, FC, FB (errors), block info DB1 "
        "and DB10, block info DB99, OB1, SFC46 (error 0xD209, answered with the stale PDU reference of "
        "the previous exchange); start upload DB1 and request download DB20 refused by the C server "
        "(ACK error class 0xD2 code 0x41, protection level)",
    ),
    "snap7py_block_transfer": Capture(
        "3.3",
        ("--identity",),
        "transfer",
        102,
        1,
        44,
        "python-snap7 2.1.0 C client against the python-snap7 3.3.0 pure-Python server, TCP 102, one "
        "connection: SZL 0x0011/0 and 0x001C/0 with identity records set by the generator (order "
        "number 6ES7 317-2EK14-0AB0, hardware version 5, firmware V3.2.17, AS name ICSM-TEST-AS, module "
        "name ICSM CPU 317-2 PN/DP, plant id ICSM-PLANT-7, serial S C-ICSM00004242, module type CPU "
        "317-2 PN/DP), CPU state (SZL 0x0424 RUN); list blocks, list DB, block info DB3; upload DB1 "
        "(start/upload/end, 292-byte block in 1 PDU), full upload DB3 (636-byte block in 2 upload "
        "PDUs), start upload DB99 refused (0xD209); download of the DB3 block (with a 56-byte footer, "
        "692 bytes, sha256 in README) as DB10: request download 0x1A, PLC-driven download block 0x1B "
        "x2, download ended 0x1C, PI _INSE; read "
        "DB10 back; request download DB2 refused (0x8104, too big)",
    ),
    "snap7_port1102": Capture(
        "2.1",
        (),
        "port1102",
        1102,
        2,
        26,
        "python-snap7 2.1.0 C client and C server on non-standard TCP port 1102, two connections: OP "
        "connection (remote TSAP 0x0201, rack 0 slot 1) with PDU 240: read DB1, 600-byte read of DB10 in "
        "3 PDUs, 300-byte write in 2 PDUs, 3-item read (BIT, REAL, TIMER), SZL 0x001C/0 cut by the server "
        "at the PDU size (N_DR 10, 6 records present), CPU state; then an S7-basic connection (remote "
        "TSAP 0x0300, rack 0 slot 0, PDU 480): read MB0, SZL 0x0011/0",
    ),
}
ORDER = list(CAPTURES)

# Frames tshark 4.0 marks malformed or as errors, per capture; the README says which and why.
EXPECTED_MALFORMED: dict[str, int] = dict.fromkeys(CAPTURES, 0)
# (unanswered requests, answers without a request) by PDU reference, per capture.  libsnap7's
# server answers a failed Get block info with the PDU reference of the last successful one.
EXPECTED_UNPAIRED: dict[str, tuple[int, int]] = dict.fromkeys(CAPTURES, (0, 0)) | {"snap7_blocks": (3, 3)}


# --immediate-mode: without it libpcap hands packets over in blocks, and a capture stopped
# within a second of the last packet lost them all here.  In immediate mode each ring slot
# is a whole snaplen (262144 bytes with -s 0), so the default 2 MiB ring held 8 packets and
# the kernel dropped some: -B 65536 (KiB) gives it room for 256.
TCPDUMP = ["tcpdump", "-i", "lo", "--immediate-mode", "-B", "65536", "-U", "-s", "0", "-Z", "root"]


def log(message: str) -> None:
    print(f"s7comm generate: {message}", file=sys.stderr, flush=True)


def die(message: str) -> None:
    log(f"ERROR: {message}")
    sys.exit(1)


def venv_python(version: str) -> Path:
    """The interpreter of the venv holding python-snap7 ``version``; made with pip when missing."""
    wanted = SNAP7_VERSIONS[version]
    venv = VENV_ROOT / f"snap7-{version}"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import snap7, sys; print(snap7.__version__)"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True, check=False).stdout.strip()
        if found == wanted:
            return python
        log(f"{venv} holds python-snap7 {found or 'nothing'}, reinstalling {wanted}")
    else:
        log(f"making {venv} with python-snap7 {wanted}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"python-snap7=={wanted}"], check=True)
    found = subprocess.run(check, capture_output=True, text=True, check=False).stdout.strip()
    if found != wanted:
        die(f"{venv}: python-snap7 {found!r} after install, wanted {wanted}")
    return python


def port_busy(port: int) -> bool:
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    )
    return bool(listening.stdout.strip())


def wait_for(
    path: Path, text: str, process: subprocess.Popen[bytes], what: str, seconds: float = 15.0
) -> None:
    """Wait until ``path`` holds ``text`` while ``process`` runs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            die(f"{what} exited early:\n{path.read_text(errors='replace') if path.exists() else ''}")
        time.sleep(0.1)
    die(f"{what} not ready after {seconds:.0f} s")


def stop(process: subprocess.Popen[bytes] | None, signum: int) -> None:
    """Signal one process we started and wait for it (SIGKILL after 5 s)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log(f"PID {process.pid} ignored signal {signum}, sending SIGKILL")
        process.kill()
        process.wait(timeout=5)


def tshark_fields(path: Path, port: int, display_filter: str, fields: list[str]) -> list[list[str]]:
    command = ["tshark", "-r", str(path)]
    if port != 102:
        command += ["-d", f"tcp.port=={port},tpkt"]
    command += ["-Y", display_filter, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    for field in fields:
        command += ["-e", field]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def verify(name: str, path: Path, spec: Capture) -> int:
    """Check the capture with tshark; return its number of S7 PDUs."""
    rows = tshark_fields(
        path,
        spec.port,
        "s7comm",
        [
            "tcp.srcport",
            "tcp.dstport",
            "s7comm.header.rosctr",
            "s7comm.header.pduref",
            "s7comm.param.userdata.type",
        ],
    )
    # Pair per connection and PDU reference: a request (JOB, or USERDATA of type 4) from port A
    # to port B is answered by a PDU from B to A with the same reference.
    pending: Counter[tuple[str, str, str]] = Counter()
    pdus = 0
    for source, destination, rosctrs, references, userdata_types in rows:
        # One TCP segment may hold several PDUs: the fields then hold comma-separated values.
        kinds = iter(userdata_types.split(",") if userdata_types else [])
        for rosctr, reference in zip(rosctrs.split(","), references.split(","), strict=True):
            pdus += 1
            kind = next(kinds, "") if rosctr == "7" else ""
            if rosctr == "1" or kind == "4":
                pending[(source, destination, reference)] += 1
            else:
                pending[(destination, source, reference)] -= 1
    unanswered = sum(n for n in pending.values() if n > 0)
    orphans = -sum(n for n in pending.values() if n < 0)
    if (unanswered, orphans) != EXPECTED_UNPAIRED[name]:
        die(
            f"{name}: {unanswered} unanswered requests and {orphans} answers without a request, "
            f"expected {EXPECTED_UNPAIRED[name]}: {dict(n for n in pending.items() if n[1])}"
        )
    if pdus != spec.s7_pdus:
        die(f"{name}: tshark finds {pdus} S7 PDUs, the scenario makes {spec.s7_pdus}")
    streams = {row[0] for row in tshark_fields(path, spec.port, "tcp", ["tcp.stream"])}
    if len(streams) != spec.connections:
        die(f"{name}: {len(streams)} TCP connections, expected {spec.connections} (foreign traffic?)")
    connects = tshark_fields(path, spec.port, "cotp.type == 0x0e", ["frame.number"])
    if len(connects) != spec.connections:
        die(f"{name}: {len(connects)} COTP connection requests, expected {spec.connections}")
    bad = tshark_fields(path, spec.port, "_ws.malformed || _ws.expert.severity >= error", ["frame.number"])
    if len(bad) != EXPECTED_MALFORMED[name]:
        frames = ", ".join(row[0] for row in bad)
        expected = EXPECTED_MALFORMED[name]
        die(f"{name}: tshark marks {len(bad)} frames malformed/error ({frames}), expected {expected}")
    return pdus


def check_transfer(path: Path, spec: Capture) -> None:
    """The block bytes on the wire are those s7_data says the 3.3 server and libsnap7 send."""
    rows = tshark_fields(
        path, spec.port, "s7comm.header.rosctr == 3", ["s7comm.param.func", "s7comm.resp.data"]
    )
    uploads: list[bytes] = []
    download = b""
    for function, data in rows:
        if function == "0x1d":  # start upload acknowledged: a new block follows
            uploads.append(b"")
        elif function == "0x1e":
            uploads[-1] += bytes.fromhex(data)
        elif function == "0x1b":
            download += bytes.fromhex(data)
    expected_uploads = [s7_data.uploaded_block(1), s7_data.uploaded_block(3)]
    if uploads != expected_uploads:
        die(f"uploaded blocks differ from s7_data: {[len(block) for block in uploads]} bytes")
    expected_download = s7_data.downloaded_payload(s7_data.downloadable(s7_data.uploaded_block(3)), 10)
    if download != expected_download:
        die(f"downloaded block differs from s7_data ({len(download)} bytes)")
    for label, block in (("upload DB1", uploads[0]), ("upload DB3", uploads[1]), ("download DB10", download)):
        log(f"  {label}: {len(block)} bytes, sha256 {hashlib.sha256(block).hexdigest()}")


def check_identity(path: Path, spec: Capture) -> None:
    """tshark reads back the identity values s7_data serves."""
    fields = {
        "s7comm.szl.xy11.0001.anz": s7_data.IDENTITY_ORDER_NUMBER,
        "s7comm.szl.001c.0001.name": s7_data.IDENTITY_AS_NAME,
        "s7comm.szl.001c.0002.name": s7_data.IDENTITY_MODULE_NAME,
        "s7comm.szl.001c.0003.tag": s7_data.IDENTITY_PLANT_ID,
        "s7comm.szl.001c.0005.serialn": s7_data.IDENTITY_SERIAL,
        "s7comm.szl.001c.0007.cputypname": s7_data.IDENTITY_MODULE_TYPE,
    }
    for field, wanted in fields.items():
        rows = tshark_fields(path, spec.port, field, [field])
        # Blank values are the firmware record's empty MlfB.
        values = {value.strip() for row in rows for value in row[0].split(",")} - {""}
        if values != {wanted}:
            die(f"tshark reads {field} as {sorted(values)}, the server was given {wanted!r}")


def capture(name: str, work: Path) -> Path:
    spec = CAPTURES[name]
    server_python = venv_python(spec.server)
    client_python = venv_python("2.1")
    if port_busy(spec.port):
        die(f"TCP port {spec.port} is in use; stop whatever listens there")
    log(f"{name}: scenario {spec.scenario}, python-snap7 {spec.server} server on port {spec.port}")
    pcap = work / f"{name}.pcap"
    tcpdump_log = work / f"{name}.tcpdump"
    server_log = work / f"{name}.server"
    transcript = work / f"{name}.client"
    tcpdump = server = None
    try:
        with tcpdump_log.open("wb") as sink:
            tcpdump = subprocess.Popen(
                [*TCPDUMP, "-w", str(pcap), "tcp", "port", str(spec.port)],
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        wait_for(tcpdump_log, "listening on", tcpdump, "tcpdump")
        with server_log.open("wb") as sink:
            server = subprocess.Popen(
                [str(server_python), "-u", str(HERE / "s7_server.py"), str(spec.port), *spec.server_args],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        wait_for(server_log, "READY", server, "S7 server")
        with transcript.open("wb") as sink, (work / f"{name}.client.err").open("wb") as errors:
            client = subprocess.run(
                [str(client_python), "-u", str(HERE / "s7_client.py"), spec.scenario, str(spec.port)],
                stdout=sink,
                stderr=errors,
                timeout=120,
                check=False,
            )
        time.sleep(0.3)  # let the connection teardown reach lo
        stop(server, signal.SIGTERM)
        time.sleep(0.5)
        stop(tcpdump, signal.SIGINT)
    finally:
        stop(server, signal.SIGTERM)
        stop(tcpdump, signal.SIGINT)
    if client.returncode != 0:
        sys.stderr.write(transcript.read_text())
        die(f"{name}: client exit status {client.returncode} (see the !! lines above)")
    if "0 packets dropped by kernel" not in tcpdump_log.read_text():
        die(f"{name}: tcpdump dropped packets:\n{tcpdump_log.read_text()}")
    pdus = verify(name, pcap, spec)
    if spec.scenario == "transfer":
        check_transfer(pcap, spec)
        check_identity(pcap, spec)
    OUT.mkdir(exist_ok=True)
    target = OUT / f"{name}.pcap"
    shutil.move(str(pcap), target)
    target.chmod(0o644)
    packets = len(tshark_fields(target, spec.port, "frame", ["frame.number"]))
    log(f"{name}: {pdus} S7 PDUs, {packets} packets, {target.stat().st_size} bytes")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"captures to make (default: all of {', '.join(ORDER)})")
    names = parser.parse_args().names or ORDER
    unknown = [name for name in names if name not in CAPTURES]
    if unknown:
        die(f"unknown capture(s) {', '.join(unknown)} (known: {', '.join(ORDER)})")
    if os.geteuid() != 0:
        die("run as root (tcpdump on lo, server on port 102)")
    for tool in ("tcpdump", "tshark", "ss"):
        if shutil.which(tool) is None:
            die(f"{tool} not found")
    work = Path(tempfile.mkdtemp(prefix="s7comm-generate."))
    try:
        for name in names:
            capture(name, work)
    finally:
        if os.environ.get("KEEP_WORK") == "1":
            log(f"logs and transcripts kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    update(GENERATOR, {f"s7comm/{name}.pcap": CAPTURES[name].content for name in names})
    log(f"MANIFEST updated for {len(names)} capture(s)")


if __name__ == "__main__":
    main()
