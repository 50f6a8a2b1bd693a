"""The quickstart's tracking writes without its training, timed.

The same calls a 1-replicate quickstart makes through ``Tracker`` (16 child runs, 6 of
them with a ticket model; 6 level summaries on the parent), on a fresh SQLite store, so
that the writing path can be compared between two checkouts without training noise:

    PYTHONPATH=. python benchmarks/tracking_writes.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from lth_suite.pruning.masks import Mask
from lth_suite.tracking.writer import Tracker

EVALUATIONS = 15  # a quickstart training: 30 epochs of the digits, one evaluation per 50 steps


def one_experiment(folder: str) -> float:
    """Seconds for the child runs and level summaries (the parent's creation not counted)."""
    tracker = Tracker(f"sqlite:///{folder}/mlflow.db")
    tracker.start_experiment("quickstart", "quickstart-bench", {f"key{i}": i for i in range(60)},
                             {}, "experiment: {}\n")
    model = torch.nn.Sequential(torch.nn.Linear(64, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100),
                                torch.nn.ReLU(), torch.nn.Linear(100, 10))
    mask = Mask({n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()
                 if n.endswith("weight")})
    began = time.perf_counter()
    for level in range(6):
        for branch in ["ticket"] if level == 0 else ["ticket", "reinit", "random_prune"]:
            run = tracker.start_child(f"r0-level{level}-{branch}",
                                      {"replicate": 0, "level": level, "branch": branch})
            tracker.log_params(run, {"density": 0.5, **{f"density.{i}": 0.5 for i in range(3)}})
            for i in range(EVALUATIONS):
                tracker.log_evaluations(run, [{"iteration": 50.0 * i, "train_loss": 0.1,
                                               "val_loss": 0.2, "val_accuracy": 0.9,
                                               "test_loss": 0.2, "test_accuracy": 0.9}])
            tracker.log_metrics(run, {f"summary{i}": 0.5 for i in range(8)})
            tracker.log_training_artifacts(run, mask, {"state_dict.pt": model.state_dict()})
            if branch == "ticket":
                tracker.log_model(run, model, f"model-{level}", torch.zeros(1, 64))
            tracker.end_run(run)
        tracker.log_metrics(tracker.parent_id, {f"level{i}": 0.5 for i in range(12)}, step=level)
        tracker.log_json(tracker.parent_id, {"rows": [1, 2]}, f"analysis/level_{level}.json")
        tracker.set_tag(tracker.parent_id, "hooks_done", str(level))
    tracker.end_run(tracker.parent_id)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    seconds, here = [], os.getcwd()
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            os.chdir(folder)  # MLflow's default artifact root is relative
            try:
                seconds.append(one_experiment(folder))
            finally:
                os.chdir(here)
    print(f"writes: median {statistics.median(seconds):.3f} s, rounds "
          + ", ".join(f"{s:.3f}" for s in seconds))


if __name__ == "__main__":
    main()
