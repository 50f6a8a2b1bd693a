"""Commands that inspect without running: validate, schema, plugins, ui."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from ..errors import LthError
from .common import SetOpt, SpecArg, UriOpt, _fail, _load, app, err, out


@app.command()
def validate(spec: SpecArg, set_: SetOpt = None) -> None:
    """Check a spec (and its plugin params) without running it."""
    from ..spec.loading import spec_hash

    try:
        _, experiment_spec = _load(spec, set_)
    except LthError as error:
        _fail(error)
    out.print(f"{spec}: valid (hash {spec_hash(experiment_spec)})", highlight=False, markup=False)


@app.command()
def schema() -> None:
    """Print the spec's JSON schema, plugins' params included, for editors."""
    from ..plugins.manager import load_plugins
    from ..spec.loading import json_schema

    try:
        plugins = load_plugins()
    except LthError as error:
        _fail(error)
    sys.stdout.write(json.dumps(json_schema(plugins.registry), indent=2) + "\n")


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
            ) -> None:
    """List the plugins, their versions, what each provides, and any that failed to load.

    A component name that several plugins registered is a warning here, not an error:
    each stays usable by its qualified name ``PLUGIN:NAME``.
    """
    from ..plugins.manager import load_plugins

    try:
        loaded = load_plugins()
    except LthError as error:
        _fail(error)
    clashes = loaded.clashes()
    rows = [{"plugin": info.name, "version": info.version, "distribution": info.distribution,
             "status": info.status, "error": info.error, "provides": info.provides,
             "clashes": [c.warning() for c in clashes if info.name in c.plugins]}
            for info in loaded.infos.values()]
    for clash in clashes:  # stderr: --json keeps stdout machine-readable
        err.print(f"warning: {clash.warning()}", highlight=False, markup=False, soft_wrap=True)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="lth-suite plugins")
    for column in ("plugin", "version", "status", "provides"):
        table.add_column(column)
    for row in rows:
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in row["provides"].items())
        if row["status"] != "ok":
            provides = f"{provides or '(unknown)'}\nerror: {row['error']}"
        table.add_row(row["plugin"], row["version"], row["status"], provides or "(hooks only)")
    out.print(table)


@app.command()
def ui(tracking_uri: UriOpt = None,
       port: Annotated[int, typer.Option(help="port", min=1, max=65535)] = 5000,
       host: Annotated[str, typer.Option(help="interface; 0.0.0.0 exposes the UI to the "
                                         "network")] = "127.0.0.1") -> None:
    """Start the MLflow UI (on 127.0.0.1 unless told otherwise) for the configured store."""
    from ..tracking import resolve_tracking_uri, ui_command, ui_url
    from .serving import port_taken, serve

    uri = resolve_tracking_uri(tracking_uri, None)
    if uri.startswith(("http://", "https://")):  # a server already shows its own UI
        out.print(f"the tracking server {uri} serves the MLflow UI itself: open {uri}",
                  highlight=False, markup=False)
        return
    taken = port_taken(host, port)
    if taken:
        _fail(LthError(f"{taken}; choose another with --port {_next_port(port)}"))
    err.print(f"MLflow UI for {uri} at {ui_url(host, port)} (Ctrl-C stops it); its sidebar's "
              "'Model training' switch, which the browser remembers, shows experiments' runs "
              "rather than GenAI traces", highlight=False)
    raise typer.Exit(serve(ui_command(uri, port, host)))


def _next_port(port: int) -> int:
    """A free port to suggest instead of ``port``: the next one that nothing listens on."""
    from .serving import port_taken

    candidates = [p for p in range(port + 1, port + 50) if p <= 65535]
    return next((p for p in candidates if port_taken("127.0.0.1", p) is None), port + 1)
