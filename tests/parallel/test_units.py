"""Units: one (replicate, level, branch) trained from its predecessors' checkpoints."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from lth_suite.launch.execute import run_experiment
from lth_suite.lottery.experiment import prepare
from lth_suite.lottery.runner import LotteryRunner
from lth_suite.spec.loading import build_spec, spec_hash, to_yaml
from lth_suite.tracking import open_tracker


def test_units_in_any_order_of_dependencies_then_a_resume_equal_one_run(tiny, registry, plugins,
                                                                        tmp_path):
    spec = build_spec(tiny, registry)
    whole = run_experiment(spec, plugins, f"sqlite:///{tmp_path / 'whole.db'}")
    uri = f"sqlite:///{tmp_path / 'units.db'}"
    driver = open_tracker(uri)
    parent = driver.start_experiment("units", "units", {}, {"lth_suite.spec_hash": spec_hash(spec)},
                                     to_yaml(spec))
    order = [(0, 0, "ticket"), (0, 1, "ticket"), (0, 2, "ticket"), (0, 2, "random_prune"),
             (0, 1, "reinit"), (0, 2, "reinit"), (0, 1, "random_prune")]
    for replicate, level, branch in order:  # each unit as a fresh process would run it
        runner = LotteryRunner(prepare(spec, plugins), open_tracker(uri))
        run_id = runner.run_unit(parent, replicate, level, branch)
        assert MlflowClient(uri).get_run(run_id).data.params["branch"] == branch
    again = LotteryRunner(prepare(spec, plugins), open_tracker(uri)).run_unit(parent, 0, 1, "reinit")
    children = MlflowClient(uri).search_runs(
        [driver.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert len(children) == 7 and again in {c.info.run_id for c in children}  # not trained twice
    finished = LotteryRunner(prepare(spec, plugins), open_tracker(uri), resume=parent).run()
    for one, two in zip(whole.levels, finished.levels, strict=True):
        for a, b in zip(one.branches, two.branches, strict=True):
            assert (a.replicate, a.branch) == (b.replicate, b.branch) and b.restored
            assert a.mask.equals(b.mask)
            assert a.result.history == b.result.history
    assert whole.summary == finished.summary
    assert MlflowClient(uri).get_run(parent).info.status == "FINISHED"
