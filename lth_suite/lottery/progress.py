"""Progress reporting for long trainings: silent for the API, rich for the CLI."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichBar

Tick = Callable[[int], None]


class Progress(Protocol):
    """What the runner tells about its work."""

    def begin(self, label: str, start: int, total: int) -> Tick:
        """A training starts; the returned callable receives the iteration just done."""
        ...

    def end(self, label: str, summary: dict[str, float]) -> None:
        """A training ended with these summary metrics."""
        ...

    def level_done(self, level: int, row: dict[str, float]) -> None:
        """Every replicate and branch of a level finished."""
        ...

    def elapsed(self) -> float:
        """Seconds since the experiment started."""
        ...

    def note(self, text: str) -> None:
        """Something the user should know, e.g. a skipped branch."""
        ...

    def stop(self) -> None:
        """Clear any display; the experiment ended or stopped."""
        ...


class SilentProgress:
    """Reports nothing; keeps the time."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def begin(self, label: str, start: int, total: int) -> Tick:
        """No bar."""
        return lambda iteration: None

    def end(self, label: str, summary: dict[str, float]) -> None:
        """Nothing to say."""

    def level_done(self, level: int, row: dict[str, float]) -> None:
        """Nothing to say."""

    def elapsed(self) -> float:
        """Seconds since construction."""
        return time.perf_counter() - self.started

    def note(self, text: str) -> None:
        """Nothing to say."""

    def stop(self) -> None:
        """Nothing to clear."""


class ConsoleProgress(SilentProgress):
    """A progress bar per training on stderr, and one line per finished training.

    When stderr is not a terminal (a cluster job's log), a bar would print as empty lines:
    a training instead prints a line every ``line_every`` seconds with its iteration, its
    rate and the experiment's estimated time left.
    """

    def __init__(self, total_trainings: int, console: Console | None = None,
                 line_every: float = 30.0):
        super().__init__()
        self.console = console or Console(stderr=True)
        self.total_trainings, self.done = total_trainings, 0
        self.line_every = line_every
        self._bar: RichBar | None = None

    def stop(self) -> None:
        """Remove a bar left by a training that did not end normally."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def begin(self, label: str, start: int, total: int) -> Tick:
        """Show a bar that advances every 1% of the training (lines when not a terminal)."""
        self.stop()
        if not self.console.is_terminal:
            return self._lines(label, start, total)
        self._bar = RichBar(TextColumn(f"[{self.done + 1}/{self.total_trainings}] {label}"),
                            BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=self.console, transient=True)
        self._bar.start()
        task = self._bar.add_task(label, total=total, completed=start)
        every = max(1, (total - start) // 100)
        bar, shown = self._bar, start

        def tick(iteration: int) -> None:
            nonlocal shown
            if iteration - shown >= every or iteration == total:
                shown = iteration
                bar.update(task, completed=iteration)

        return tick

    def _lines(self, label: str, start: int, total: int) -> Tick:
        """A tick that prints a line when ``line_every`` seconds have passed since the last."""
        began = last = time.perf_counter()
        prefix = f"[{self.done + 1}/{self.total_trainings}] {label}"

        def tick(iteration: int) -> None:
            nonlocal last
            now = time.perf_counter()
            if now - last < self.line_every:  # the training's end has its own line
                return
            last = now
            rate = (iteration - start) / max(now - began, 1e-9)
            part = (iteration - start) / max(total - start, 1)
            self.console.print(
                f"{prefix}: iteration {iteration}/{total}, {rate:,.1f} it/s, experiment "
                f"{_eta(self.elapsed(), (self.done + part) / self.total_trainings)}",
                highlight=False, markup=False, soft_wrap=True)

        return tick

    def end(self, label: str, summary: dict[str, float]) -> None:
        """Replace the bar with one line of results."""
        self.stop()
        self.done += 1
        head = f"[{self.done}/{self.total_trainings}] {label}: density {summary['density']:.3f}, "
        at = f"at early stop (it {int(summary['early_stop_iteration'])})"
        if "early_stop_test_perplexity" in summary:  # a language model: its perplexities first
            text = (f"val perplexity {summary['early_stop_val_perplexity']:.3f}, test perplexity "
                    f"{summary['early_stop_test_perplexity']:.3f} {at}, token accuracy "
                    f"{summary['early_stop_test_accuracy']:.4f}")
        else:
            text = (f"test acc {summary['early_stop_test_accuracy']:.4f} {at}, "
                    f"final {summary['final_test_accuracy']:.4f}")
        self.console.print(head + text, highlight=False, markup=False, soft_wrap=True)

    def note(self, text: str) -> None:
        """A warning line."""
        self.stop()
        self.console.print(f"warning: {text}", highlight=False, markup=False, soft_wrap=True)

    def info(self, text: str) -> None:
        """A line of output that is not a warning (what a searched rewind measured)."""
        self.stop()
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)


def _eta(elapsed: float, fraction: float) -> str:
    """``ETA 4m12s``: the time left if the rest goes as fast as what is done."""
    if fraction <= 0:
        return "ETA unknown"
    left = int(elapsed / fraction - elapsed + 0.5)
    hours, rest = divmod(max(left, 0), 3600)
    return f"ETA {hours}h{rest // 60:02d}m" if hours else f"ETA {rest // 60}m{rest % 60:02d}s"
