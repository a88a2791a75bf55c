"""The Elasticsearch sink: ECS documents delivered without loss or duplicates, never blocking capture.

::

    emit(record) ──▶ bounded queue ──▶ sender thread ──▶ spool (fsync) ──▶ bulk (create / versioned)
        │  (queue full: straight into the spool)            ▲   │ confirmed: trim   │ 2xx, 409
        ▼                                                  │   ▼                   ▼
    packet processing goes on                            retry with backoff + jitter   dead-letter file
                                                         (cluster down, 429, 5xx)      (mapping rejections)

* Every document has a deterministic ``_id`` (see ``ecs``) and is written with ``op_type: create``
  (alerts and assets: ``index`` with an external version); a 409 means "already there" and counts
  as delivered, so replays and re-sends after an outage never duplicate.
* The spool in ``<state>/elasticsearch/spool`` is written before sending and trimmed only after
  Elasticsearch confirmed; what is left at exit is sent by the next run.  Its size cap and drop
  policy are in ``spool``; every drop is counted in ``stats``.
* A document Elasticsearch refuses for its content (mapping conflict, parse error) goes to
  ``<state>/elasticsearch/dead-letter.jsonl`` with the reason, and raises the anomaly
  ``sink.elasticsearch_rejected`` (kept in ``anomalies`` and indexed like any other anomaly).
* Secrets (API key, password, credentials in URLs) are never printed or logged: ``redacted()``
  is what may be shown.  Like every library module here it logs at DEBUG only.

This module must not be imported by anything below ``sinks`` (import-linter keeps the client out).
"""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import yaml
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, helpers
from elasticsearch.serializer import OrjsonSerializer

from ics_monitor.core.anomalies import Severity, register
from ics_monitor.core.errors import ConfigError
from ics_monitor.events import AnomalyEvent
from ics_monitor.sinks.ecs import (
    ANOMALY,
    DEFAULT_KINDS,
    DEFAULT_PREFIX,
    KINDS,
    EcsMapper,
    Observer,
    index_templates,
)
from ics_monitor.sinks.spool import DEFAULT_MAX_BYTES, Batch, Spool

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
    bools = {"verify_certs", "data_streams", "fsync"}
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
                return int(value)
            except (TypeError, ValueError):
                raise ValueError("not an integer") from None
        if name in floats:
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ValueError("not a number") from None
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
        document = yaml.safe_load(path.read_text()) or {}
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


class ElasticsearchSink:
    """A ``Sink`` that delivers ECS documents to Elasticsearch (see the module docstring).

    ``state_dir`` holds the spool and the dead-letter file.  ``client`` may be given (tests, or
    an application sharing one); by default it is made from ``settings``.
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
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, settings.queue_size))
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
        """Take one record; never blocks on the network (a full queue spills into the spool)."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.stats.queue_overflow += 1
            self._spool_records([record], sync=False)

    def close(self) -> None:
        """Deliver what can be delivered within ``close_timeout``; the rest stays spooled."""
        if self._closed:
            return
        self._closed = True
        self._deadline = time.monotonic() + self.settings.close_timeout
        self._stop.set()
        self._queue.put(None)  # wakes the sender if it waits on an empty queue
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

    def _spool_records(self, records: list[Any], *, sync: bool) -> None:
        kinds: list[str] = []
        lines: list[bytes] = []
        with self._map_lock:
            for record in records:
                document = self.mapper.document(record)
                if document is None:
                    self.stats.skipped += 1
                    continue
                self.stats.received[document.kind] += 1
                kinds.append(document.kind)
                lines.append(orjson.dumps(document.action()))
        if lines:
            self.spool.append(kinds, lines, sync=sync)

    def _take_queue(self, timeout: float) -> bool:
        """Move queued records into the spool; wait up to ``timeout`` for the first one."""
        records: list[Any] = []
        try:
            item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return False
        if item is not None:
            records.append(item)
        limit = max(self.settings.batch_size * 4, 1)
        while len(records) < limit:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                records.append(item)
        if records:
            self._spool_records(records, sync=True)
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
            took = self._take_queue(timeout)
            now = time.monotonic()
            if self._stop.is_set() and not took and self._queue.empty():
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
        """Send one batch from the spool; True when no item needs a retry."""
        batch = self.spool.read(self.settings.batch_size)
        if not batch.lines:
            return True
        actions: list[dict[str, Any]] = []
        unreadable: list[dict[str, Any]] = []
        for kind, line in zip(batch.kinds, batch.lines, strict=True):
            try:
                action = orjson.loads(line)
            except orjson.JSONDecodeError:
                unreadable.append({"kind": kind, "status": None, "reason": "unreadable spool line"})
                continue
            actions.append(action)
        self.stats.bulk_requests += 1
        try:
            results = list(
                helpers.streaming_bulk(
                    self.client,
                    actions,
                    chunk_size=len(actions) or 1,
                    max_chunk_bytes=64 * 1024 * 1024,
                    raise_on_error=False,
                    raise_on_exception=False,
                    max_retries=0,
                    yield_ok=True,
                )
            )
        except (TransportError, ApiError) as exc:
            # The cluster is unreachable (connection refused, timeout, TLS): nothing confirmed.
            self._connection_failed(exc)
            return False
        if len(results) != len(actions):
            self._connection_failed(RuntimeError("bulk response does not match the request"))
            return False
        self._connected()
        return self._settle(batch, actions, results, unreadable)

    def _settle(
        self,
        batch: Batch,
        actions: list[dict[str, Any]],
        results: list[tuple[bool, dict[str, Any]]],
        dead: list[dict[str, Any]],
    ) -> bool:
        retry_kinds: list[str] = []
        retry_lines: list[bytes] = []
        for action, (ok, result) in zip(actions, results, strict=True):
            kind = action.get("_kind", "?")
            item = next(iter(result.values())) if result else {}
            status = item.get("status")
            if ok or status == 409:
                if ok:
                    self.stats.delivered[kind] += 1
                else:
                    self.stats.duplicates[kind] += 1
                continue
            if not isinstance(status, int) or status >= 500 or status in _RETRY_STATUSES:
                self.stats.retried[kind] += 1
                self.stats.last_error = f"HTTP {status}: {_error_reason(item)}"[:500]
                retry_kinds.append(kind)
                retry_lines.append(orjson.dumps(action))
                continue
            dead.append(
                {
                    "kind": kind,
                    "index": action.get("_index"),
                    "id": action.get("_id"),
                    "status": status,
                    "reason": _error_reason(item),
                    "document": action.get("_source"),
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
            self._spool_records(list(anomalies), sync=True)

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
