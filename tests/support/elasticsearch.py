"""A real Elasticsearch for the integration tests: fetched once, started per test session.

``ElasticsearchNode`` runs the 8.19.x test distribution (Maven Central artifact
``org.elasticsearch.distribution.integ-test-zip:elasticsearch``, no bundled JDK) on Java 17+:

* the zip is fetched once with Maven into ``$ICS_MONITOR_ES_CACHE`` (default
  ``~/.cache/ics-monitor/elasticsearch``; ``.ci/install-es.sh`` does the same in CI) and unpacked
  into a world-readable directory under the system temp dir;
* Elasticsearch refuses to run as root, so as root the node runs as the system user ``icsmon-es``
  (created if absent) through ``runuser``;
* single node on 127.0.0.1, free HTTP and transport ports, security off, disk thresholds off,
  512 MiB heap, a fresh data path per node; ``start`` waits for yellow health (timeout).

The session fixture ``elasticsearch_url`` uses ``$ICS_MONITOR_ES_URL`` when set (a running
cluster), otherwise starts a node.  If the node cannot start, the tests FAIL with the reason (never a
silent skip in CI); only ``ICS_MONITOR_ES_TESTS=skip`` turns them into explicit skips, for a
developer's machine without Java.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ES_VERSION = os.environ.get("ICS_MONITOR_ES_VERSION", "8.19.21")
ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch"
ENV_URL = "ICS_MONITOR_ES_URL"
ENV_SWITCH = "ICS_MONITOR_ES_TESTS"
ES_USER = "icsmon-es"
START_TIMEOUT = float(os.environ.get("ICS_MONITOR_ES_START_TIMEOUT", "240"))


class NodeError(RuntimeError):
    """The node could not be fetched or started (the message says why)."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "ics-monitor" / "elasticsearch"
    return Path(os.environ.get("ICS_MONITOR_ES_CACHE", str(default)))


def distribution_zip() -> Path:
    """The cached zip, fetched with Maven if absent."""
    target = cache_dir() / f"elasticsearch-{ES_VERSION}.zip"
    if target.is_file() and zipfile.is_zipfile(target):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise NodeError(f"{target} is missing and Maven is not installed: run .ci/install-es.sh")
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [
        mvn,
        "-q",
        "-B",
        "dependency:copy",
        f"-Dartifact={ARTIFACT}:{ES_VERSION}:zip",
        f"-DoutputDirectory={target.parent}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0 or not target.is_file():
        tail = (result.stdout + result.stderr)[-2000:]
        raise NodeError(f"fetching {ARTIFACT}:{ES_VERSION} with Maven failed:\n{tail}")
    return target


def _extract(archive: Path, destination: Path) -> None:
    """Unzip keeping the Unix modes (zipfile drops them; the launch scripts must stay executable)."""
    with zipfile.ZipFile(archive) as handle:
        for info in handle.infolist():
            path = handle.extract(info, destination)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(path, mode | 0o444 | (0o111 if info.is_dir() else 0))


def distribution_home() -> Path:
    """The unpacked distribution, shared by every node and test process (unpacked once, locked)."""
    root = Path(tempfile.gettempdir()) / "ics-monitor-es-dist"
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    home = root / f"elasticsearch-{ES_VERSION}"
    marker = root / f".complete-{ES_VERSION}"
    with open(root / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            shutil.rmtree(home, ignore_errors=True)
            _extract(distribution_zip(), root)
            for directory, _, _ in os.walk(home):
                os.chmod(directory, 0o755)
            marker.touch()
    return home


def java_home() -> Path:
    """A Java 17+ home: ``ES_JAVA_HOME``, ``JAVA_HOME``, or the one ``java`` on PATH belongs to."""
    candidates = [os.environ.get("ES_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    java = shutil.which("java")
    if java:
        candidates.append(str(Path(os.path.realpath(java)).parents[1]))
    for candidate in candidates:
        if candidate and (Path(candidate) / "bin" / "java").is_file():
            return Path(candidate)
    raise NodeError("no Java found (need 17+): run .ci/install-es.sh or set ES_JAVA_HOME")


def ensure_user() -> pwd.struct_passwd | None:
    """As root: the unprivileged user the node runs as (created if absent); else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(ES_USER)
    except KeyError:
        pass
    command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ES_USER]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise NodeError(f"cannot create user {ES_USER}: {result.stderr.strip()}")
    return pwd.getpwnam(ES_USER)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, timeout: float = 5.0) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


class ElasticsearchNode:
    """One single-node cluster on loopback; ``stop``/``start`` keep its port and data."""

    def __init__(self, name: str = "ics-monitor-test") -> None:
        self.name = name
        self.home = distribution_home()
        self.java_home = java_home()
        self.user = ensure_user()
        self.port = free_port()
        self.transport_port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ics-es-node-"))
        os.chmod(self.root, 0o755)
        self._process: subprocess.Popen[bytes] | None = None
        self._configure()
        atexit.register(self.destroy)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process_group(self) -> int | None:
        """The node's process group (launcher and JVM), while it runs."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def _configure(self) -> None:
        config = self.root / "config"
        shutil.copytree(self.home / "config", config)
        for name in ("data", "logs", "tmp"):
            (self.root / name).mkdir()
        settings = {
            "cluster.name": self.name,
            "node.name": self.name,
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": self.port,
            "transport.port": self.transport_port,
            "path.data": str(self.root / "data"),
            "path.logs": str(self.root / "logs"),
            "xpack.security.enabled": "false",
            "cluster.routing.allocation.disk.threshold_enabled": "false",
        }
        (config / "elasticsearch.yml").write_text(
            "".join(f"{key}: {value}\n" for key, value in settings.items())
        )
        # The GC log under the distribution would need write access there: keep it in the node dir.
        options = (
            (config / "jvm.options")
            .read_text()
            .replace("file=gc.log", f"file={self.root / 'logs' / 'gc.log'}")
        )
        (config / "jvm.options").write_text(options)
        if self.user is not None:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        environment = {
            **os.environ,
            "ES_JAVA_HOME": str(self.java_home),
            "ES_PATH_CONF": str(self.root / "config"),
            "ES_TMPDIR": str(self.root / "tmp"),
            "ES_JAVA_OPTS": "-Xms512m -Xmx512m",
        }
        environment.pop("JAVA_HOME", None)
        environment.pop("JAVA_TOOL_OPTIONS", None)
        command = [str(self.home / "bin" / "elasticsearch")]
        if self.user is not None:
            command = ["runuser", "-u", ES_USER, "--", *command]
        log = open(self.root / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                cwd=self.root,
                start_new_session=True,
            )
        finally:
            log.close()
        self._wait(timeout)

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        health_url = f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=2s"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise NodeError(f"Elasticsearch exited with {self._process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError, urllib.error.URLError):
                health = http_json(health_url)
                if health.get("status") in ("yellow", "green"):
                    return
            time.sleep(0.5)
        self.stop()
        raise NodeError(f"Elasticsearch not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.root / "stdout.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 60.0) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            self._process = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        # The launcher may go before the server JVM: make sure nothing of the group is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        self._process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_node(name: str) -> ElasticsearchNode:
    """A started node, or a test failure with the reason (a skip only when switched off)."""
    if os.environ.get(ENV_SWITCH, "").lower() == "skip":
        pytest.skip(f"{ENV_SWITCH}=skip: Elasticsearch integration tests switched off")
    try:
        node = ElasticsearchNode(name)
        node.start()
    except (NodeError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(
            f"could not start Elasticsearch {ES_VERSION} for the integration tests: {exc}\n"
            f"(run .ci/install-es.sh, point {ENV_URL} at a running cluster, or set {ENV_SWITCH}=skip)",
            pytrace=False,
        )
    return node


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    """URL of a running cluster: ``$ICS_MONITOR_ES_URL``, or a node started for this session."""
    external = os.environ.get(ENV_URL)
    if external:
        yield external.split(",")[0].strip()
        return
    node = start_node("ics-monitor-session")
    try:
        yield node.url
    finally:
        node.destroy()


@pytest.fixture
def private_node() -> Iterator[ElasticsearchNode]:
    """A node of the test's own, which the test may stop and start (outage tests)."""
    node = start_node("ics-monitor-private")
    try:
        yield node
    finally:
        node.destroy()
