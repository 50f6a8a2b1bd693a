"""``run --dry-run``: the plan with its data, and as far as it goes without it."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from lth_suite.cli import app


def dry_run(spec, tmp_path, *sets):
    result = CliRunner().invoke(app, ["run", str(spec), "--dry-run", "--tracking-uri",
                                      f"sqlite:///{tmp_path / 'mlflow.db'}",
                                      *(arg for s in sets for arg in ("--set", s))])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "mlflow.db").exists()  # nothing logged
    return result.output


def test_the_plan_shows_trainings_densities_iterations_and_a_time(tiny, write_spec, tmp_path):
    text = dry_run(write_spec(tiny), tmp_path, "training.schedule={warmup: 80it}")
    assert "plan: levels 0-2 x branches ticket, reinit, random_prune (level 0: ticket only) x " \
           "1 replicate(s) = 7 trainings" in text
    assert "iterations: 40 per training" in text and "280 in all" in text
    densities = re.search(r"weights remaining per level: 100%, ([\d.]+)%, ([\d.]+)%", text)
    assert densities and 100 > float(densities.group(1)) > float(densities.group(2)) > 0
    assert re.search(r"estimated time: \d+ s of training on cpu \([\d.]+ ms a step", text)
    assert "warning: the warmup (80) is longer than the training (40)" in text


def test_without_its_data_the_spec_is_still_planned_and_the_skipped_checks_named(
        tiny, write_spec, tmp_path):
    root = tmp_path / "cifar"
    tiny["dataset"] = {"name": "cifar10", "root": str(root), "download": False}
    tiny["training"]["duration"] = "2ep"
    text = dry_run(write_spec(tiny), tmp_path)
    assert "data not available (CIFAR-10 not found under" in text
    assert "plan: levels 0-2 x " in text and "= 7 trainings" in text
    assert "duration: 2ep per training (iterations: need the training set's size)" in text
    assert "linear 100%, 80%, 64%" in text
    skipped = next(line for line in text.splitlines() if line.startswith("skipped"))
    assert "the dataset loads" in skipped and "the time estimate" in skipped
    assert not root.exists()  # no empty data folder left behind
