"""The ``ics-monitor`` command line: thin commands that set up a pipeline and report.

User errors are one line on stderr and exit code 2; a traceback only with ``--debug``.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ics_monitor import __version__
from ics_monitor.capture import MergedSource, open_captures
from ics_monitor.cli.render import ProgressReporter, print_summary, render_flow_table
from ics_monitor.config import Config, DissectConfig
from ics_monitor.core.errors import IcsMonitorError
from ics_monitor.dissect import default_registry
from ics_monitor.pipeline import Pipeline, RunStats
from ics_monitor.sinks import JsonLinesSink
from ics_monitor.sinks.console import FlowTableSink, SummarySink

EXIT_USAGE = 2

app = typer.Typer(
    name="ics-monitor",
    help="Passive security monitor for converged IT/OT networks (Modbus/TCP, DNP3, S7comm).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
stderr = Console(stderr=True)


def _stdout_console() -> Console:
    """Console for tables: the terminal's width, or wide enough not to wrap when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _error_line(message: str) -> None:
    """Print one error line on stderr, never wrapped."""
    sys.stderr.write(f"ics-monitor: error: {message}\n")
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


Captures = Annotated[list[Path], typer.Argument(help="pcap / pcapng files (.gz too), read in time order.")]
Output = Annotated[str | None, typer.Option("-o", "--output", help="Write JSON lines here (default stdout).")]


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


class _nullcontext:  # noqa: N801 - mirrors contextlib.nullcontext without its typing noise
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def _check_errors(stats: RunStats) -> None:
    """Damaged captures: everything before the damage is written; now say so and fail."""
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
) -> None:
    """Write one JSON line per application PDU (and per anomaly) found in the captures."""
    source = _open(captures)
    sink = JsonLinesSink(output)
    config = Config(dissect=DissectConfig(strict=strict))
    pipeline = Pipeline(config, default_registry(), dissect="full", event_sinks=[sink], emit_arp=arp)
    _check_errors(_run(pipeline, source))


@app.command()
def flows(
    captures: Captures,
    output: Output = None,
    table: Annotated[
        bool, typer.Option("--table", help="Show a table on the terminal instead of JSON.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Rows in --table (largest flows by bytes).")] = 40,
) -> None:
    """Write one JSON line per flow (IT and OT), or show them as a table."""
    source = _open(captures)
    sink = FlowTableSink(limit) if table else JsonLinesSink(output)
    pipeline = Pipeline(Config(), default_registry(), dissect="detect", flow_sinks=[sink])
    stats = _run(pipeline, source)
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


def main() -> None:
    """Console-script entry point: run the app, turning known errors into one line."""
    try:
        app()
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
