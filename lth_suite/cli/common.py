"""What every command shares: the app, consoles, options and error handling."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import LthError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Lottery Ticket Hypothesis experiments, tracked in MLflow.")
# soft_wrap: piped output keeps one line per message instead of wrapping at 80 columns
WIDE = 160  # tables printed to a pipe are not cut to the 80-column default
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else WIDE)
err = Console(stderr=True, soft_wrap=True)

SpecArg = Annotated[Path, typer.Argument(help="experiment spec (YAML)", show_default=False)]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", "-s", help="override a spec field: KEY=VALUE, VALUE parsed as YAML (repeatable)")]
OverridesOpt = Annotated[str | None, typer.Option(
    "--overrides", help="several overrides in one string, separated by ';' (for mlflow run)")]
UriOpt = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow tracking URI (default: sqlite mlflow.db in this folder)")]


def printable(text: str) -> str:
    """``text`` with control characters escaped: a file name or a value from a spec may
    hold terminal escape sequences, which must not reach the terminal raw."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _other_rank() -> bool:
    """Whether torchrun started this process as a rank other than 0: every rank meets the
    same bad input, and rank 0 alone says so."""
    from ..parallel.torchrun import launched

    return launched() and os.environ.get("RANK", "0") != "0"


# A rank other than 0 that meets bad input waits this long before it exits: torchrun's
# agent stops every rank once one exits, and rank 0 must say what was wrong first.
OTHER_RANK_GRACE_S = 5.0


def _fail(error: LthError, exit_code: int | None = None) -> None:
    if _other_rank():
        time.sleep(OTHER_RANK_GRACE_S)
    else:
        for line in error.lines():
            err.print(f"error: {printable(line)}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(error.exit_code if exit_code is None else exit_code)


def _load(spec_path: Path, overrides: list[str] | None):
    from ..plugins.manager import load_plugins
    from ..spec.loading import load_spec

    plugins = load_plugins()
    return plugins, load_spec(spec_path, plugins.registry, overrides or [])


def _auto_report(uri: str, parent_run_id: str, levels: list[int] | None):
    """The report at the end of ``run`` (its ``ReportResult``), or None when it failed: a
    failure warns but never fails the finished run."""
    retry = f"retry with: lth-suite report {parent_run_id} --tracking-uri {uri}"
    try:
        from ..report.writer import report as write_report

        return write_report(parent_run_id, uri, levels=levels)
    except KeyboardInterrupt:
        err.print(f"warning: report interrupted; the experiment is finished; {retry}",
                  highlight=False, markup=False)
    except Exception as exc:  # the experiment is finished and logged: keep exit code 0
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        err.print(f"warning: the report could not be written ({type(exc).__name__}: {first}); "
                  f"{retry}", highlight=False, markup=False)
    return None


def print_report_folder(result) -> None:
    """Where the report went."""
    out.print(f"report: {result.folder}/ (also logged to the parent run: summary.md and PNG "
              "figures at its artifact root, PDF/SVG under report/)", highlight=False, markup=False)


def print_statistics(result) -> None:
    """The report's table: accuracy with its interval per branch, ticket vs controls."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from ..report.level_statistics import method_note, terminal_rows

    if result.data is None:
        return
    header, rows = terminal_rows(result.data, result.statistics)
    # No vertical rules: two branches' intervals and two tests fit 100 columns.
    table = Table(title=escape("test accuracy at early stop: mean [interval] over replicates"),
                  caption=escape(method_note(result.data)), caption_justify="left",
                  box=box.SIMPLE_HEAD)
    for name in header:
        table.add_column(escape(name), justify="right")
    for row in rows:
        table.add_row(*map(escape, row))
    out.print(table)
    from ..report.summary import measured_buys

    buys, machine = measured_buys(result.data)
    if buys:  # the opt-in inference analyzer ran: what each ticket buys here
        print_buys(buys, machine, f"{result.data.title}: what this ticket buys here")


def print_buys(rows, machine: dict[str, str], title: str) -> None:
    """The "what this ticket buys here" table, where each format pays, and the machine."""
    from rich.markup import escape
    from rich.table import Table

    from ..report.inference_table import cells, header, machine_line, where_it_pays

    table = Table(title=escape(title), caption=escape(
        f"median latency on {machine_line(machine)}; speed-up = dense / format"),
        caption_justify="left")
    for name in header(rows):
        table.add_column(escape(name), justify="right")
    for row in rows:
        table.add_row(*map(escape, cells(row)))
    out.print(table)
    for line in where_it_pays(rows):
        out.print(line.replace("`", ""), highlight=False, markup=False)


class Terminated(KeyboardInterrupt):
    """SIGTERM, on Ctrl-C's path: under torchrun, the agent stopping the ranks that are
    left once one of them died."""


def _interrupt(signum: int, frame: object) -> None:
    raise Terminated


class Resumable:
    """What ``stopping_cleanly`` prints when interrupted: the command that resumes, once
    there is something to resume (``command`` returns None until then)."""

    def __init__(self, command: Callable[[], str | None]):
        self.command = command


@contextmanager
def stopping_cleanly(resume_command: Callable[[], str | None] = lambda: None,
                     ) -> Iterator[Resumable]:
    """The one handler of Ctrl-C and SIGTERM: SIGTERM takes Ctrl-C's path; either ends
    with the command that resumes (the runs were ended KILLED) and exit code 130.

    The command may learn its resume command later: set ``command`` on what this yields.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)
    resumable = Resumable(resume_command)
    try:
        yield resumable
    except KeyboardInterrupt as stop:
        from ..parallel.torchrun import launched

        command = resumable.command()
        what = ("stopped by torchrun (another rank died or torchrun was stopped)"
                if isinstance(stop, Terminated) and launched() else "interrupted")
        if _other_rank():
            pass  # rank 0 says what became of the runs
        elif command is None:
            err.print(f"{what} before any run was created: nothing to resume",
                      highlight=False, markup=False)
        else:
            err.print(f"{what}: the open runs were ended as KILLED; resume with: "
                      f"{command}", highlight=False, markup=False)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
