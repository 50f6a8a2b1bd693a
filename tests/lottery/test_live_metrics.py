"""Live metrics: a running training's evaluations reach the store while it trains, each once."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from lth_suite.launch.execute import run_experiment
from lth_suite.lottery.progress import SilentProgress
from lth_suite.spec.loading import build_spec
from lth_suite.tracking import writer


class Peek(SilentProgress):
    """Reads the store in the middle of the first training: what a user would see."""

    def __init__(self, uri: str, first: int = 30, before: int = 31):
        super().__init__()
        self.client, self.seen = MlflowClient(uri), None
        self.window = range(first, before)  # the iterations at which to look

    def begin(self, label, start, total):
        def tick(iteration: int) -> None:
            if self.seen is None and iteration in self.window:  # after the evaluation at 20
                runs = self.client.search_runs(
                    [e.experiment_id for e in self.client.search_experiments()],
                    filter_string="attributes.status = 'RUNNING'")
                child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
                self.seen = [m.step for m in
                             self.client.get_metric_history(child.info.run_id, "val_loss")]
        return tick


def test_evaluations_are_in_the_store_while_the_training_runs(tiny, plugins, tracking_uri,
                                                               monkeypatch):
    monkeypatch.setattr(writer, "LIVE_EVERY", 0.0)  # send every evaluation at once
    tiny["pruning"]["levels"], tiny["controls"] = 1, {"reinit": False, "random_prune": False}
    peek = Peek(tracking_uri)
    finished = run_experiment(build_spec(tiny, plugins.registry), plugins, tracking_uri, peek)
    assert peek.seen == [0, 20]  # the evaluations done by iteration 30, not the one at 40
    ticket = finished.levels[0].branches[0]
    steps = [m.step for m in MlflowClient(tracking_uri).get_metric_history(ticket.run_id,
                                                                          "val_loss")]
    assert sorted(steps) == [0, 20, 40]  # each evaluation logged once, live or at the end


def test_a_short_training_writes_its_evaluations_once_at_its_end(tiny, plugins, tracking_uri):
    tiny["pruning"]["levels"], tiny["controls"] = 1, {"reinit": False, "random_prune": False}
    peek = Peek(tracking_uri)
    finished = run_experiment(build_spec(tiny, plugins.registry), plugins, tracking_uri, peek)
    assert peek.seen == []  # under LIVE_EVERY seconds: nothing written mid-training
    ticket = finished.levels[0].branches[0]
    history = MlflowClient(tracking_uri).get_metric_history(ticket.run_id, "val_loss")
    assert sorted(m.step for m in history) == [0, 20, 40]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [
        row["val_loss"] for row in ticket.result.history]
