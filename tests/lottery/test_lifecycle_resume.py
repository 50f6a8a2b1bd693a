"""What a resumed experiment replays: the lifecycle hooks of every level whose hooks had not
all returned, never a level summary twice."""

from __future__ import annotations

import types

import pytest
from mlflow.tracking import MlflowClient

from lth_suite.errors import PluginFailure
from lth_suite.launch.execute import run_experiment
from lth_suite.plugins.hookspecs import hookimpl
from lth_suite.plugins.manager import load_plugins
from lth_suite.spec.loading import build_spec
from lth_suite.tracking.names import HOOKS_DONE_TAG, PARENT_TAG


class Recorder:
    """A plugin that records its hook calls and fails once at a chosen level."""

    def __init__(self, fail_at: int | None):
        self.fail_at, self.levels, self.finished = fail_at, [], 0

    def plugin(self) -> types.SimpleNamespace:
        @hookimpl
        def lth_level_finished(event):
            self.levels.append(event.level)
            if event.level == self.fail_at:
                self.fail_at = None  # fails once: the resumed run gets past it
                raise RuntimeError(f"hook failed at level {event.level}")

        @hookimpl
        def lth_experiment_finished(event):
            self.finished += 1

        return types.SimpleNamespace(__name__="recorder", lth_level_finished=lth_level_finished,
                                     lth_experiment_finished=lth_experiment_finished)


def parent_of(uri: str):
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert len(parents) == 1
    return client, parents[0]


def test_a_failed_level_hook_runs_again_on_resume_and_summaries_are_not_repeated(
        tiny, tracking_uri):
    tiny["pruning"]["levels"] = 3
    hooks = Recorder(fail_at=1)
    plugins = load_plugins(extra=[hooks.plugin()], installed=False)
    spec = build_spec(tiny, plugins.registry)
    with pytest.raises(PluginFailure, match="lth_level_finished of plugin recorder"):
        run_experiment(spec, plugins, tracking_uri)
    client, parent = parent_of(tracking_uri)
    assert parent.info.status == "FAILED"
    assert hooks.levels == [0, 1] and hooks.finished == 0
    assert parent.data.tags[HOOKS_DONE_TAG] == "0"  # level 1's hook did not return
    # level 1's summary was logged before its hook failed
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "level")] == [0, 1]

    finished = run_experiment(spec, plugins, tracking_uri, resume=parent.info.run_id)
    assert hooks.levels == [0, 1, 1, 2, 3]  # level 0's hook is not called twice
    assert hooks.finished == 1
    client, parent = parent_of(tracking_uri)
    assert parent.info.status == "FINISHED" and parent.data.tags[HOOKS_DONE_TAG] == "3"
    steps = [m.step for m in client.get_metric_history(parent.info.run_id, "level")]
    assert sorted(steps) == [0, 1, 2, 3]  # every level's summary exactly once
    assert [row["level"] for row in finished.summary] == [0, 1, 2, 3]


def test_a_finished_experiment_calls_each_level_hook_once(tiny, tracking_uri):
    hooks = Recorder(fail_at=None)
    plugins = load_plugins(extra=[hooks.plugin()], installed=False)
    run_experiment(build_spec(tiny, plugins.registry), plugins, tracking_uri)
    assert hooks.levels == [0, 1, 2] and hooks.finished == 1
    _, parent = parent_of(tracking_uri)
    assert parent.data.tags[HOOKS_DONE_TAG] == "2"
