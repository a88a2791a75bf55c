"""The ``ics-monitor`` command line: thin commands that set up a pipeline and report.

User errors are one line on stderr and exit code 2; a traceback only with ``--debug``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import orjson
import typer
from rich.console import Console

from ics_monitor import __version__, compiled
from ics_monitor.capture import MergedSource, open_captures
from ics_monitor.capture.live import DEFAULT_SNAPLEN, LiveSource, stop_on_signals
from ics_monitor.capture.ring import DEFAULT_RING_SIZE
from ics_monitor.cli.es_commands import ConfigFile, EsEvents, EsUrl, es_app, run_settings
from ics_monitor.cli.outputs import OutputError, OutputTargets, SiemOutput, open_outputs, parse_outputs
from ics_monitor.cli.render import (
    ProgressReporter,
    print_replay_summary,
    print_summary,
    render_alert_rules,
    render_alerts,
    render_assets,
    render_flow_table,
)
from ics_monitor.config import AnalysisConfig, Config, DissectConfig
from ics_monitor.core import collector
from ics_monitor.core.collector import collector_paused, tune_collector
from ics_monitor.core.errors import ConfigError, IcsMonitorError
from ics_monitor.dissect import default_registry
from ics_monitor.health import LiveOperations, detection_loader, reload_on_sighup
from ics_monitor.inventory.assets import Inventory
from ics_monitor.pipeline import (
    DETECT,
    ENFORCE,
    LEARN,
    LEARN_THEN_ENFORCE,
    Analysis,
    Pipeline,
    RunStats,
    WorkerChecks,
    build_analysis,
    worker_checks_of,
)
from ics_monitor.sinks import JsonLinesSink
from ics_monitor.sinks.console import FlowTableSink, SummarySink
from ics_monitor.sinks.logs import DEFAULT_KEEP, AppendLog, Rotation, alert_log
from ics_monitor.sinks.sqlite import DEFAULT_STATE_DIR, EVENTS_LOG, Store, baseline_path_of

if TYPE_CHECKING:
    from ics_monitor.parallel import ShardedRun

EXIT_USAGE = 2

app = typer.Typer(
    name="ics-monitor",
    help="Passive security monitor for converged IT/OT networks (Modbus/TCP, DNP3, S7comm).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(es_app, name="es")
stderr = Console(stderr=True)


def _stdout_console() -> Console:
    """Console for tables: the terminal's width, or wide enough not to wrap when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _error_line(message: str) -> None:
    """Print one error line on stderr, never wrapped (a multi-line message, e.g. YAML's, is joined)."""
    line = " ".join(message.split())
    sys.stderr.write(f"ics-monitor: error: {line}\n")
    sys.stderr.flush()


def _warning_line(message: str) -> None:
    sys.stderr.write(f"ics-monitor: warning: {message}\n")
    sys.stderr.flush()


class _State:
    debug = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ics-monitor {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Passive security monitor for converged IT/OT networks."""
    _State.debug = debug


Captures = Annotated[
    list[Path],
    typer.Argument(help="pcap / pcapng files (gzip, zstd, LZ4, xz, bzip2 too), read in time order."),
]
Output = Annotated[str | None, typer.Option("-o", "--output", help="Write JSON lines here (default stdout).")]
Workers = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        max=64,
        metavar="N",
        help="Processes to shard flows over (symmetric 5-tuple hash); same results as 1.",
    ),
]


# replay and dissect: worker processes decode and dissect (replay's analysis and dissect's ordered
# writing stay in the main process); that pays from a few tens of MB of capture on (a worker costs
# about 0.2 s to start).  Not flows: per flow there is too little to share out (2 workers, 1M
# packets: the same 1.65 s as one process), as each worker reads every frame.
AUTO_WORKERS_BYTES = 64 << 20
MAX_AUTO_WORKERS = 4


def _auto_workers_option(per_cpu: str) -> Any:
    return typer.Option(
        "--workers",
        min=1,
        max=64,
        metavar="N",
        help="Processes to shard flows over for decoding and dissection (symmetric 5-tuple hash); "
        f"same results as 1. Default for captures over {AUTO_WORKERS_BYTES >> 20} MB (a compressed "
        f"one by what it holds, estimated): {per_cpu} (at most {MAX_AUTO_WORKERS}), else 1.",
        show_default=False,
    )


AutoWorkers = Annotated[int | None, _auto_workers_option("one per CPU")]
# replay and baseline learn: their analysis stays in this process, which keeps a CPU for it.
AnalysisWorkers = Annotated[int | None, _auto_workers_option("one per CPU but one")]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _auto_workers(workers: int | None, source: MergedSource) -> int:
    """``--workers`` as given, else by capture size and the CPUs this process may use."""
    if workers is not None:
        return workers
    if source.capture_size < AUTO_WORKERS_BYTES:
        return 1
    return max(1, min(_cpus(), MAX_AUTO_WORKERS))


def _analysis_processes(workers: int | None, source: MergedSource, cpus: int | None = None) -> int:
    """Worker processes for ``replay`` and ``baseline learn``; 0: everything in this process.

    ``--workers N`` as given (1: this process alone).  By default, for captures over
    ``AUTO_WORKERS_BYTES``, one CPU is left to the analysis, which stays in this process and bounds
    a replay, and the others decode and dissect: on 2 CPUs that is one worker, a pipeline, which
    replayed the bench lines 4-12% faster than two workers sharing the CPU with the analysis.
    """
    if workers is not None:
        return 0 if workers <= 1 else workers
    if source.capture_size < AUTO_WORKERS_BYTES:
        return 0
    cpus = _cpus() if cpus is None else cpus
    return 0 if cpus < 2 else min(cpus - 1, MAX_AUTO_WORKERS)


def _open(captures: list[Path]) -> MergedSource:
    return open_captures(str(path) for path in captures)


def _run(pipeline: Pipeline, source: MergedSource) -> RunStats:
    reporter = ProgressReporter(stderr, source.size) if stderr.is_terminal else None
    if reporter is not None:
        pipeline.progress = reporter.update
    try:
        with reporter if reporter is not None else _nullcontext():
            stats = pipeline.run(source, lambda: source.position)
    finally:
        pipeline.stats.errors = list(source.errors)
    return stats


def _run_files(
    pipeline: Pipeline,
    source: MergedSource,
    captures: list[Path],
    workers: int,
    started: ShardedRun | None = None,
) -> RunStats:
    """``_run``, or with ``workers`` > 1 the flows sharded over that many processes (``parallel``).

    ``started``: worker processes already started by ``_start_workers`` (one or more).
    """
    if workers <= 1 and started is None:
        return _run(pipeline, source)
    from ics_monitor.parallel import run_sharded

    # The files were opened here to fail early on a bad name; each worker reads them itself.
    for capture in source.files:
        capture.close()
    reporter = ProgressReporter(stderr, source.size) if stderr.is_terminal else None
    if reporter is not None:
        pipeline.progress = reporter.update
    with reporter if reporter is not None else _nullcontext():
        if started is not None:
            return started.run(pipeline)
        return run_sharded(pipeline, [str(path) for path in captures], workers)


def _start_workers(
    source: MergedSource,
    captures: list[Path],
    workers: int,
    *,
    emit_arp: bool,
    checks: WorkerChecks | None = None,
) -> Any:
    """For an analysing run over ``workers`` (>= 1) processes: start them now (0: a null context).

    They read and dissect while this process loads the rules, the baseline and the stored assets
    (``parallel.ShardedRun``); the spec is the one ``_analyse``/``baseline learn`` build their
    pipeline to (full dissection, the analysis clock of ``Config()``, and with ``checks`` the
    baseline and rules an enforcing replay checks read values with in the workers).
    """
    if workers < 1:
        return _nullcontext()
    from ics_monitor.parallel import ShardedRun, WorkerSpec

    for capture in source.files:
        capture.close()
    config = Config()
    spec = WorkerSpec(
        config=config,
        registry=default_registry(),
        dissect="full",
        emit_arp=emit_arp,
        tick=config.analysis.tick,
        progress=stderr.is_terminal,
        serialized=False,
        checks=checks,
    )
    return ShardedRun(spec, [str(path) for path in captures], workers)


class _nullcontext:  # noqa: N801 - mirrors contextlib.nullcontext without its typing noise
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def _check_errors(stats: RunStats) -> None:
    """Damaged captures: everything before the damage is written; now say so and fail.

    Also says, as a warning, how many frames the snap length cut inside their headers.
    """
    if stats.cut_headers:
        _warning_line(
            f"{stats.cut_headers:,} frames were cut by the capture's snap length inside their link, IP or "
            "transport headers: they reach no flow and were not analysed (capture with a longer snap length)"
        )
    for error in stats.errors:
        _error_line(str(error))
    if stats.errors:
        raise typer.Exit(EXIT_USAGE)


@app.command()
def dissect(
    captures: Captures,
    output: Output = None,
    strict: Annotated[bool, typer.Option(help="Re-raise dissector exceptions (for development).")] = False,
    arp: Annotated[bool, typer.Option("--arp", help="Also write ARP observations.")] = False,
    workers: AutoWorkers = None,
) -> None:
    """Write one JSON line per application PDU (and per anomaly) found in the captures."""
    source = _open(captures)
    # --strict is for chasing a dissector bug: its traceback, from one process, unless told otherwise.
    workers = _auto_workers(1 if strict and workers is None else workers, source)
    sink = JsonLinesSink(output)
    config = Config(dissect=DissectConfig(strict=strict))
    pipeline = Pipeline(config, default_registry(), dissect="full", event_sinks=[sink], emit_arp=arp)
    _check_errors(_run_files(pipeline, source, captures, workers))


@app.command()
def flows(
    captures: Captures,
    output: Output = None,
    table: Annotated[
        bool, typer.Option("--table", help="Show a table on the terminal instead of JSON.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Rows in --table (largest flows by bytes).")] = 40,
    workers: Workers = 1,
) -> None:
    """Write one JSON line per flow (IT and OT), or show them as a table."""
    source = _open(captures)
    sink = FlowTableSink(limit) if table else JsonLinesSink(output)
    pipeline = Pipeline(Config(), default_registry(), dissect="detect", flow_sinks=[sink])
    stats = _run_files(pipeline, source, captures, workers)
    if isinstance(sink, FlowTableSink):
        render_flow_table(_stdout_console(), sink, stats)
    _check_errors(stats)


@app.command()
def summary(captures: Captures) -> None:
    """Print a flow and protocol summary of the captures: who talks, with what, and what looked wrong."""
    source = _open(captures)
    flow_sink = SummarySink()
    event_sink = SummarySink()
    pipeline = Pipeline(
        Config(), default_registry(), dissect="full", flow_sinks=[flow_sink], event_sinks=[event_sink]
    )
    stats = _run(pipeline, source)
    print_summary(_stdout_console(), flow_sink, event_sink, stats)
    _check_errors(stats)


State = Annotated[
    Path, typer.Option("--state", help="State directory: SQLite store, alerts.jsonl, events.jsonl, baseline.")
]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SEVERITIES = {"low": 1, "medium": 2, "high": 3, "critical": 4}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m``; ConfigError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    position = 0
    total = 0.0
    while position < len(compact):
        match = _DURATION.match(compact, position)
        if match is None or match.end() == position:
            raise ConfigError(f"bad duration {text!r} (examples: 300, 90s, 15m, 2h, 1d, 1h30m)")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not compact or total <= 0:
        raise ConfigError(f"bad duration {text!r}: must be more than zero")
    return total


def parse_since(text: str, latest: float | None) -> float:
    """A point in capture time from epoch seconds, an ISO date/time (UTC unless given) or a duration.

    A duration counts back from ``latest``, the newest capture time in the store.
    """
    stripped = text.strip()
    bad = (
        f"bad --since {text!r} (epoch seconds such as 1764000000, an ISO date/time such as "
        "2026-11-30T20:00, or a duration back from the newest capture time such as 90s, 2h, 1d)"
    )
    try:
        number = float(stripped)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):  # nan, inf, 1e400
            raise ConfigError(bad)
        return number
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        moment = None
    if moment is not None:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if stripped[:1].isdigit() and "-" in stripped:  # meant as a date, not a valid one
        raise ConfigError(bad)
    try:
        seconds = parse_duration(stripped)
    except ConfigError:
        raise ConfigError(bad) from None
    return (latest if latest is not None else 0.0) - seconds


def parse_severity(text: str) -> int:
    """1-4 or low/medium/high/critical."""
    lowered = text.strip().lower()
    if lowered in _SEVERITIES:
        return _SEVERITIES[lowered]
    if lowered.isdigit() and 1 <= int(lowered) <= 4:
        return int(lowered)
    raise ConfigError(f"bad severity {text!r} (1-4 or {', '.join(_SEVERITIES)})")


def parse_run(text: str, last: int | None) -> int | None:
    """A run id, or ``last`` for the newest run (``last``: its id, None when the store has none)."""
    stripped = text.strip().lower()
    if stripped == "last":
        return last
    if stripped.isdigit() and int(stripped) > 0:
        return int(stripped)
    raise ConfigError(f"bad run {text!r} (a run id such as 3, or last)")


def _id_ranges(ids: list[int]) -> str:
    """``1-4, 7``: sorted ids as ranges."""
    parts: list[str] = []
    for number in sorted(ids):
        if parts and parts[-1].split("-")[-1] == str(number - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{number}"
        else:
            parts.append(str(number))
    return ", ".join(parts)


def _check_file(path: Path | None, what: str) -> None:
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: no such {what} file")


Learn = Annotated[
    bool, typer.Option("--learn", help="Learn the baseline from this traffic (always-on detectors run).")
]
LearnFor = Annotated[
    str | None,
    typer.Option(
        "--learn-for",
        metavar="DURATION",
        help="Learn over the first DURATION of capture time (e.g. 10m), then enforce the result.",
    ),
]
BaselineFile = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        help="Baseline YAML to enforce (default: the state's), or to write with --learn/--learn-for.",
    ),
]
Rules = Annotated[Path | None, typer.Option("--rules", help="Rules directory (default: shipped).")]
Zones = Annotated[Path | None, typer.Option("--zones", help="zones.yaml: subnets, levels, conduits.")]
Events = Annotated[
    bool, typer.Option("--events/--no-events", help="Append protocol events and flows to events.jsonl.")
]
Limit = Annotated[int, typer.Option(help="Rows in the assets and alerts tables.")]
Out = Annotated[
    list[str] | None,
    typer.Option(
        "--out",
        metavar="TARGET",
        help="Outputs beside the store, repeatable: es, es:URL, cef:tcp://host:514, jsonl:FILE.",
    ),
]
Cef = Annotated[
    list[str] | None,
    typer.Option(
        "--cef",
        metavar="TARGET",
        help="Send alerts (and anomalies) as CEF over syslog: cef:udp|tcp|tls://host:port[?kinds=...] "
        "(repeat for more).",
    ),
]


@app.command()
def replay(
    captures: Captures,
    state: State = Path(DEFAULT_STATE_DIR),
    learn: Learn = False,
    learn_for: LearnFor = None,
    baseline: BaselineFile = None,
    rules: Rules = None,
    zones: Zones = None,
    events: Events = True,
    limit: Limit = 30,
    workers: AnalysisWorkers = None,
    es_url: EsUrl = None,
    config: ConfigFile = None,
    es_events: EsEvents = False,
    cef: Cef = None,
    out: Out = None,
) -> None:
    """Replay captures: build the asset inventory, learn or enforce the baseline, raise alerts, store all.

    Without --learn/--learn-for the baseline (--baseline FILE, else the state's baseline.yaml) is
    enforced when there is one; with none, only the always-on detectors run.  With --workers N the
    flows are decoded and dissected in N processes; inventory, baseline and detection stay in one.
    """
    window = _check_analysis_options(learn, learn_for, rules, zones)
    targets = _plan_outputs(out, cef, es_url, config, es_events)
    source = _open(captures)
    workers = _analysis_processes(workers, source)
    checks = _worker_checks(state, learn, window, baseline, rules)
    with _start_workers(source, captures, workers, emit_arp=events, checks=checks) as started:
        _analyse(
            "replay",
            # Absolute: `extract` finds them again from wherever it runs.
            [str(path.resolve()) for path in captures],
            lambda pipeline: _run_files(pipeline, source, captures, workers, started),
            state=state,
            learn=learn,
            window=window,
            baseline=baseline,
            rules=rules,
            zones=zones,
            events=events,
            limit=limit,
            outputs=targets,
            worker_checks=checks,
        )


def _baseline_mode(state: Path, learn: bool, window: float | None, baseline: Path | None) -> tuple[str, Path]:
    """The analysis mode of a replay or live run, and the baseline file it learns into or enforces."""
    baseline_file = baseline if baseline is not None else baseline_path_of(state)
    if learn:
        return LEARN, baseline_file
    if window is not None:
        return LEARN_THEN_ENFORCE, baseline_file
    if baseline is not None:
        _check_file(baseline, "baseline")
        return ENFORCE, baseline_file
    return (ENFORCE if baseline_file.is_file() else DETECT), baseline_file


def _worker_checks(
    state: Path, learn: bool, window: float | None, baseline: Path | None, rules: Path | None
) -> WorkerChecks | None:
    """What the workers of an enforcing replay load to check read values (``Analysis.checks``)."""
    mode, baseline_file = _baseline_mode(state, learn, window, baseline)
    return worker_checks_of(baseline_file, rules) if mode == ENFORCE else None


def _plan_outputs(
    out: list[str] | None,
    cef: list[str] | None,
    es_url: list[str] | None,
    config: Path | None,
    es_events: bool,
) -> OutputTargets:
    """The SIEM outputs of a replay or live run, from ``--out``, ``--cef`` and the ``--es-*`` settings."""
    targets = parse_outputs(out or (), cef or ())
    targets.es_settings = run_settings(
        config, [*(es_url or ()), *targets.es_urls], es_events, wanted=targets.es
    )
    return targets


def _check_analysis_options(
    learn: bool, learn_for: str | None, rules: Path | None, zones: Path | None
) -> float | None:
    """Check the options replay and live share before any capture starts; return the learning window."""
    if learn and learn_for is not None:
        raise ConfigError("--learn and --learn-for exclude each other")
    window = parse_duration(learn_for) if learn_for is not None else None
    if rules is not None and not rules.is_dir():
        raise ConfigError(f"{rules}: no such rules directory")
    _check_file(zones, "zones")
    return window


def _analyse(
    command: str,
    inputs: list[str],
    run: Callable[[Pipeline], RunStats],
    *,
    state: Path,
    learn: bool,
    window: float | None,
    baseline: Path | None,
    rules: Path | None,
    zones: Path | None,
    events: bool,
    limit: int,
    rotation: Rotation | None = None,
    extra_figures: dict[str, Any] | None = None,
    outputs: OutputTargets | None = None,
    worker_checks: WorkerChecks | None = None,
) -> RunStats:
    """The analysis replay and live share: inventory, baseline, detection and store around ``run``.

    ``rotation`` rotates the JSON-lines logs; ``extra_figures`` (filled by ``run``, e.g. the final
    health record of a live run) are stored with the run's figures.  ``outputs``: the SIEM feeds
    (Elasticsearch through its spool in the state directory, CEF, JSON-lines files) that take
    alerts, flows, anomalies, health (protocol events as selected) and every asset at the end.
    """
    store = Store(state)
    mode, baseline_file = _baseline_mode(store.state_dir, learn, window, baseline)
    config = Config(analysis=AnalysisConfig(learn_for=window))
    saved: list[str] = []

    def keep_baseline(learned: Any) -> None:
        learned.save(baseline_file)
        store.save_baseline(baseline_file)
        saved.append(str(baseline_file))

    opened = open_outputs(outputs or OutputTargets(), state)
    # Left last: the collector stays paused from the end of ``run`` to the store's close.
    ending = contextlib.ExitStack()
    with ending, store, _closing(opened):
        store.begin_run(command, mode, inputs)
        inventory = Inventory(config.inventory)
        inventory.restore(store.load_assets())
        known_alerts = store.alert_ids()
        logs = [alert_log(store.alerts_log, rotation)]
        event_log = AppendLog(store.events_log, rotation=rotation) if events else None
        analysis = build_analysis(
            config,
            inventory,
            mode=mode,
            baseline_path=baseline_file,
            rules_dir=rules,
            zones_path=zones,
            alert_sinks=[store, *logs, *opened],
            change_sinks=[store, *opened],
            on_baseline=keep_baseline,
            worker_checks=worker_checks,
        )
        sinks: list[Any] = [event_log] if event_log is not None else []
        sinks.extend(opened)
        pipeline = Pipeline(
            config,
            default_registry(),
            dissect="full",
            event_sinks=sinks,
            flow_sinks=sinks,
            emit_arp=events,
            analysis=analysis,
        )
        try:
            stats = run(pipeline)
        finally:
            ending.enter_context(collector_paused(resume=collector.resume_after_run))
            assets = inventory.assets()
            # Converted once: the store and the summary take the same dicts (a run of many hosts
            # spent 0.1 s per pass).
            asset_dicts = [asset.to_dict() for asset in assets]
            store.save_assets(asset_dicts)
            for output in opened:
                for asset in assets:
                    output.emit(asset)
            if mode == LEARN and not saved and analysis.learner is not None:
                keep_baseline(analysis.learner.baseline())
        failures = _failures(analysis)
        _undecoded(stats)
        store.finish_run(
            {**_figures(stats, mode), **(extra_figures or {}), **({"failures": failures} if failures else {})}
        )
        shown_alerts, alert_counts = store.run_alerts(limit)
        # More alerts than the table shows (a storm of one rule fills it): every rule that fired.
        fired_rules = store.alert_rules(run_id=store.run_id) if sum(alert_counts.values()) > limit else None
        print_replay_summary(
            _stdout_console(),
            stats,
            mode=mode,
            assets=asset_dicts,
            alerts=shown_alerts,
            new_alerts=len(analysis.alert_ids - known_alerts),
            state=str(state),
            baseline=saved[0] if saved else (str(baseline_file) if mode == ENFORCE else None),
            limit=limit,
            alert_counts=alert_counts,
            alert_rules=fired_rules,
        )
    _check_errors(stats)
    return stats


@contextlib.contextmanager
def _closing(outputs: list[SiemOutput]) -> Iterator[None]:
    """Close the SIEM outputs at the end of the run, whatever happened: they drain or spool."""
    try:
        yield
    finally:
        for output in outputs:
            # One plain line each (never wrapped at a console width): log parsers read them.
            sys.stderr.write(output.close_now() + "\n")
    # Only when the run itself ended well: everything else was kept, the command still fails.
    failed = [f"{output.name} missed {output.missed:,} records" for output in outputs if output.failure]
    if failed:
        raise OutputError("; ".join(failed))


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes in ``1048576``, ``512k``, ``100M``, ``1G`` (binary units); ConfigError otherwise."""
    match = _SIZE.fullmatch(text.strip().lower())
    if match is None:
        raise ConfigError(f"bad size {text!r} (examples: 500k, 100M, 1G)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def _rotation(size: str | None, every: str | None, keep: int) -> Rotation | None:
    if size is None and every is None:
        return None
    try:
        return Rotation(
            size=parse_size(size) if size is not None else None,
            every=parse_duration(every) if every is not None else None,
            keep=keep,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _health_line(record: dict[str, Any]) -> str:
    rss = record["rss_bytes"]
    return (
        f"health: {record['frames']:,} frames, {record['events']:,} events, "
        f"{record['alerts']:,} alerts, {record['flows_ended']:,} flows ended, "
        f"{record['flows_active']:,} active, {record['flow_evictions']:,} evicted, "
        f"{record['kernel_drops']:,} kernel drops"
        + (f", {rss / (1 << 20):.0f} MiB resident" if rss is not None else "")
    )


@app.command()
def live(
    interfaces: Annotated[
        list[str],
        typer.Option(
            "-i", "--interface", metavar="IFACE", help="Interface to sniff promiscuously (repeat for more)."
        ),
    ],
    state: State = Path(DEFAULT_STATE_DIR),
    duration: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION", help="Stop after this long (e.g. 300, 15m); default: until a signal."
        ),
    ] = None,
    snaplen: Annotated[
        int, typer.Option("-s", "--snaplen", help="Bytes kept per frame (default: whole frames).")
    ] = DEFAULT_SNAPLEN,
    bpf: Annotated[
        str | None,
        typer.Option("--bpf", metavar="FILTER", help="Kernel filter in tcpdump syntax (needs tcpdump)."),
    ] = None,
    ring_size: Annotated[
        str,
        typer.Option(
            "--ring-size",
            metavar="SIZE",
            help="Kernel receive ring per interface and worker (64M); 0: no ring, one recvmsg per frame.",
        ),
    ] = f"{DEFAULT_RING_SIZE >> 20}M",
    learn: Learn = False,
    learn_for: LearnFor = None,
    baseline: BaselineFile = None,
    rules: Rules = None,
    zones: Zones = None,
    events: Events = True,
    limit: Limit = 30,
    stats_interval: Annotated[
        str,
        typer.Option(
            "--stats-interval",
            metavar="DURATION",
            help="Write a health record (kernel drops, counters, memory) to events.jsonl this often.",
        ),
    ] = "60s",
    rotate_size: Annotated[
        str | None,
        typer.Option(
            "--rotate-size", metavar="SIZE", help="Rotate alerts.jsonl/events.jsonl past this size (100M)."
        ),
    ] = None,
    rotate_every: Annotated[
        str | None,
        typer.Option(
            "--rotate-every", metavar="DURATION", help="Rotate the JSON-lines logs this often (1d)."
        ),
    ] = None,
    rotate_keep: Annotated[
        int, typer.Option("--rotate-keep", metavar="N", help="Rotated files kept per log (FILE.1 .. FILE.N).")
    ] = DEFAULT_KEEP,
    es_url: EsUrl = None,
    config: ConfigFile = None,
    es_events: EsEvents = False,
    cef: Cef = None,
    out: Out = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            metavar="N",
            help="Capture processes in one AF_PACKET fanout group (flows kept whole by the kernel's hash; "
            "it does not look inside VXLAN or Geneve: receive those with 1).",
        ),
    ] = 1,
    worker_timeout: Annotated[
        str,
        typer.Option(
            "--worker-timeout",
            metavar="DURATION",
            help="With --workers: a worker silent this long (no record, no heartbeat) is hung; "
            "the run ends with an error, its output kept.",
        ),
    ] = "30s",
) -> None:
    """Sniff interfaces (a SPAN/mirror port) and analyse live, as replay does.

    Needs CAP_NET_RAW only (root, or `setcap cap_net_raw+ep` on the interpreter).  Alerts reach
    alerts.jsonl and the store within about a second; capture time follows the wall clock on a
    quiet link (flows time out, a --learn-for window ends on time).  SIGHUP reloads --rules and
    --zones (a file that does not load leaves the old ones); SIGINT/SIGTERM end the run cleanly:
    inventory, alerts and the baseline are saved, and the health figures printed.  With --workers N,
    N processes capture and dissect (each frame goes to one of them by the kernel's symmetric flow
    hash) and this one merges their records and runs the analysis; drop counters are summed.
    """
    window = _check_analysis_options(learn, learn_for, rules, zones)
    seconds = parse_duration(duration) if duration is not None else None
    interval = parse_duration(stats_interval)
    rotation = _rotation(rotate_size, rotate_every, rotate_keep)
    ring_bytes = parse_size(ring_size)
    watchdog = parse_duration(worker_timeout)
    if watchdog < 2:
        raise ConfigError(
            f"--worker-timeout {worker_timeout}: at least 2s (workers report every half second)"
        )
    targets = _plan_outputs(out, cef, es_url, config, es_events)
    source: Any
    if workers > 1:
        from ics_monitor.parallel import LiveShards

        source = LiveShards(
            list(interfaces),
            workers,
            snaplen=snaplen,
            duration=seconds,
            bpf=bpf,
            ring_size=ring_bytes,
            watchdog=watchdog,
        )
    else:
        source = LiveSource(interfaces, snaplen=snaplen, duration=seconds, bpf=bpf, ring_size=ring_bytes)
    figures: dict[str, Any] = {}

    def say(line: str) -> None:
        # Plain writes: one line each, never wrapped at a console width (log parsers read them).
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def run(pipeline: Pipeline) -> RunStats:
        operations = LiveOperations(
            pipeline, source, stats_interval=interval, reload=detection_loader(rules, zones), say=say
        )
        with stop_on_signals(source), reload_on_sighup(operations):
            listening = f"listening on {', '.join(interfaces)}"
            if workers > 1:
                # Said once every worker is ready to take frames (see parallel's start gate).
                source.on_listening = lambda: say(f"{listening} with {workers} workers")
            else:
                say(listening)
            try:
                return source.run(pipeline) if workers > 1 else pipeline.run(source)
            finally:
                pipeline.stats.errors = list(source.errors)
                # The pipeline closed its sinks: the final record is appended to events.jsonl anew.
                final_log = [AppendLog(state / EVENTS_LOG, rotation=rotation)] if events else []
                final = operations.emit_health(time.time(), final=True, sinks=final_log)
                for log in final_log:
                    log.close()
                figures["health"] = {key: value for key, value in final.items() if key != "sinks"}
                for interface in final["interfaces"]:
                    say(
                        f"{interface['name']}: {interface['kernel_packets']:,} packets seen by the kernel, "
                        f"{interface['kernel_drops']:,} dropped by the kernel"
                    )
                say(_health_line(final))

    _analyse(
        "live",
        list(interfaces),
        run,
        state=state,
        learn=learn,
        window=window,
        baseline=baseline,
        rules=rules,
        zones=zones,
        events=events,
        limit=limit,
        rotation=rotation,
        extra_figures=figures,
        outputs=targets,
    )


def _failures(analysis: Analysis) -> dict[str, int]:
    """Records the inventory, the learner or a detector raised on and skipped, by part: said on stderr.

    A failing part loses the records it fails on, not the run; its first failure is an anomaly
    event (``internal.analysis_error`` / ``internal.detector_error``), but a line in the run's own
    output is what an analyst reads.
    """
    counts: dict[str, int] = dict(analysis.failures)
    # The engine's own failures (a ``DetectionEngine``; other engines may not count them).
    for name, count in (getattr(analysis.engine, "failures", None) or {}).items():
        counts[f"detector {name}"] = counts.get(f"detector {name}", 0) + count
    for part, count in sorted(counts.items()):
        if count:
            _warning_line(
                f"{part} failed on {count:,} record{'s' if count != 1 else ''} and skipped "
                f"{'them' if count != 1 else 'it'}: results are incomplete (the first failure is an "
                "internal.*_error anomaly event; please report it)"
            )
    return {part: count for part, count in counts.items() if count}


def _undecoded(stats: RunStats) -> None:
    """Frames of a link type this version does not decode: said on stderr, not only as anomalies.

    A capture whose every frame is of such a type (a header naming a link type nobody uses, a
    capture of a bus this tool has no decoder for) would otherwise end "0 assets, 0 alerts", as
    a capture of nothing does.
    """
    if stats.anomalies.get("link.unsupported", 0):
        nothing = stats.flows == 0 and stats.events == 0
        _warning_line(
            "frames of a link type this version does not decode were skipped"
            + (f" (all {stats.frames:,}: nothing was analysed)" if nothing else "")
            + "; the link.unsupported anomaly events name the type"
        )


def _figures(stats: RunStats, mode: str) -> dict[str, Any]:
    return {
        "mode": mode,
        "frames": stats.frames,
        "flows": stats.flows,
        "events": stats.events,
        "anomalies": sum(stats.anomalies.values()),
        "alerts": stats.alerts,
        "alert_records": stats.alert_records,
        "assets": stats.assets,
        "asset_changes": stats.asset_changes,
        "first_ts": stats.first_ts,
        "last_ts": stats.last_ts,
        "seconds": round(stats.seconds, 3),
        "errors": [str(error) for error in stats.errors],
    }


def _dump_json_lines(records: list[dict[str, Any]]) -> None:
    out = sys.stdout
    for record in records:
        out.write(orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode())
        out.write("\n")
    out.flush()


@app.command()
def assets(
    state: State = Path(DEFAULT_STATE_DIR),
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per asset instead of a table.")
    ] = False,
) -> None:
    """Show the asset inventory kept in the state directory."""
    with Store(state, create=False) as store:
        records = store.load_assets()
    if json_lines:
        _dump_json_lines(records)
    else:
        render_assets(_stdout_console(), records, limit=None)


@app.command()
def alerts(
    state: State = Path(DEFAULT_STATE_DIR),
    since: Annotated[
        str | None,
        typer.Option(
            help="Last seen at or after: epoch seconds, ISO time (UTC unless given), or a duration "
            "(2h) before the newest capture time in the store."
        ),
    ] = None,
    severity: Annotated[
        str | None, typer.Option(help="Minimum severity: 1-4 or low, medium, high, critical.")
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per alert (or rule) instead of a table.")
    ] = False,
    by_rule: Annotated[
        bool,
        typer.Option(
            "--by-rule",
            help="One row per rule: alerts, occurrences, distinct sources and destinations, first and "
            "last seen (an alert storm on one line).",
        ),
    ] = False,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run",
            metavar="RUN",
            help="Only the alerts a run raised: its id, or last (the latest replay or live run; an "
            "alert raised again belongs to the run that raised it last).",
        ),
    ] = None,
) -> None:
    """Show stored alerts, most severe first."""
    minimum = parse_severity(severity) if severity is not None else None
    with Store(state, create=False) as store:
        start = parse_since(since, store.latest_capture_time()) if since is not None else None
        run = parse_run(run_id, store.last_run_id()) if run_id is not None else None
        if run is not None:
            known = [entry["run_id"] for entry in store.runs()]
            if run not in known:
                raise ConfigError(f"no run {run} in {state} (runs: {_id_ranges(known) or 'none'})")
        if run_id is not None and run is None:
            rules, records = [], []  # no run yet: none of its alerts
        elif by_rule:
            rules = store.alert_rules(since=start, min_severity=minimum, run_id=run)
        else:
            records = store.alerts(since=start, min_severity=minimum, run_id=run)
    if by_rule:
        if json_lines:
            _dump_json_lines(rules)
        else:
            render_alert_rules(_stdout_console(), rules)
    elif json_lines:
        _dump_json_lines(records)
    else:
        render_alerts(_stdout_console(), records, limit=None)


@app.command()
def extract(
    alert_id: Annotated[
        str, typer.Argument(help="The alert's id, or a unique start of it (see `alerts --json`).")
    ],
    captures: Annotated[
        list[Path] | None,
        typer.Argument(help="Captures to carve from (default: those the run that raised the alert read)."),
    ] = None,
    state: State = Path(DEFAULT_STATE_DIR),
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Capture file to write (default alert-ID.pcap).")
    ] = None,
    scope: Annotated[
        str,
        typer.Option(
            help="frames: the frames the alert cites; flow: every packet of its connection; hosts: every "
            "packet between its addresses (flow falls back to hosts for an alert without ports)."
        ),
    ] = "flow",
    pad: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds before the alert's first and after its last time (flow, hosts)."),
    ] = 5.0,
) -> None:
    """Write an alert's packets to a capture file, for Wireshark: its frames, its flow or its hosts."""
    from ics_monitor.evidence import EvidenceError, evidence_captures, selection_for

    with Store(state, create=False) as store:
        found = store.find_alerts(alert_id)
        runs = store.runs()
    if not found:
        raise EvidenceError(f"no alert {alert_id!r} in {state}")
    if len(found) > 1:
        raise EvidenceError(
            f"{alert_id!r} starts more than one alert id ({found[0]['alert_id']}, ...): give more of it"
        )
    alert = found[0]
    if captures:
        paths = [str(path) for path in captures]
        missing = [path for path in paths if not Path(path).is_file()]
        if missing:
            raise EvidenceError(f"capture {missing[0]} is not there")
    else:
        paths = evidence_captures(alert, runs, scope, pad)
        if not paths:
            raise EvidenceError(
                f"no replay recorded in {state} covers alert {alert['alert_id']} (raised live?): give the captures"
            )
        missing = [path for path in paths if not Path(path).is_file()]
        if missing:
            raise EvidenceError(
                f"capture {missing[0]}, read by the alert's run, is not there: give the captures"
            )
    selection = selection_for(alert, scope, pad)
    shown = output if output is not None else Path(f"alert-{alert['alert_id']}.pcap")
    # A link is written through (the file it names is replaced, the link kept).
    try:
        target = shown.resolve() if shown.is_symlink() else shown
    except (OSError, RuntimeError) as exc:  # a loop of links
        raise EvidenceError(f"cannot write {shown}: {exc}") from None
    if target.exists() and not target.is_file():
        raise EvidenceError(f"{shown} is not a regular file: write the evidence to a file")
    partial = target.with_name(target.name + ".partial")
    if any(_same_file(written, Path(path)) for path in paths for written in (target, partial)):
        raise EvidenceError(f"{shown} is one of the captures read: write the evidence elsewhere")
    # SIGTERM ends the carve as Ctrl-C does (exit 130), leaving no partial file behind (unless
    # the command was started with SIGTERM ignored).
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, _interrupted)
    try:
        carved, kind = _write_evidence(paths, selection, partial, target, shown)
    except KeyboardInterrupt:
        _error_line(f"interrupted: {shown} not written")
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    typer.echo(
        f"{shown}: {carved.frames:,} frame{'s' if carved.frames != 1 else ''} ({kind}), "
        f"{selection.describe()}, {_utc(carved.first_ts)} to {_utc(carved.last_ts)}; "
        f"alert {alert['alert_id']} {alert['rule_id']} {alert['title']}"
    )


def _write_evidence(
    paths: list[str], selection: Any, partial: Path, target: Path, shown: Path
) -> tuple[Any, str]:
    """Carve into ``partial`` and rename it to ``target`` when whole: (carved, format written).

    A failed or interrupted carve leaves no file and does not clobber an existing one.
    """
    from ics_monitor.capture.writer import SNAPLEN, CaptureWriter
    from ics_monitor.evidence import EvidenceError, carve

    try:
        writer = CaptureWriter(partial)
    except OSError as exc:
        raise EvidenceError(f"cannot write {shown}: {exc.strerror or exc}") from None
    except BaseException:
        # Interrupted (SIGTERM, Ctrl-C) while the writer opened the file and wrote its header:
        # the file is there, the writer not yet.
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
    try:
        carved = carve(paths, selection, writer)
        kind = writer.close()
        for error in carved.errors:
            _warning_line(f"{error} (read up to the damage)")
        for note in carved.notes:
            _warning_line(note)
        if writer.cut:
            _warning_line(
                f"{writer.cut:,} frame{'s' if writer.cut != 1 else ''} longer than {SNAPLEN:,} bytes"
                " written cut to that length (the most capture readers take), marked with their length"
                " on the wire"
            )
        if not carved.frames:
            raise EvidenceError(
                f"no frame of the {carved.read:,} read matches {selection.describe()}: nothing written"
            )
        partial.replace(target)
    except OSError as exc:  # the disk, not the captures (their errors are CaptureError)
        _discard(writer, partial)
        raise EvidenceError(f"cannot write {shown}: {exc.strerror or exc}") from None
    except BaseException:
        _discard(writer, partial)
        raise
    return carved, kind


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _typer_interrupt(exc: BaseException) -> bool:
    """Whether an exit came from Typer's handling of a KeyboardInterrupt."""
    context = exc.__context__
    return isinstance(context, (click.exceptions.Exit, typer.Exit)) and isinstance(
        context.__context__, KeyboardInterrupt
    )


def _discard(writer: Any, partial: Path) -> None:
    with contextlib.suppress(OSError):
        writer.close()
    with contextlib.suppress(OSError):
        partial.unlink(missing_ok=True)


def _same_file(first: Path, second: Path) -> bool:
    try:
        return first.exists() and first.samefile(second)
    except OSError:
        return False


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


baseline_app = typer.Typer(
    help="Learn, show and compare behaviour baselines.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("learn")
def baseline_learn(
    captures: Captures,
    state: State = Path(DEFAULT_STATE_DIR),
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the baseline here (default: the state's).")
    ] = None,
    workers: AnalysisWorkers = None,
) -> None:
    """Learn a baseline from captures (no detection) and save it as YAML."""
    source = _open(captures)
    workers = _analysis_processes(workers, source)
    with Store(state) as store, _start_workers(source, captures, workers, emit_arp=False) as started:
        target = output if output is not None else store.baseline_path
        store.begin_run("baseline learn", LEARN, (str(path.resolve()) for path in captures))
        config = Config()
        analysis = build_analysis(config, Inventory(config.inventory), mode=LEARN, detection=False)
        learner = analysis.learner
        pipeline = Pipeline(config, default_registry(), dissect="full", analysis=analysis)
        stats = _run_files(pipeline, source, captures, workers, started)
        assert learner is not None
        learned = learner.baseline()
        learned.save(target)
        digest = store.save_baseline(target)
        failures = _failures(analysis)
        _undecoded(stats)
        store.finish_run({**_figures(stats, LEARN), **({"failures": failures} if failures else {})})
    stderr.print(
        f"baseline learned from {stats.frames:,} frames ({stats.events:,} events, {stats.flows:,} flows): "
        f"{target} (sha256 {digest[:12]})"
    )
    _check_errors(stats)


def _baseline_file(path: Path | None, state: Path) -> Path:
    target = path if path is not None else state / "baseline.yaml"
    if not target.is_file():
        raise ConfigError(f"{target}: no such baseline file (learn one: ics-monitor baseline learn CAPTURE)")
    return target


def _load_baseline(kind: Any, path: Path) -> Any:
    try:
        return kind.load(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        text = str(exc)
        raise ConfigError(text if str(path) in text else f"{path}: {text}") from exc


@baseline_app.command("show")
def baseline_show(
    path: Annotated[Path | None, typer.Argument(help="Baseline YAML (default: the state's).")] = None,
    state: State = Path(DEFAULT_STATE_DIR),
) -> None:
    """Print a baseline (after checking that it loads)."""
    from ics_monitor.inventory.baseline import Baseline

    learned = _load_baseline(Baseline, _baseline_file(path, state))
    sys.stdout.write(learned.to_yaml())
    sys.stdout.flush()


@baseline_app.command("diff")
def baseline_diff(
    old: Annotated[Path, typer.Argument(help="The earlier baseline.")],
    new: Annotated[Path | None, typer.Argument(help="The later baseline (default: the state's).")] = None,
    state: State = Path(DEFAULT_STATE_DIR),
) -> None:
    """Show what changed between two baselines; exit 1 when they differ (as diff does)."""
    from ics_monitor.inventory.baseline import Baseline

    loaded = [_load_baseline(Baseline, _baseline_file(path, state)) for path in (old, new)]
    lines = loaded[0].diff(loaded[1])
    for line in lines:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if lines:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point: run the app, turning known errors into one line."""
    # Every packet allocates records, tuples and dicts that reference counting frees; the cyclic
    # collector, run every 700 allocations by default, found nothing to free and cost 5-6% of
    # dissect's CPU.  Run it far less often, and never over what startup loaded (modules, rules).
    tune_collector()
    collector.resume_after_run = False  # this process ends with its command
    stale = compiled.stale()
    if stale:
        # An in-place build (make compiled) hides later edits of these sources: say so, once.
        _warning_line(
            f"compiled modules are older than {stale[0]} (and {len(stale) - 1} more): run `make compiled` or `make pure`"
        )
    # SIGTERM (a service manager, `kill`) ends a run as Ctrl-C does: what was found is stored.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupted)
    try:
        app()
    except SystemExit as exc:
        # Typer turns Ctrl-C into a silent exit 130; say why the run stopped (once: a command
        # that reported its own interruption exits from its handler, not through Typer's).
        if exc.code == 130 and _typer_interrupt(exc):
            stderr.print("ics-monitor: interrupted")
        raise
    except IcsMonitorError as exc:
        if _State.debug:
            traceback.print_exc()
        _error_line(str(exc))
        sys.exit(EXIT_USAGE)
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:
        stderr.print("ics-monitor: interrupted")
        sys.exit(130)
