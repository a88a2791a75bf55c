"""The Elasticsearch sink: ECS documents delivered without loss or duplicates, never blocking capture.

::

    monitor process                            worker process (worker_main, nice 10)
    emit(record) ─ kind filter ─ JSON ─▶ pipe ─▶ ECS, in order ─▶ spool ─▶ sender thread: a batch
        │  (pipe full: buffered; past 32 MiB emit waits for the worker)      (fsynced before sending)
        ▼                                                                           │
    packet processing goes on                 bulk, raw NDJSON (create / external version)
                                  │ 2xx, 409: confirmed       │ refused content     │ down, 429, 5xx
                                  ▼                           ▼                     ▼
                             spool trimmed             dead-letter file      retry, backoff + jitter

* Mapping, spooling and sending run in a worker process, so none of it competes with packet
  processing for the interpreter lock (a sender thread in the monitor made a replay take 60% to
  160% longer on a 2-core machine); ``worker_process: false`` (or a ``client`` given) keeps
  delivery on a thread in this process: a bounded queue, spilling into the spool when full.
* Every document has a deterministic ``_id`` (see ``ecs``) and is written with ``op_type: create``
  (alerts and assets: ``index`` with an external version); a 409 means "already there" and counts
  as delivered, so replays and re-sends after an outage never duplicate.
* The spool in ``<state>/elasticsearch/spool`` is written before sending and trimmed only after
  Elasticsearch confirmed; what is left at exit is sent by the next run.  Its size cap and drop
  policy are in ``spool``; every drop is counted in ``stats``.  Records the worker's pipe cannot
  take at once wait in a buffer in the monitor, capped at 32 MiB: past the cap ``emit`` waits for
  the worker to map some (CPU backpressure: the worker never waits for the network); records for
  a worker that died or took nothing for 10 s are dropped, counted in ``backlog_dropped`` and
  reported as ``sink.spool_dropped``.
* A document Elasticsearch refuses for its content (mapping conflict, parse error) goes to
  ``<state>/elasticsearch/dead-letter.jsonl`` with the reason, and raises the anomaly
  ``sink.elasticsearch_rejected`` (kept in ``anomalies`` and indexed like any other anomaly).
* Secrets (API key, password, credentials in URLs) are never printed or logged: ``redacted()``
  is what may be shown.  Like every library module here it logs at DEBUG only.

This module must not be imported by anything below ``sinks`` (import-linter keeps the client out).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

import orjson
import yaml

from ics_monitor.alerts.record import Alert
from ics_monitor.core.anomalies import Severity, register
from ics_monitor.core.errors import ConfigError
from ics_monitor.core.yamlfile import load_yaml
from ics_monitor.events import AnomalyEvent
from ics_monitor.sinks.ecs import (
    ANOMALY,
    DEFAULT_KINDS,
    DEFAULT_PREFIX,
    EVENT,
    KINDS,
    Document,
    EcsMapper,
    Observer,
    _jsonable,
    index_templates,
    record_dict,
)
from ics_monitor.sinks.spool import DEFAULT_MAX_BYTES, Batch, Spool, SpoolError

if TYPE_CHECKING:
    from elasticsearch import ApiError, Elasticsearch

# The client library (about 0.2 s to import) is imported where it is used, so commands that never
# talk to Elasticsearch start without it.

log = logging.getLogger(__name__)

REJECTED = "sink.elasticsearch_rejected"
SPOOL_DROPPED = "sink.spool_dropped"
register(
    REJECTED,
    Severity.MEDIUM,
    "Elasticsearch refused a document for its content (mapping conflict); it is in the dead-letter file",
)
register(
    SPOOL_DROPPED,
    Severity.HIGH,
    "the delivery spool reached its size cap: the oldest undelivered documents were dropped",
)

ENV_PREFIX = "ICS_MONITOR_ES_"
DEFAULT_URL = "http://127.0.0.1:9200"
# Statuses after which a document will never be accepted as it is: it goes to the dead-letter file.
# 409 is success (already there); 408/429/5xx and auth errors are retried.
_RETRY_STATUSES = frozenset({401, 403, 404, 408, 429})
_MAX_ANOMALIES = 1000
_DEAD_LETTER_MAX_BYTES = 64 * 1024 * 1024


class ElasticsearchConfigError(ConfigError):
    """Bad Elasticsearch settings (a user error: one line, exit code 2)."""


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True, slots=True, repr=False)
class ElasticsearchSettings:
    """How to reach the cluster and how to deliver.  ``repr`` shows the redacted view only."""

    urls: tuple[str, ...] = (DEFAULT_URL,)
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    fingerprint: str | None = None
    verify_certs: bool = True
    request_timeout: float = 30.0
    index_prefix: str = DEFAULT_PREFIX
    data_streams: bool = False
    observer_name: str | None = None
    kinds: frozenset[str] = DEFAULT_KINDS
    batch_size: int = 500
    flush_interval: float = 1.0
    queue_size: int = 10_000
    spool_max_bytes: int = DEFAULT_MAX_BYTES
    fsync: bool = True
    worker_process: bool = True
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    close_timeout: float = 30.0

    def __repr__(self) -> str:
        return f"ElasticsearchSettings({self.redacted()})"

    def redacted(self) -> dict[str, Any]:
        """Settings safe to print: URLs without credentials, secrets replaced by ``***``."""
        shown: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in ("api_key", "password"):
                value = "***" if value else None
            elif item.name == "urls":
                value = [redact_url(url) for url in value]
            elif isinstance(value, frozenset):
                value = sorted(value)
            shown[item.name] = value
        return shown

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Elasticsearch(...)``; credentials in URLs become basic auth."""
        hosts: list[str] = []
        username, password = self.username, self.password
        for url in self.urls:
            parts = urlsplit(url)
            if parts.username is not None:
                username = username or parts.username
                password = password or parts.password
                netloc = parts.hostname or ""
                if parts.port:
                    netloc = f"{netloc}:{parts.port}"
                url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
            hosts.append(url)
        from elasticsearch.serializer import OrjsonSerializer

        options: dict[str, Any] = {
            "hosts": hosts,
            # orjson is a dependency anyway; the default json serializer was a third of the
            # Python time per document.
            "serializer": OrjsonSerializer(),
            "verify_certs": self.verify_certs,
            "request_timeout": self.request_timeout,
            # The sink has its own retry loop with backoff; the client only fails over between
            # the configured nodes.
            "max_retries": max(0, len(hosts) - 1),
            "retry_on_timeout": True,
        }
        if self.api_key:
            options["api_key"] = self.api_key
        if username:
            options["basic_auth"] = (username, password or "")
        if self.ca_file:
            options["ca_certs"] = self.ca_file
        if self.fingerprint:
            options["ssl_assert_fingerprint"] = self.fingerprint
        return options


def redact_url(url: str) -> str:
    """``https://user:secret@host:9200`` → ``https://user:***@host:9200``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, value: Any) -> Any:
    """A setting from text (environment) or YAML into the dataclass field's type."""
    if value is None:
        return None
    bools = {"verify_certs", "data_streams", "fsync", "worker_process"}
    ints = {"batch_size", "queue_size", "spool_max_bytes"}
    floats = {"request_timeout", "backoff_initial", "backoff_max", "close_timeout", "flush_interval"}
    try:
        if name in ("urls", "url"):
            items = value.split(",") if isinstance(value, str) else list(value)
            urls = tuple(str(item).strip() for item in items if str(item).strip())
            if not urls:
                raise ValueError("empty")
            return urls
        if name == "kinds":
            items = value.split(",") if isinstance(value, str) else list(value)
            kinds = frozenset(str(item).strip() for item in items if str(item).strip())
            unknown = kinds - set(KINDS)
            if unknown:
                raise ValueError(f"unknown kinds {sorted(unknown)}")
            return kinds
        if name in bools:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _BOOL_TRUE:
                return True
            if text in _BOOL_FALSE:
                return False
            raise ValueError("not a boolean")
        if name in ints:
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ValueError("not an integer") from None
            if number <= 0:
                raise ValueError("must be more than zero")
            return number
        if name in floats:
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                raise ValueError("not a number") from None
            # NaN too: a join with a NaN timeout raised at the end of the run.  A request needs
            # some time; the others may be 0 (no wait, no pause).
            low_ok = seconds > 0 if name == "request_timeout" else seconds >= 0
            if not (low_ok and seconds < math.inf):
                raise ValueError(
                    "must be a finite number of seconds"
                    + (" above 0" if name == "request_timeout" else ", 0 or more")
                )
            return seconds
        return str(value)
    except (TypeError, ValueError) as exc:
        # The value itself is not echoed: it may be a secret.
        raise ElasticsearchConfigError(f"Elasticsearch setting {name!r} is invalid ({exc})") from None


_NAMES = {item.name for item in fields(ElasticsearchSettings)}


def settings_from_mapping(
    values: Mapping[str, Any], base: ElasticsearchSettings | None = None
) -> ElasticsearchSettings:
    """Apply ``values`` (names as the dataclass fields; ``url`` = ``urls``) over ``base``."""
    changes: dict[str, Any] = {}
    for key, value in values.items():
        name = "urls" if key == "url" else key.replace("-", "_")
        if name not in _NAMES:
            raise ElasticsearchConfigError(f"unknown Elasticsearch setting {key!r}")
        if value is None:
            continue
        changes[name] = _coerce(name, value)
    return replace(base or ElasticsearchSettings(), **changes)


def settings_from_env(
    environ: Mapping[str, str], base: ElasticsearchSettings | None = None
) -> ElasticsearchSettings:
    """``ICS_MONITOR_ES_URL`` (comma-separated), ``ICS_MONITOR_ES_API_KEY``, ``..._USERNAME``, ...

    Every field of ``ElasticsearchSettings`` has a variable: ``ICS_MONITOR_ES_`` + its name in
    upper case (``URL`` for ``urls``).
    """
    values: dict[str, Any] = {}
    for name in _NAMES:
        variable = ENV_PREFIX + ("URL" if name == "urls" else name.upper())
        if environ.get(variable, "") != "":
            values[name] = environ[variable]
    return settings_from_mapping(values, base)


def settings_from_file(path: Path) -> dict[str, Any]:
    """The ``elasticsearch:`` section of a YAML config file (empty when absent)."""
    try:
        document = load_yaml(path.read_text()) or {}
    except OSError as exc:
        raise ElasticsearchConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ElasticsearchConfigError(f"config file {path} is not valid YAML: {exc}") from None
    section = document.get("elasticsearch") if isinstance(document, dict) else None
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ElasticsearchConfigError(f"config file {path}: 'elasticsearch' must be a mapping")
    return section


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ElasticsearchSettings:
    """Settings by precedence: command line ``overrides`` > environment > config file > defaults."""
    settings = ElasticsearchSettings()
    if config_file is not None:
        settings = settings_from_mapping(settings_from_file(config_file), settings)
    settings = settings_from_env(os.environ if environ is None else environ, settings)
    if overrides:
        settings = settings_from_mapping(overrides, settings)
    return settings


def make_client(settings: ElasticsearchSettings) -> Elasticsearch:
    """An ``Elasticsearch`` client for the settings."""
    from elasticsearch import Elasticsearch

    try:
        return Elasticsearch(**settings.client_options())
    except (ValueError, TypeError) as exc:
        raise ElasticsearchConfigError(f"Elasticsearch connection settings are invalid: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Index management (``ics-monitor es setup`` / ``es check``)


def _template_fingerprint(body: Mapping[str, Any]) -> str:
    import hashlib

    canonical = orjson.dumps({k: v for k, v in body.items() if k != "_meta"}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


def desired_templates(settings: ElasticsearchSettings) -> dict[str, dict[str, Any]]:
    """The templates ``es setup`` installs, each with a fingerprint in ``_meta`` for ``es check``."""
    templates = index_templates(settings.index_prefix, data_streams=settings.data_streams)
    for body in templates.values():
        body["_meta"]["fingerprint"] = _template_fingerprint(body)
    return templates


def data_streams_supported(client: Elasticsearch) -> bool:
    """True when the cluster has the data-streams module (minimal test distributions lack it)."""
    from elasticsearch import ApiError

    try:
        client.indices.get_data_stream(name="*")
    except ApiError:
        return False
    return True


def setup_templates(client: Elasticsearch, settings: ElasticsearchSettings) -> list[str]:
    """Install (or replace) the composable index templates; return their names."""
    if settings.data_streams and not data_streams_supported(client):
        raise ElasticsearchConfigError("this cluster does not support data streams; set data_streams: false")
    names = []
    for name, body in desired_templates(settings).items():
        client.indices.put_index_template(name=name, **body)
        names.append(name)
    return names


def cluster_version(client: Elasticsearch) -> tuple[str, str]:
    """(version, cluster name); minimal distributions have no ``GET /``, so ask the nodes API."""
    from elasticsearch import ApiError

    try:
        info = client.info()
        return str(info["version"]["number"]), str(info["cluster_name"])
    except ApiError:
        nodes = client.nodes.info(node_id="_local", metric="_none")
        versions = [node.get("version", "?") for node in nodes["nodes"].values()]
        return str(versions[0] if versions else "?"), str(nodes.get("cluster_name", "?"))


def check_cluster(client: Elasticsearch, settings: ElasticsearchSettings) -> dict[str, Any]:
    """Connectivity, version, health and template state, as a dict for the CLI.

    Template states: ``current``, ``outdated`` (installed by another version or edited) or
    ``missing``.  Raises ``TransportError``/``ApiError`` when the cluster cannot be reached.
    """
    from elasticsearch import ApiError

    version, cluster_name = cluster_version(client)
    health = client.cluster.health()
    templates: dict[str, str] = {}
    for name, body in desired_templates(settings).items():
        try:
            found = client.indices.get_index_template(name=name)
        except ApiError as exc:
            if exc.status_code == 404:
                templates[name] = "missing"
                continue
            raise
        installed = found["index_templates"][0]["index_template"] if found["index_templates"] else {}
        fingerprint = (installed.get("_meta") or {}).get("fingerprint")
        templates[name] = "current" if fingerprint == body["_meta"]["fingerprint"] else "outdated"
    return {
        "urls": [redact_url(url) for url in settings.urls],
        "version": version,
        "cluster_name": cluster_name,
        "status": str(health.get("status")),
        "number_of_nodes": health.get("number_of_nodes"),
        "data_streams_supported": data_streams_supported(client),
        "templates": templates,
    }


# ---------------------------------------------------------------------------------------------
# Delivery


@dataclass
class DeliveryStats:
    """Counters of one sink's life; every document is in exactly one outcome once closed."""

    received: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    delivered: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    queue_overflow: int = 0
    dead_letter_dropped: int = 0
    bulk_requests: int = 0
    failed_attempts: int = 0
    last_error: str | None = None

    def as_dict(self, spool: Spool | None = None) -> dict[str, Any]:
        """JSON-ready counters (plus the spool's own, when given)."""
        result: dict[str, Any] = {
            "received": dict(self.received),
            "skipped": self.skipped,
            "delivered": dict(self.delivered),
            "duplicates": dict(self.duplicates),
            "rejected": dict(self.rejected),
            "retried": dict(self.retried),
            "queue_overflow": self.queue_overflow,
            "dead_letter_dropped": self.dead_letter_dropped,
            "bulk_requests": self.bulk_requests,
            "failed_attempts": self.failed_attempts,
            "last_error": self.last_error,
        }
        if spool is not None:
            result["spool_pending"] = spool.pending_items
            result["spool_pending_bytes"] = spool.pending_bytes
            result["spool_dropped"] = dict(spool.dropped)
        return result


class DeadLetterFile:
    """Appends refused documents with the reason, as JSON lines, up to a size cap."""

    def __init__(self, path: Path, max_bytes: int = _DEAD_LETTER_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self.size = path.stat().st_size if path.exists() else 0

    def write(self, entries: list[dict[str, Any]]) -> int:
        """Append ``entries``; return how many did not fit under the cap."""
        data = [orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE) for entry in entries]
        kept = []
        for line in data:
            if self.size + len(line) > self.max_bytes:
                continue
            kept.append(line)
            self.size += len(line)
        if kept:
            with open(self.path, "ab") as handle:
                handle.write(b"".join(kept))
                handle.flush()
                os.fsync(handle.fileno())
        return len(data) - len(kept)


# Only what settling needs comes back: less for Elasticsearch to write and for us to parse.
_BULK_FILTER = "errors,items.*.status,items.*.error"


def _spool_line(document: Document) -> bytes:
    """``<bulk action line> TAB <source>``: the two NDJSON lines of the bulk body, ready to send.

    Serialized once, when spooled; sending only joins bytes (JSON never holds a raw tab).
    """
    header: dict[str, Any] = {"_index": document.index, "_id": document.id}
    if document.version is not None:
        header["version"] = document.version
        header["version_type"] = "external"
    return orjson.dumps({document.op_type: header}) + b"\t" + orjson.dumps(document.source)


def _bulk_pair(line: bytes) -> tuple[bytes, bytes] | None:
    """The (action, source) lines of a spool line; older spools hold one helper action dict."""
    meta, tab, source = line.partition(b"\t")
    if tab:
        return meta, source
    try:
        action = orjson.loads(line)
        header = {"_index": action["_index"], "_id": action["_id"]}
        if "version" in action:
            header["version"] = action["version"]
            header["version_type"] = action.get("version_type", "external")
        return orjson.dumps({action.get("_op_type", "create"): header}), orjson.dumps(action["_source"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


class _Inbox:
    """Records on their way from the packet thread to the sender thread: a bounded FIFO.

    Unlike ``queue.Queue``, taking items is apart from waiting for them: the sink takes them under
    its map lock, so records are mapped and spooled in the order they were emitted by whichever
    thread does it.  That order matters: a document's id counts the identical records of its frame
    before it (``EcsMapper``), and the spool's size cap drops the oldest first.
    """

    __slots__ = ("items", "limit", "ready", "woken")

    def __init__(self, limit: int) -> None:
        self.items: deque[Any] = deque()
        self.limit = max(1, limit)
        self.ready = threading.Condition()
        self.woken = False

    def __len__(self) -> int:
        return len(self.items)

    def put(self, item: Any) -> bool:
        """Queue ``item``; False (and nothing queued) when the inbox is full."""
        with self.ready:
            if len(self.items) >= self.limit:
                return False
            self.items.append(item)
            self.ready.notify()
            return True

    def wake(self) -> None:
        """Wake the taker waiting in ``wait`` (there is something to do)."""
        with self.ready:
            self.woken = True
            self.ready.notify()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for an item or a wake-up; True when either came."""
        with self.ready:
            if not self.items and not self.woken and timeout > 0:
                self.ready.wait(timeout)
            woken = self.woken
            self.woken = False
            return woken or bool(self.items)

    def take(self, limit: int) -> list[Any]:
        """The oldest ``limit`` items (fewer when fewer are queued), taken out."""
        items = self.items
        with self.ready:
            return [items.popleft() for _ in range(min(limit, len(items)))]


def _backoff(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = initial * 2^(attempt-1) capped."""
    delay = min(maximum, initial * (2 ** min(attempt - 1, 30)))
    return rng.uniform(delay / 2, delay)


def _error_reason(item: Mapping[str, Any]) -> str:
    error = item.get("error")
    if isinstance(error, Mapping):
        reason = f"{error.get('type')}: {error.get('reason')}"
        cause = error.get("caused_by")
        if isinstance(cause, Mapping):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return reason
    return str(error)


class DeliveryEngine:
    """Queue, spool and sender thread: the delivery itself, run where ``ElasticsearchSink`` says.

    By default it runs in the sink's worker process (``worker_main``), fed with records as JSON
    objects; with ``worker_process: false`` or a ``client`` given, in the monitor's own process.
    ``state_dir`` holds the spool and the dead-letter file.
    """

    def __init__(
        self,
        settings: ElasticsearchSettings,
        state_dir: Path | str,
        *,
        client: Elasticsearch | None = None,
        seed: int | None = None,
    ) -> None:
        self.settings = settings
        directory = Path(state_dir) / "elasticsearch"
        self.spool = Spool(directory / "spool", max_bytes=settings.spool_max_bytes, fsync=settings.fsync)
        self.dead_letters = DeadLetterFile(directory / "dead-letter.jsonl")
        self.client = client if client is not None else make_client(settings)
        observer = Observer(settings.observer_name or socket.gethostname(), socket.gethostname())
        self.mapper = EcsMapper(observer, settings.index_prefix, settings.kinds)
        self.stats = DeliveryStats()
        self.anomalies: list[AnomalyEvent] = []
        self.connected: bool | None = None
        self._inbox = _Inbox(settings.queue_size)
        # Records mapped per take from the inbox (the sender's, or a spill's).
        self._take_limit = max(settings.batch_size * 4, 1)
        # Held while records are taken from the inbox, mapped and spooled: one order for all.
        self._map_lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = 0.0
        self._rng = random.Random(seed)
        self._spool_drops_reported = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ics-monitor-elasticsearch", daemon=True)
        self._thread.start()

    # -- producer side (packet thread) --------------------------------------------------------

    def emit(self, record: Any) -> None:
        """Take one record; never blocks on the network (a full inbox spills into the spool).

        Spilling spools the inbox's oldest records, then queues this one: in the order they came.
        """
        if self.mapper.kind_of(record) not in self.mapper.kinds:
            # Unselected kinds (protocol events by default) never cross to the sender thread.
            self.stats.skipped += 1
            return
        if not self._inbox.put(record):
            # Spool the oldest batches (the sender's share), so that the record joins the inbox
            # behind the rest: in order, and this thread maps a bounded number of records.
            self.stats.queue_overflow += 1
            with self._map_lock:
                records = self._inbox.take(self._take_limit)
                if not self._inbox.put(record):
                    # Not reached with one producer (the take freed a slot); kept in order anyway.
                    records.append(record)
                self._spool_mapped(records, sync=False)

    def accept(self, records: list[Any]) -> None:
        """Map and spool ``records`` now, in order, and wake the sender (the worker's input path).

        In order matters: a document's id depends on the records of its frame before it, so the
        queue-overflow path of ``emit`` (mapping on another thread) is not used here.  Synced per
        pipe read (a few per second at replay rates), as the sender thread syncs what it spools.
        """
        if records:
            with self._map_lock:
                self._spool_mapped(records, sync=True)
            self._inbox.wake()

    def close(self) -> None:
        """Deliver what can be delivered within ``close_timeout``; the rest stays spooled."""
        if self._closed:
            return
        self._closed = True
        self._deadline = time.monotonic() + self.settings.close_timeout
        self._stop.set()
        self._inbox.wake()  # the sender may wait on an empty inbox
        self._thread.join(self.settings.close_timeout + self.settings.request_timeout + 5.0)
        if self._thread.is_alive():
            # Stuck in a request beyond every timeout: leave the spool to the process exit (the
            # OS releases its lock); what is confirmed is confirmed, the rest is re-sent next run.
            log.debug("elasticsearch sender still busy at close; spool left for the next run")
            return
        self._report_spool_drops()
        self.spool.close()

    def status(self) -> dict[str, Any]:
        """Counters for the CLI and tests (no secrets)."""
        return self.stats.as_dict(self.spool)

    # -- sender thread ------------------------------------------------------------------------

    def _spool_mapped(self, records: list[Any], *, sync: bool) -> None:
        """Map ``records`` and append them to the spool, in order (the caller holds the map lock)."""
        kinds: list[str] = []
        lines: list[bytes] = []
        for record in records:
            document = self.mapper.document(record)
            if document is None:
                self.stats.skipped += 1
                continue
            self.stats.received[document.kind] += 1
            kinds.append(document.kind)
            lines.append(_spool_line(document))
        if lines:
            self.spool.append(kinds, lines, sync=sync)

    def _take_inbox(self, timeout: float) -> bool:
        """Move inbox records into the spool; wait up to ``timeout`` for one (or a wake-up)."""
        if not self._inbox.wait(timeout):
            return False
        with self._map_lock:
            records = self._inbox.take(self._take_limit)
            if records:
                self._spool_mapped(records, sync=True)
        return True

    def _run(self) -> None:
        attempt = 0
        next_try = 0.0
        pending_since: float | None = None
        while True:
            now = time.monotonic()
            pending = not self.spool.empty
            if pending and pending_since is None:
                pending_since = now
            elif not pending:
                pending_since = None
            if self._stop.is_set():
                timeout = 0.0
            elif attempt:
                timeout = max(0.0, next_try - now)
            elif pending and self.spool.pending_items < self.settings.batch_size:
                # Linger for a fuller batch: one bulk request of 500 costs about what one of 5 does.
                assert pending_since is not None
                timeout = max(0.0, pending_since + self.settings.flush_interval - now)
            else:
                timeout = 0.0 if pending else 0.5
            took = self._take_inbox(timeout)
            now = time.monotonic()
            if self._stop.is_set() and not took and not self._inbox:
                if self.spool.empty or now >= self._deadline:
                    break
                if attempt and now < next_try:
                    time.sleep(min(0.05, max(0.0, next_try - now)))
                    continue
            if self.spool.empty or now < next_try:
                continue
            lingering = (
                not self._stop.is_set()
                and not attempt
                and self.spool.pending_items < self.settings.batch_size
                and pending_since is not None
                and now < pending_since + self.settings.flush_interval
            )
            if lingering:
                continue
            pending_since = None
            if self._send_batch():
                attempt = 0
                next_try = 0.0
            else:
                attempt += 1
                next_try = time.monotonic() + _backoff(
                    attempt, self.settings.backoff_initial, self.settings.backoff_max, self._rng
                )
            self._report_spool_drops()

    def _send_batch(self) -> bool:
        """Send one batch from the spool as one raw NDJSON bulk body; True when no item needs a retry."""
        from elastic_transport import TransportError
        from elasticsearch import ApiError

        batch = self.spool.read(self.settings.batch_size)
        if not batch.lines:
            return True
        entries: list[tuple[str, bytes, bytes]] = []
        unreadable: list[dict[str, Any]] = []
        for kind, line in zip(batch.kinds, batch.lines, strict=True):
            pair = _bulk_pair(line)
            if pair is None:
                unreadable.append({"kind": kind, "status": None, "reason": "unreadable spool line"})
                continue
            entries.append((kind, *pair))
        self.stats.bulk_requests += 1
        body = b"".join(b"%b\n%b\n" % (meta, source) for _, meta, source in entries)
        try:
            if entries:
                response = self.client.bulk(operations=cast(Any, body), filter_path=_BULK_FILTER)
                items = response.get("items") or []
            else:
                items = []
        except ApiError as exc:
            if 400 <= exc.status_code < 500 and exc.status_code not in _RETRY_STATUSES:
                # The body as a whole was refused: a damaged line; check each one (costly, rare).
                return self._refused_body(batch, entries, unreadable, exc)
            self._connection_failed(exc)
            return False
        except TransportError as exc:
            # The cluster is unreachable (connection refused, timeout, TLS): nothing confirmed.
            self._connection_failed(exc)
            return False
        if len(items) != len(entries):
            self._connection_failed(RuntimeError("bulk response does not match the request"))
            return False
        self._connected()
        return self._settle(batch, entries, items, unreadable)

    def _refused_body(
        self,
        batch: Batch,
        entries: list[tuple[str, bytes, bytes]],
        dead: list[dict[str, Any]],
        exc: ApiError,
    ) -> bool:
        """Dead-letter the lines that are not JSON, re-queue the rest; a retry when all are fine."""
        keep_kinds: list[str] = []
        keep_lines: list[bytes] = []
        for kind, meta, source in entries:
            try:
                orjson.loads(meta)
                orjson.loads(source)
            except orjson.JSONDecodeError:
                dead.append({"kind": kind, "status": exc.status_code, "reason": "unreadable spool line"})
                continue
            keep_kinds.append(kind)
            keep_lines.append(meta + b"\t" + source)
        if not dead:
            self._connection_failed(exc)
            return False
        self._dead_letter(dead)
        if keep_lines:
            self.spool.append(keep_kinds, keep_lines, sync=True)
        self.spool.commit(batch.end, len(batch.lines))
        return not keep_lines

    def _settle(
        self,
        batch: Batch,
        entries: list[tuple[str, bytes, bytes]],
        items: list[Mapping[str, Any]],
        dead: list[dict[str, Any]],
    ) -> bool:
        retry_kinds: list[str] = []
        retry_lines: list[bytes] = []
        for (kind, meta, source), result in zip(entries, items, strict=True):
            item = next(iter(result.values())) if result else {}
            status = item.get("status")
            if isinstance(status, int) and 200 <= status < 300:
                self.stats.delivered[kind] += 1
                continue
            if status == 409:
                self.stats.duplicates[kind] += 1
                continue
            if not isinstance(status, int) or status >= 500 or status in _RETRY_STATUSES:
                self.stats.retried[kind] += 1
                self.stats.last_error = f"HTTP {status}: {_error_reason(item)}"[:500]
                retry_kinds.append(kind)
                retry_lines.append(meta + b"\t" + source)
                continue
            header = next(iter(orjson.loads(meta).values()))
            dead.append(
                {
                    "kind": kind,
                    "index": header.get("_index"),
                    "id": header.get("_id"),
                    "status": status,
                    "reason": _error_reason(item),
                    "document": orjson.loads(source),
                }
            )
        if dead:
            self._dead_letter(dead)
        # Items to retry go back at the tail, then the batch is confirmed as a whole: order does
        # not matter (ids are deterministic, living documents are versioned).
        if retry_lines:
            self.spool.append(retry_kinds, retry_lines, sync=True)
        self.spool.commit(batch.end, len(batch.lines))
        if retry_lines:
            self.stats.failed_attempts += 1
        return not retry_lines

    def _dead_letter(self, entries: list[dict[str, Any]]) -> None:
        wall = time.time()
        for entry in entries:
            entry["time"] = wall
            self.stats.rejected[str(entry.get("kind"))] += 1
        self.stats.dead_letter_dropped += self.dead_letters.write(entries)
        anomalies: list[AnomalyEvent] = []
        for entry in entries:
            document = entry.get("document") or {}
            ics = document.get("ics") or {}
            if (ics.get("anomaly") or {}).get("code") in (REJECTED, SPOOL_DROPPED):
                continue  # never an anomaly about an anomaly: no loops
            anomalies.append(
                AnomalyEvent(
                    ts=_capture_time(document),
                    frame=int(ics.get("frame") or 0),
                    code=REJECTED,
                    severity="medium",
                    detail=f"{entry.get('kind')} document {entry.get('id')} refused: {entry.get('reason')}"[
                        :1000
                    ],
                    protocol="elasticsearch",
                    flow_id=ics.get("flow_id"),
                )
            )
        self._raise(anomalies)

    def _raise(self, anomalies: list[AnomalyEvent]) -> None:
        if not anomalies:
            return
        room = _MAX_ANOMALIES - len(self.anomalies)
        self.anomalies.extend(anomalies[: max(0, room)])
        if ANOMALY in self.settings.kinds:
            with self._map_lock:
                self._spool_mapped(list(anomalies), sync=True)

    def _report_spool_drops(self) -> None:
        total = sum(self.spool.dropped.values())
        if total > self._spool_drops_reported:
            dropped = total - self._spool_drops_reported
            self._spool_drops_reported = total
            log.debug("spool full: %d documents dropped (%s)", dropped, dict(self.spool.dropped))
            event = AnomalyEvent(
                ts=time.time(),
                frame=0,
                code=SPOOL_DROPPED,
                severity="high",
                detail=f"{dropped} undelivered documents dropped at the spool cap ({self.spool.max_bytes} bytes)",
                protocol="elasticsearch",
            )
            if len(self.anomalies) < _MAX_ANOMALIES:
                self.anomalies.append(event)

    def _connection_failed(self, exc: BaseException) -> None:
        # str() of transport errors names the node URL; credentials were moved out of the URLs.
        self.stats.failed_attempts += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
        if self.connected is not False:
            log.debug("elasticsearch unreachable, spooling: %s", self.stats.last_error)
        self.connected = False

    def _connected(self) -> None:
        if self.connected is False:
            log.debug("elasticsearch reachable again; draining the spool")
        self.connected = True


# ---------------------------------------------------------------------------------------------
# The sink: the monitor's side, and the worker process that delivers


# Records waiting in the monitor for the pipe to the worker.  Past this, emit waits for the worker
# to take some (it only maps and spools, so this is CPU backpressure, never the network); one that
# takes nothing for _BACKLOG_STALL seconds is stuck: records are then dropped and counted.
_BACKLOG_MAX_BYTES = 32 * 1024 * 1024
_BACKLOG_STALL = 10.0
# A write to the pipe is made once this much is buffered, or after _BACKLOG_MAX_AGE seconds.
_BACKLOG_WRITE_BYTES = 256 * 1024
_BACKLOG_MAX_AGE = 0.1
_PIPE_BYTES = 1024 * 1024
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), absent from the module before Python 3.10 on some builds
_STATUS_EVERY = 0.1
_WORKER_NICE = 10
_STARTUP_TIMEOUT = 120.0


def _dumped_as_is(record: Any) -> bool:
    """Whether the record's JSON is what the worker maps (``_wire_form``); the same for its class.

    Plain event dataclasses (flows, anomalies, protocol events: nearly every record) are dumped
    straight; alerts, assets and asset changes take the mapper's own dict form.
    """
    return (
        not isinstance(record, Mapping | Alert)
        and getattr(record, "event_type", None) is not None
        and not hasattr(record, "to_dict")
    )


def _wire_form(record: Any, as_is: bool | None = None) -> bytes:
    """The record as the JSON object the worker maps: the same dict (hence ids) as in-process.

    ``as_is``: ``_dumped_as_is(record)`` when the caller knows it already.
    """
    if as_is is None:
        as_is = _dumped_as_is(record)
    return orjson.dumps(
        record if as_is else record_dict(record), default=_jsonable, option=orjson.OPT_APPEND_NEWLINE
    )


def _settings_wire(settings: ElasticsearchSettings) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in fields(settings):
        value = getattr(settings, item.name)
        values[item.name] = sorted(value) if isinstance(value, frozenset) else value
    return values


def _stats_from(report: Mapping[str, Any]) -> DeliveryStats:
    return DeliveryStats(
        received=Counter(report.get("received") or {}),
        skipped=int(report.get("skipped") or 0),
        delivered=Counter(report.get("delivered") or {}),
        duplicates=Counter(report.get("duplicates") or {}),
        rejected=Counter(report.get("rejected") or {}),
        retried=Counter(report.get("retried") or {}),
        queue_overflow=int(report.get("queue_overflow") or 0),
        dead_letter_dropped=int(report.get("dead_letter_dropped") or 0),
        bulk_requests=int(report.get("bulk_requests") or 0),
        failed_attempts=int(report.get("failed_attempts") or 0),
        last_error=report.get("last_error"),
    )


class ElasticsearchSink:
    """A ``Sink`` that delivers ECS documents to Elasticsearch (see the module docstring).

    Mapping, spooling and sending run in a worker process (``worker_main``) so that none of it
    competes with packet processing for the interpreter lock: ``emit`` only filters by kind and
    dumps the record to JSON into a buffer written to the worker's pipe without blocking.  The
    worker reports its counters back every 0.1 s (``stats``, ``status()``, ``anomalies``).

    ``state_dir`` holds the spool and the dead-letter file.  ``client`` may be given (tests, or an
    application sharing one): delivery then runs in this process on a thread, as it does with
    ``worker_process: false``.  Errors opening the spool or the client are raised here, as they
    would be in-process.
    """

    def __init__(
        self,
        settings: ElasticsearchSettings,
        state_dir: Path | str,
        *,
        client: Elasticsearch | None = None,
        seed: int | None = None,
    ) -> None:
        self.settings = settings
        self._local: DeliveryEngine | None = None
        self._closed = False
        if client is not None or not settings.worker_process:
            self._local = DeliveryEngine(settings, state_dir, client=client, seed=seed)
            return
        self._mapper = EcsMapper(Observer("-", "-"), settings.index_prefix, settings.kinds)
        self._kinds = self._mapper.kinds
        self._kind_cache: dict[tuple[type, Any], tuple[str, bool]] = {}
        self._report: dict[str, Any] = {}
        self._stats = DeliveryStats()
        self._anomalies: list[AnomalyEvent] = []
        self._connected: bool | None = None
        self._skipped = 0
        self._dropped: Counter[str] = Counter()
        self._lost_reported = 0
        self._backlog = bytearray()
        self._backlog_kinds: list[str] = []
        self._backlog_since = 0.0
        self._pipe_lock = threading.Lock()
        self._worker_gone = False
        self._final = threading.Event()
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from ics_monitor.sinks.elasticsearch import worker_main; worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Own session: a Ctrl-C at the terminal reaches the monitor, which then closes the
            # sink in order; the worker must not die in the middle of its own drain.
            start_new_session=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin = self._process.stdin.fileno()
        self._stdout = self._process.stdout.fileno()
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._stdin, _F_SETPIPE_SZ, _PIPE_BYTES)
        # Settings (secrets included) travel on the pipe, never on the command line.
        header = {"settings": _settings_wire(settings), "state_dir": str(state_dir), "seed": seed}
        os.write(self._stdin, orjson.dumps(header, option=orjson.OPT_APPEND_NEWLINE))
        self._carry = b""
        first = self._read_report(_STARTUP_TIMEOUT)
        if first is None or "error" in first:
            self._process.kill()
            self._process.wait()
            error = (first or {}).get("error")
            message = (first or {}).get("message") or "the Elasticsearch worker process did not start"
            raise SpoolError(message) if error == "SpoolError" else ElasticsearchConfigError(message)
        os.set_blocking(self._stdin, False)
        self._reader = threading.Thread(target=self._read_reports, name="ics-monitor-es-status", daemon=True)
        self._reader.start()

    # -- what the CLI and tests read ----------------------------------------------------------

    @property
    def stats(self) -> DeliveryStats:
        """The delivery counters (the worker's, as last reported)."""
        return self._local.stats if self._local is not None else self._stats

    @property
    def anomalies(self) -> list[AnomalyEvent]:
        """Anomalies raised by delivery (rejections, spool drops), capped."""
        return self._local.anomalies if self._local is not None else self._anomalies

    @property
    def connected(self) -> bool | None:
        """Whether the last request reached the cluster (None before the first)."""
        return self._local.connected if self._local is not None else self._connected

    def status(self) -> dict[str, Any]:
        """Counters for the CLI and tests (no secrets)."""
        if self._local is not None:
            return self._local.status()
        report = {key: value for key, value in self._report.items() if key not in ("anomalies", "final")}
        base = self._stats.as_dict()
        base.update({key: value for key, value in report.items() if key not in base})
        base["skipped"] = self._stats.skipped + self._skipped
        base.setdefault("spool_pending", 0)
        base.setdefault("spool_pending_bytes", 0)
        base.setdefault("spool_dropped", {})
        base["backlog_dropped"] = dict(self._dropped)
        return base

    @property
    def protocol_events(self) -> bool:
        """Whether protocol events are among the kinds kept (``Sink``; not by default).

        When they are not, the pipeline gives this sink anomalies only, not every PDU's record to skip.
        """
        return EVENT in self.settings.kinds

    # -- producer side (packet thread) --------------------------------------------------------

    def emit(self, record: Any) -> None:
        """Take one record; never blocks (what the pipe cannot take now waits in a buffer)."""
        if self._local is not None:
            self._local.emit(record)
            return
        # The kind, and whether the record is dumped as it is, are cached per (class, event_type):
        # the Mapping checks (ABC isinstance) cost more than the rest of emit.
        key = (type(record), getattr(record, "event_type", None))
        cached = self._kind_cache.get(key)
        if cached is None:
            cached = (self._mapper.kind_of(record), _dumped_as_is(record))
            if not isinstance(record, Mapping) and len(self._kind_cache) < 1024:
                self._kind_cache[key] = cached
        kind = cached[0]
        if kind not in self._kinds:
            self._skipped += 1
            return
        line = _wire_form(record, cached[1])
        with self._pipe_lock:
            if len(self._backlog) + len(line) > _BACKLOG_MAX_BYTES:
                self._wait_for_worker()
            if self._worker_gone or len(self._backlog) + len(line) > _BACKLOG_MAX_BYTES:
                self._dropped[kind] += 1
                return
            if not self._backlog:
                self._backlog_since = time.monotonic()
            self._backlog += line
            if len(self._backlog) >= _BACKLOG_WRITE_BYTES:
                self._write_backlog()

    def _write_backlog(self) -> None:
        """Write what the pipe takes now (caller holds ``_pipe_lock``)."""
        while self._backlog:
            try:
                written = os.write(self._stdin, self._backlog)
            except BlockingIOError:
                return
            except OSError:
                self._worker_lost()
                return
            # Only whole lines are ever parsed by the worker; a partial write leaves the rest.
            del self._backlog[:written]
            self._backlog_since = time.monotonic()

    def _wait_for_worker(self) -> None:
        """Write until the buffer is half empty (caller holds ``_pipe_lock``): CPU backpressure.

        The worker only maps and spools what it reads (never waiting for the network), so this
        waits only while records come faster than it can map them; a worker that takes nothing
        for ``_BACKLOG_STALL`` seconds is given up on for this record (dropped and counted).
        """
        deadline = time.monotonic() + _BACKLOG_STALL
        while not self._worker_gone and len(self._backlog) > _BACKLOG_MAX_BYTES // 2:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            _, writable, _ = select.select([], [self._stdin], [], remaining)
            if writable:
                self._write_backlog()
                deadline = time.monotonic() + _BACKLOG_STALL

    def _worker_lost(self) -> None:
        lost = self._backlog.count(b"\n")
        self._backlog.clear()
        self._worker_gone = True
        if lost:
            self._dropped["unknown"] += lost

    def close(self) -> None:
        """Deliver what can be delivered within ``close_timeout``; the rest stays spooled."""
        if self._local is not None:
            self._local.close()
            return
        if self._closed:
            return
        self._closed = True
        with self._pipe_lock:
            if not self._worker_gone:
                os.set_blocking(self._stdin, True)
                try:
                    while self._backlog:
                        del self._backlog[: os.write(self._stdin, self._backlog)]
                except OSError:
                    self._worker_lost()
            self._worker_gone = True
            assert self._process.stdin is not None
            with contextlib.suppress(OSError):
                self._process.stdin.close()  # end of input: the worker drains and exits
        # The worker drains for close_timeout; a request in flight may add its own timeout.
        self._reader.join(self.settings.close_timeout + self.settings.request_timeout + 15.0)
        try:
            self._process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            # Stuck beyond every timeout: what is confirmed is confirmed, the rest is re-sent by
            # the next run (the spool is durable, ids are deterministic).
            log.debug("elasticsearch worker still busy at close; stopping it, spool left for the next run")
            self._process.kill()
            self._process.wait()
        if self._dropped:
            total = sum(self._dropped.values())
            self._anomalies.append(
                AnomalyEvent(
                    ts=time.time(),
                    frame=0,
                    code=SPOOL_DROPPED,
                    severity="high",
                    detail=f"{total} documents dropped before the spool (delivery worker backlog full or gone)",
                    protocol="elasticsearch",
                )
            )

    # -- reports from the worker (status thread) ----------------------------------------------

    def _read_report(self, timeout: float) -> dict[str, Any] | None:
        """The next report line from the worker, or None at end of output or timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._carry:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._stdout], [], [], min(remaining, _BACKLOG_MAX_AGE))
            if not ready:
                self._flush_aged()
                continue
            chunk = os.read(self._stdout, 1 << 16)
            if not chunk:
                return None
            self._carry += chunk
        line, _, self._carry = self._carry.partition(b"\n")
        report: dict[str, Any] = orjson.loads(line)
        return report

    def _flush_aged(self) -> None:
        if not self._backlog or self._closed:
            return
        with self._pipe_lock:
            if (
                self._backlog
                and not self._worker_gone
                and time.monotonic() - self._backlog_since >= _BACKLOG_MAX_AGE
            ):
                self._write_backlog()

    def _read_reports(self) -> None:
        while True:
            try:
                report = self._read_report(3600.0)
            except (OSError, orjson.JSONDecodeError):
                report = None
            if report is None:
                if not self._final.is_set():
                    with self._pipe_lock:
                        self._worker_lost()
                    self._stats.last_error = "the Elasticsearch worker process ended unexpectedly"
                return
            self._take(report)
            if report.get("final"):
                self._final.set()

    def _take(self, report: dict[str, Any]) -> None:
        self._report = report
        self._stats = _stats_from(report)
        self._connected = report.get("connected")
        for item in report.get("anomalies") or []:
            if len(self._anomalies) < _MAX_ANOMALIES:
                self._anomalies.append(AnomalyEvent(**item))


def worker_main() -> None:
    """The delivery worker: JSON records on stdin, reports (JSON lines) on stdout.

    The first stdin line holds the settings, the state directory and the seed; every further
    line is one record.  End of input means close: drain within ``close_timeout``, report a last
    time with ``final: true`` and exit.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Packet processing first: on a busy sensor the worker takes the CPU the capture leaves (the
    # spool and the buffer in the monitor absorb the lag; emit waits only if the worker stalls).
    with contextlib.suppress(OSError):
        os.nice(_WORKER_NICE)
    source = sys.stdin.fileno()
    output = sys.stdout.buffer
    output_lock = threading.Lock()

    def report(values: dict[str, Any]) -> None:
        with output_lock:
            try:
                output.write(orjson.dumps(values, option=orjson.OPT_APPEND_NEWLINE))
                output.flush()
            except OSError:
                # The monitor is gone (killed): nobody reads the reports any more, and what is
                # not confirmed stays in the spool for its next run.  No traceback on its terminal,
                # now or when the interpreter flushes stdout at exit.
                with contextlib.suppress(OSError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), output.fileno())

    carry = b""
    while b"\n" not in carry and (chunk := os.read(source, 1 << 16)):
        carry += chunk
    first, _, carry = carry.partition(b"\n")
    try:
        header = orjson.loads(first)
        settings = settings_from_mapping(header["settings"])
        engine = DeliveryEngine(settings, header["state_dir"], seed=header.get("seed"))
    except (SpoolError, ConfigError, orjson.JSONDecodeError, KeyError) as exc:
        report({"error": type(exc).__name__, "message": str(exc)})
        return
    report({"ready": True})
    sent_anomalies = 0
    stop = threading.Event()

    def snapshot(final: bool) -> dict[str, Any]:
        nonlocal sent_anomalies
        values = engine.status()
        values["connected"] = engine.connected
        anomalies = engine.anomalies[sent_anomalies:]
        sent_anomalies += len(anomalies)
        values["anomalies"] = [
            {item.name: getattr(event, item.name) for item in fields(event)} for event in anomalies
        ]
        values["final"] = final
        return values

    def reporter() -> None:
        last: dict[str, Any] = {}
        while not stop.wait(_STATUS_EVERY):
            values = snapshot(False)
            if values != last or values["anomalies"]:
                report(values)
                last = values

    thread = threading.Thread(target=reporter, name="ics-monitor-es-report", daemon=True)
    thread.start()
    while chunk := os.read(source, _PIPE_BYTES):
        lines = (carry + chunk).split(b"\n")
        carry = lines.pop()
        records: list[Any] = []
        for line in lines:
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                engine.stats.skipped += 1
        engine.accept(records)
    engine.close()
    stop.set()
    thread.join()
    report(snapshot(True))


def _capture_time(document: Mapping[str, Any]) -> float:
    stamp = document.get("@timestamp")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()


def parse_kinds(kinds: Iterable[str]) -> frozenset[str]:
    """Validate a list of kind names (for the CLI's ``--es-kinds``)."""
    selected = frozenset(kinds)
    unknown = selected - set(KINDS)
    if unknown:
        raise ElasticsearchConfigError(f"unknown document kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    return selected
