"""A small Ethernet lab in Linux network namespaces: hosts, switches, a SPAN port, processes.

What it builds (all of it inside namespaces whose names start with the lab's prefix, so the root
namespace is never touched and deleting the namespaces removes every interface):

    namespace <prefix>-switch                     namespace <prefix>-<host>
    +------------------------------------+        +---------------------------+
    | bridge br-<name>  (no IP, no STP)  |        | eth0  fixed MAC, IPv4     |
    |   port p-<host> ------------------veth-------- (eth1, ... more legs)    |
    |   port p-<host>   (tc clsact:      |        | default route, sysctls    |
    |     ingress -> mirred mirror) --+  |        +---------------------------+
    | span0 ==veth== span0-cap <--------+  <- tcpdump captures here
    +------------------------------------+

* Every host port of a monitored bridge mirrors its *ingress* (what the host sends into the
  switch) to ``span0``, so each frame on that switch is captured exactly once, as on a switch's
  SPAN/mirror port.  Traffic of an unmonitored bridge is only seen where a router forwards it.
* IPv6 is disabled in every namespace before interfaces are made: router solicitations, MLD and
  DAD would otherwise put unscheduled frames into the capture.
* Processes run inside a namespace with ``ip netns exec`` in a session of their own; the lab keeps
  their ids and stops exactly those (SIGTERM, then SIGKILL after a grace period) before it
  deletes the namespaces.

Use it as a context manager; it also cleans up at interpreter exit and turns SIGTERM into
``SystemExit`` so a killed generator still removes its namespaces.  ``NetLab.remove_stale()``
deletes namespaces a crashed earlier run left behind.  Needs root and iproute2 (``ip``, ``tc``).
It must not touch the root namespace's interfaces, routes or sysctls, and must not kill any
process it did not start.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

SWITCH = "switch"
IFNAME_MAX = 15  # Linux IFNAMSIZ - 1


def wait_ready(process: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 20.0) -> None:
    """Wait until a lab process prints READY into ``log``; exit naming ``what`` if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "READY" in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start: {log.read_text(errors='replace')}")


class LabError(RuntimeError):
    """A lab command failed (the message holds the command and its stderr)."""


@dataclass(frozen=True)
class Leg:
    """One interface of a host: which bridge it plugs into, its MAC and IPv4 address/prefix."""

    bridge: str
    mac: str
    address: str  # "192.168.10.11/24"
    name: str = "eth0"

    @property
    def ip(self) -> str:
        return self.address.split("/", 1)[0]


@dataclass(frozen=True)
class Host:
    """A machine of the lab: a namespace with one or more legs.

    ``port_range`` narrows the ephemeral source ports the kernel picks for connections from this
    host (``net.ipv4.ip_local_port_range`` is per namespace), so that client ports, and with them
    the flow ids of a capture, are the same on every run.
    """

    name: str
    legs: tuple[Leg, ...]
    gateway: str | None = None
    forwarding: bool = False
    port_range: tuple[int, int] | None = None
    role: str = ""
    sysctls: dict[str, str] = field(default_factory=dict)


def _run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def list_namespaces() -> list[str]:
    """Names of all network namespaces (``ip netns list``)."""
    output = _run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in output.splitlines() if line.strip()]


class NetLab:
    """Build and tear down one lab; see the module docstring for the layout."""

    def __init__(self, prefix: str = "icsd") -> None:
        if not prefix or len(prefix) > 8 or not prefix.replace("-", "").isalnum():
            raise ValueError(f"prefix must be 1-8 letters/digits: {prefix!r}")
        if os.geteuid() != 0:
            raise LabError("network namespaces need root")
        self.prefix = prefix
        self.hosts: dict[str, Host] = {}
        self.bridges: list[str] = []
        self.span_interface: str | None = None
        self._namespaces: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._closed = False
        self._previous_sigterm: object = None

    # ---- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> NetLab:
        self.open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Remove leftovers of an earlier run with this prefix, then make the switch namespace."""
        self.remove_stale(self.prefix)
        atexit.register(self.close)
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._add_namespace(self.namespace(SWITCH))

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    def close(self) -> None:
        """Stop every process the lab started (newest first), then delete its namespaces."""
        if self._closed:
            return
        self._closed = True
        for process in reversed(self._processes):
            self.stop(process)
        for name in reversed(self._namespaces):
            _run(["ip", "netns", "delete", name], check=False)
        self._namespaces.clear()
        if self._previous_sigterm is not None:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, self._previous_sigterm)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    @staticmethod
    def remove_stale(prefix: str) -> list[str]:
        """Delete namespaces named ``<prefix>-*`` (left by a run that could not clean up)."""
        stale = [name for name in list_namespaces() if name.startswith(prefix + "-")]
        for name in stale:
            # Processes still inside a stale namespace keep it alive only as a name; deleting the
            # name is all we may do without knowing whose processes they are.
            _run(["ip", "netns", "delete", name], check=False)
        return stale

    # ---- topology ---------------------------------------------------------------------------

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def _add_namespace(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self._namespaces.append(name)
        # Before any interface exists, so that every new one inherits "disabled" from default.
        _run(
            [
                "ip",
                "netns",
                "exec",
                name,
                "sysctl",
                "-q",
                "-w",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]
        )
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    def _switch(self, *argv: str) -> None:
        _run(["ip", "-n", self.namespace(SWITCH), *argv])

    def add_bridge(self, name: str) -> str:
        """Add a learning bridge (a switch without STP, so no BPDUs in the capture)."""
        device = f"br-{name}"[:IFNAME_MAX]
        self._switch("link", "add", device, "type", "bridge", "stp_state", "0")
        self._switch("link", "set", device, "up")
        self.bridges.append(name)
        return device

    def add_host(self, host: Host) -> None:
        """Make the host's namespace, plug each leg into its bridge, set addresses and routes."""
        if host.name in self.hosts or host.name == SWITCH:
            raise ValueError(f"duplicate host name {host.name!r}")
        namespace = self.namespace(host.name)
        self._add_namespace(namespace)
        switch = self.namespace(SWITCH)
        for index, leg in enumerate(host.legs):
            if leg.bridge not in self.bridges:
                raise ValueError(f"{host.name}: no bridge {leg.bridge!r}")
            port = self.port_name(host.name, index)
            _run(
                [
                    "ip",
                    "link",
                    "add",
                    port,
                    "netns",
                    switch,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    leg.name,
                    "netns",
                    namespace,
                ]
            )
            _run(["ip", "-n", namespace, "link", "set", leg.name, "address", leg.mac])
            _run(["ip", "-n", namespace, "addr", "add", leg.address, "dev", leg.name])
            _run(["ip", "-n", namespace, "link", "set", leg.name, "up"])
            self._switch("link", "set", port, "master", f"br-{leg.bridge}"[:IFNAME_MAX], "up")
        if host.gateway:
            _run(["ip", "-n", namespace, "route", "add", "default", "via", host.gateway])
        sysctls = dict(host.sysctls)
        if host.forwarding:
            sysctls["net.ipv4.ip_forward"] = "1"
        if host.port_range:
            sysctls["net.ipv4.ip_local_port_range"] = f"{host.port_range[0]} {host.port_range[1]}"
        for key, value in sysctls.items():
            _run(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", f"{key}={value}"])
        self.hosts[host.name] = host

    def port_name(self, host: str, leg_index: int = 0) -> str:
        """Name of the switch port (veth end in the switch namespace) of one host leg."""
        name = f"p-{host}" if leg_index == 0 else f"p-{host}{leg_index}"
        if len(name) > IFNAME_MAX:
            raise ValueError(f"host name too long for an interface name: {host!r}")
        return name

    def add_span(self, bridges: Iterable[str], name: str = "span0") -> str:
        """Mirror the ingress of every host port on ``bridges`` to a span veth; return the capture side.

        Call it after all hosts are added (ports added later are not mirrored).
        """
        wanted = set(bridges)
        capture = f"{name}-cap"[:IFNAME_MAX]
        self._switch("link", "add", name, "type", "veth", "peer", "name", capture)
        self._switch("link", "set", name, "up")
        self._switch("link", "set", capture, "up")
        switch = self.namespace(SWITCH)
        for host in self.hosts.values():
            for index, leg in enumerate(host.legs):
                if leg.bridge not in wanted:
                    continue
                port = self.port_name(host.name, index)
                _run(["tc", "-n", switch, "qdisc", "add", "dev", port, "clsact"])
                _run(
                    [
                        "tc",
                        "-n",
                        switch,
                        "filter",
                        "add",
                        "dev",
                        port,
                        "ingress",
                        "protocol",
                        "all",
                        "u32",
                        "match",
                        "u32",
                        "0",
                        "0",
                        "action",
                        "mirred",
                        "egress",
                        "mirror",
                        "dev",
                        name,
                    ]
                )
        self.span_interface = capture
        return capture

    # ---- processes --------------------------------------------------------------------------

    def popen(
        self, host: str, argv: Sequence[str], *, log: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the host's namespace (own session); the lab stops it at close."""
        if host != SWITCH and host not in self.hosts:
            raise ValueError(f"no host {host!r}")
        output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed when it exits
        try:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace(host), *argv],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        finally:
            if log:
                output.close()
        self._processes.append(process)
        return process

    def run(
        self, host: str, argv: Sequence[str], *, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the host's namespace to completion; raise LabError if it fails."""
        return _run(["ip", "netns", "exec", self.namespace(host), *argv], timeout=timeout)

    def capture(
        self, path: Path, bpf: str = "", interface: str | None = None, immediate: bool = True
    ) -> subprocess.Popen[bytes]:
        """Start tcpdump on the span port (or ``interface`` of the switch), writing ``path``.

        Returns once tcpdump listens.  ``immediate`` (--immediate-mode): frames reach the file as
        they come, not when libpcap's 1-second ring block retires; at SIGTERM tcpdump drops a block
        not yet handed over (late ARP frames went missing).  Line-rate bursts want the ring instead.
        """
        interface = interface or self.span_interface
        if interface is None:
            raise LabError("add_span() first")
        log = path.with_suffix(".tcpdump.log")
        log.unlink(missing_ok=True)
        mode = ["--immediate-mode"] if immediate else []
        # -B (KiB): in immediate mode libpcap uses TPACKET_V2, one ring slot per frame; with the
        # default 2 MiB buffer a tcpdump kept off the CPU by a busy test run dropped frames (24 of
        # 170 "dropped by kernel" in one run).
        argv = [
            "tcpdump",
            "-i",
            interface,
            *mode,
            "-B",
            "65536",
            "-U",
            "-s",
            "0",
            "-n",
            "-Z",
            "root",
            "-w",
            str(path),
        ]
        process = self.popen(SWITCH, [*argv, *([bpf] if bpf else [])], log=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "listening on" in log.read_text(errors="replace"):
                return process
            if process.poll() is not None:
                break
            time.sleep(0.05)
        raise LabError(f"tcpdump did not start: {log.read_text(errors='replace')}")

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 5.0) -> int:
        """Signal one process this lab started and its session, wait, SIGKILL after ``grace`` s."""
        if process not in self._processes:
            raise ValueError("not a process of this lab")
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                # Its own session: the group holds the process and the children it made.
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        return process.returncode
