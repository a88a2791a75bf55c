"""``ics-monitor es setup|check|drain``: index templates, connectivity, and the delivery spool.

Connection settings come, by precedence, from these options, the ``ICS_MONITOR_ES_*`` environment
variables and the ``elasticsearch:`` section of ``--config FILE``.  Secrets are better passed in
the environment or the file than on a command line (other users can read process arguments); they
are never printed.  Exit codes: 0 fine, 1 reachable but templates missing or outdated, 2 the
cluster cannot be reached or the settings are wrong.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ics_monitor.core.errors import ConfigError
from ics_monitor.sinks.ecs import DEFAULT_KINDS, EVENT
from ics_monitor.sinks.elasticsearch import (
    ElasticsearchSettings,
    ElasticsearchSink,
    check_cluster,
    load_settings,
    make_client,
    redact_url,
    settings_from_file,
    setup_templates,
)

EXIT_OUTDATED = 1
EXIT_UNREACHABLE = 2

es_app = typer.Typer(
    name="es",
    help="Elasticsearch: install index templates, check the cluster, drain the delivery spool.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

EsUrl = Annotated[
    list[str] | None,
    typer.Option("--es-url", help="Cluster URL (repeat for several nodes). Default http://127.0.0.1:9200."),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--es-api-key", help="API key (prefer ICS_MONITOR_ES_API_KEY).", show_default=False),
]
Username = Annotated[str | None, typer.Option("--es-username", help="Basic-auth user name.")]
Password = Annotated[
    str | None,
    typer.Option(
        "--es-password", help="Basic-auth password (prefer ICS_MONITOR_ES_PASSWORD).", show_default=False
    ),
]
CaFile = Annotated[Path | None, typer.Option("--es-ca-file", help="CA certificate file (PEM).")]
Fingerprint = Annotated[
    str | None, typer.Option("--es-fingerprint", help="SHA-256 fingerprint of the server certificate.")
]
Insecure = Annotated[
    bool,
    typer.Option("--es-insecure", help="Do not verify TLS certificates (verification is on by default)."),
]
Prefix = Annotated[
    str | None, typer.Option("--es-index-prefix", help="Index name prefix (default ics-monitor).")
]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="YAML config file with an elasticsearch: section.")
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def settings_from_options(
    config: Path | None = None,
    es_url: list[str] | None = None,
    es_api_key: str | None = None,
    es_username: str | None = None,
    es_password: str | None = None,
    es_ca_file: Path | None = None,
    es_fingerprint: str | None = None,
    es_insecure: bool = False,
    es_index_prefix: str | None = None,
    **extra: Any,
) -> ElasticsearchSettings:
    """Settings from the common ``--es-*`` options over the environment and the config file.

    Exposed so other commands (``replay --out es``) build their sink settings the same way.
    """
    overrides: dict[str, Any] = {
        "urls": es_url or None,
        "api_key": es_api_key,
        "username": es_username,
        "password": es_password,
        "ca_file": str(es_ca_file) if es_ca_file else None,
        "fingerprint": es_fingerprint,
        "index_prefix": es_index_prefix,
        **extra,
    }
    if es_insecure:
        overrides["verify_certs"] = False
    return load_settings(config, overrides={k: v for k, v in overrides.items() if v is not None})


EsEvents = Annotated[
    bool,
    typer.Option(
        "--es-events",
        help="Also index every protocol event (default: alerts, assets, flows, anomalies, health).",
    ),
]


def run_settings(
    config: Path | None, es_url: list[str] | None, es_events: bool = False, *, wanted: bool = False
) -> ElasticsearchSettings | None:
    """Settings for ``replay``/``live`` to feed Elasticsearch, or None when no cluster is configured.

    A cluster is configured by ``--es-url``, ``$ICS_MONITOR_ES_URL`` or an ``elasticsearch:``
    section in ``--config``, or asked for (``wanted``: ``--out es``, the default URL then); the
    other settings (credentials, TLS, prefix) come from the environment and the file as for
    ``es setup``.
    """
    configured = wanted or bool(es_url) or bool(os.environ.get("ICS_MONITOR_ES_URL"))
    if not configured and config is not None:
        configured = bool(settings_from_file(config))
    if not configured:
        return None
    extra: dict[str, Any] = {}
    if es_events:
        extra["kinds"] = frozenset({*DEFAULT_KINDS, EVENT})
    return settings_from_options(config, es_url, **extra)


def _fail(message: str, code: int = EXIT_UNREACHABLE) -> typer.Exit:
    sys.stderr.write(f"ics-monitor: error: {message}\n")
    return typer.Exit(code)


def _unreachable(settings: ElasticsearchSettings, exc: Exception) -> typer.Exit:
    urls = ", ".join(redact_url(url) for url in settings.urls)
    from elasticsearch import ApiError

    reason = exc.message if isinstance(exc, ApiError) else str(exc)
    return _fail(f"cannot use Elasticsearch at {urls}: {type(exc).__name__}: {reason}")


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(
            orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
        )
        return
    for key, value in report.items():
        if isinstance(value, dict):
            typer.echo(f"{key}:")
            for name, state in value.items():
                typer.echo(f"  {name}: {state}")
        else:
            typer.echo(f"{key}: {value}")


@es_app.command("setup")
def setup(
    config: ConfigFile = None,
    es_url: EsUrl = None,
    es_api_key: ApiKey = None,
    es_username: Username = None,
    es_password: Password = None,
    es_ca_file: CaFile = None,
    es_fingerprint: Fingerprint = None,
    es_insecure: Insecure = False,
    es_index_prefix: Prefix = None,
    data_streams: Annotated[
        bool, typer.Option("--data-streams", help="Flows, anomalies and events as data streams.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Install the composable index templates (core field types only) and report the cluster state."""
    settings = settings_from_options(
        config, es_url, es_api_key, es_username, es_password, es_ca_file, es_fingerprint, es_insecure,
        es_index_prefix, **({"data_streams": True} if data_streams else {}),
    )  # fmt: skip
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    client = make_client(settings)
    try:
        installed = setup_templates(client, settings)
        report = check_cluster(client, settings)
    except (TransportError, ApiError) as exc:
        raise _unreachable(settings, exc) from None
    finally:
        client.close()
    report["installed"] = installed
    _print(report, as_json)


@es_app.command("check")
def check(
    config: ConfigFile = None,
    es_url: EsUrl = None,
    es_api_key: ApiKey = None,
    es_username: Username = None,
    es_password: Password = None,
    es_ca_file: CaFile = None,
    es_fingerprint: Fingerprint = None,
    es_insecure: Insecure = False,
    es_index_prefix: Prefix = None,
    as_json: Json = False,
) -> None:
    """Report connectivity, version, health and template state (exit 1 if templates need ``es setup``)."""
    settings = settings_from_options(
        config, es_url, es_api_key, es_username, es_password, es_ca_file, es_fingerprint, es_insecure,
        es_index_prefix,
    )  # fmt: skip
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    client = make_client(settings)
    try:
        report = check_cluster(client, settings)
    except (TransportError, ApiError) as exc:
        raise _unreachable(settings, exc) from None
    finally:
        client.close()
    _print(report, as_json)
    if any(state != "current" for state in report["templates"].values()):
        sys.stderr.write("ics-monitor: index templates missing or outdated: run `ics-monitor es setup`\n")
        raise typer.Exit(EXIT_OUTDATED)


@es_app.command("drain")
def drain(
    state: Annotated[Path, typer.Option("--state", help="State directory holding the spool.")] = Path(
        "ics-monitor-state"
    ),
    timeout: Annotated[float, typer.Option(help="Seconds to keep trying.")] = 60.0,
    config: ConfigFile = None,
    es_url: EsUrl = None,
    es_api_key: ApiKey = None,
    es_username: Username = None,
    es_password: Password = None,
    es_ca_file: CaFile = None,
    es_fingerprint: Fingerprint = None,
    es_insecure: Insecure = False,
    es_index_prefix: Prefix = None,
    as_json: Json = False,
) -> None:
    """Send what a previous run left in the spool (exit 2 if some is still undelivered)."""
    if not state.is_dir():  # a typo would otherwise make an empty state and report nothing to send
        raise ConfigError(f"{state}: no such state directory")
    settings = settings_from_options(
        config, es_url, es_api_key, es_username, es_password, es_ca_file, es_fingerprint, es_insecure,
        es_index_prefix, close_timeout=timeout,
    )  # fmt: skip
    sink = ElasticsearchSink(settings, state)
    sink.close()
    report = sink.status()
    _print(report, as_json)
    if report["spool_pending"]:
        raise _fail(
            f"{report['spool_pending']} documents still undelivered (last error: {report['last_error']})"
        )
