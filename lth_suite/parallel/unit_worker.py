"""What runs in a cluster's worker process (a Ray task): one unit of an experiment.

A unit reads what it depends on from the tracking store and logs its own child run
there, so it runs in any process that reaches the store.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Diverged, LthError
from ..plugins.manager import LOAD_ENV, Plugins, load_plugins
from ..tracking.names import DENSITY, DENSITY_PARAM, SUMMARY_KEYS, TASK_SUMMARY_KEYS
from .units import Unit, UnitFailed

if TYPE_CHECKING:
    from ..lottery.experiment import Experiment
    from ..tracking import Tracker


@dataclass(frozen=True)
class UnitDone:
    """A finished unit: its child run and its summary metrics."""

    run_id: str
    summary: dict[str, float]


_PLUGINS: dict[str | None, Plugins] = {}
_PREPARED: dict[tuple[str, str | None], Any] = {}  # the last few experiments, per process


def _worker_plugins(allowed: str | None) -> Plugins:
    """The plugins the driver loaded (same ``LTH_SUITE_LOAD_PLUGINS``), once per process."""
    if allowed not in _PLUGINS:
        previous = os.environ.get(LOAD_ENV)
        try:
            if allowed is None:
                os.environ.pop(LOAD_ENV, None)
            else:
                os.environ[LOAD_ENV] = allowed
            _PLUGINS[allowed] = load_plugins(warn=False)
        finally:
            if previous is None:
                os.environ.pop(LOAD_ENV, None)
            else:
                os.environ[LOAD_ENV] = previous
    return _PLUGINS[allowed]


def prepared(spec_yaml: str, allowed: str | None) -> Experiment:
    """The experiment of a spec (as YAML) with the plugins the driver loaded
    (``LTH_SUITE_LOAD_PLUGINS`` as ``allowed``); the last two are kept per process."""
    import yaml

    from ..lottery.experiment import prepare
    from ..spec.loading import build_spec

    key = (spec_yaml, allowed)
    if key not in _PREPARED:
        plugins = _worker_plugins(allowed)
        spec = build_spec(yaml.safe_load(spec_yaml), plugins.registry, "the driver's spec")
        if len(_PREPARED) >= 2:  # bound memory: a worker may serve many experiments
            _PREPARED.pop(next(iter(_PREPARED)))
        _PREPARED[key] = prepare(spec, plugins)
    return _PREPARED[key]


@dataclass(frozen=True)
class UnitJob:
    """Trains one unit of an experiment in whatever process calls it (a Ray worker).

    Plain data, so it pickles: the spec as YAML, the store, the parent run, and which
    installed plugins the driver loaded. Every failure becomes a picklable
    ``UnitFailed``; a unit that diverges under ``on_divergence: skip`` returns None.
    """

    spec_yaml: str
    tracking_uri: str
    parent_id: str
    load_plugins: str | None = None

    def experiment(self) -> Experiment:
        """The unit's experiment, prepared once per process."""
        return prepared(self.spec_yaml, self.load_plugins)

    def __call__(self, unit: Unit) -> UnitDone | None:
        """Train the unit (or find it finished); its run and summary."""
        from ..tracking import open_tracker

        return self._train(unit, lambda: open_tracker(self.tracking_uri))

    def _train(self, unit: Unit, open_store: Callable[[], Tracker]) -> UnitDone | None:
        """Train the unit through the tracker ``open_store`` opens; a store that cannot be
        opened fails the unit like anything else, naming it."""
        from ..lottery.child_runs import describe
        from ..lottery.runner import LotteryRunner

        # MLflow prints a "View run" link per run it ends on a server: noise from workers
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        skip = False
        try:
            experiment = self.experiment()
            skip = experiment.spec.training.on_divergence == "skip"
            tracker = open_store()
            run_id = LotteryRunner(experiment, tracker).run_unit(
                self.parent_id, unit.replicate, unit.level, unit.branch)
            if run_id is None:  # a training skipped as diverged
                if skip:
                    return None
                raise UnitFailed(unit.name, "it produced no result")
            run = tracker.reader.require(run_id)
        except Diverged as exc:
            if skip:
                return None
            raise UnitFailed(unit.name, str(exc), exc.exit_code) from None
        except UnitFailed:
            raise
        except LthError as exc:
            raise UnitFailed(unit.name, str(exc), exc.exit_code) from None
        except Exception as exc:
            raise UnitFailed(unit.name, describe(exc)) from None
        return UnitDone(run_id, _summary(run))


def _summary(run: Any) -> dict[str, float]:
    summary = {k: float(run.metrics[k]) for k in (*SUMMARY_KEYS, *TASK_SUMMARY_KEYS)
               if k in run.metrics}
    summary[DENSITY] = float(run.params.get(DENSITY_PARAM, "nan"))
    return summary
