"""Calling plugins and opening child runs so that every failure is recorded and named."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import LthError, PluginFailure
from ..plugins.manager import Plugins
from ..tracking import Tracker
from ..tracking.names import BRANCH_PARAM, LEVEL_PARAM, REPLICATE_PARAM, child_run_name

T = TypeVar("T")


def describe(exc: BaseException) -> str:
    """One line on why an experiment stopped."""
    return str(exc) if isinstance(exc, LthError) else f"{type(exc).__name__}: {exc}"


def ending(error: BaseException) -> tuple[str, str]:
    """The status and reason of a run that ``error`` stopped: KILLED when interrupted,
    else FAILED naming the error."""
    if isinstance(error, KeyboardInterrupt):
        return "KILLED", "interrupted"
    return "FAILED", describe(error)


class Guard:
    """Wraps plugin calls and child runs of one experiment."""

    def __init__(self, plugins: Plugins, tracker: Tracker):
        self.plugins, self.tracker = plugins, tracker

    def open(self, replicate: int, level: int, branch: str) -> str:
        """Start the child run of one training; it says at once which one it is."""
        return self.tracker.start_child(child_run_name(replicate, level, branch), {
            REPLICATE_PARAM: replicate, LEVEL_PARAM: level, BRANCH_PARAM: branch})

    def close(self, run: str, error: BaseException | None = None) -> None:
        """End a child run: FINISHED, KILLED when interrupted, else FAILED naming ``error``."""
        if error is None:
            self.tracker.end_run(run)
        else:
            self.tracker.end_run(run, *ending(error))

    @contextmanager
    def child(self, replicate: int, level: int, branch: str) -> Iterator[str]:
        """A child run for one branch; whatever stops it is recorded on it."""
        run = self.open(replicate, level, branch)
        try:
            yield run
        except BaseException as exc:
            self.close(run, exc)
            raise
        self.close(run)

    def call(self, kind: str, name: str, function: Callable[..., T], *args: Any) -> T:
        """Call a plugin's component; an exception from it names the component and plugin."""
        try:
            return function(*args)
        except (LthError, KeyboardInterrupt):
            raise
        except Exception as exc:
            plugin = self.plugins.registry.get(kind, name).plugin
            raise PluginFailure(f"{kind} '{name}' from plugin {plugin} raised "
                                f"{type(exc).__name__}: {exc}") from exc

    def hook(self, hook_name: str, event: Any) -> None:
        """Call a lifecycle hook implementation by implementation, to name a failing one."""
        for impl in reversed(getattr(self.plugins.hook, hook_name).get_hookimpls()):
            try:
                impl.function(event=event)
            except (LthError, KeyboardInterrupt):
                raise
            except Exception as exc:
                raise PluginFailure(f"hook {hook_name} of plugin {impl.plugin_name} raised "
                                    f"{type(exc).__name__}: {exc}") from exc
