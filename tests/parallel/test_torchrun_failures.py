"""Under torchrun (2 Gloo processes on the CPU): bad input is one line from rank 0, not one
traceback per rank; a rank killed mid-training ends with a line from lth-suite naming the
resume command."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from tests.parallel.test_data_parallel import descendants, torchrun

DIGITS = """
experiment: {name: ddp-failures, seed: 0}
model: {name: mlp, hidden: [16]}
dataset: {name: digits}
training: {batch_size: 60, duration: 4000it, eval_every: 1000}
pruning: {levels: 1}
controls: {reinit: false, random_prune: false}
tracking: {log_models: none}
report: {enabled: false}
"""


def lth_lines(output: str) -> list[str]:
    """What lth-suite printed (torchrun's own report and its logging left out)."""
    return [line for line in output.splitlines()
            if line.startswith(("error:", "interrupted", "stopped by torchrun"))]


def test_a_batch_that_does_not_split_over_the_ranks_is_one_line(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(DIGITS.replace("batch_size: 60", "batch_size: 5"))
    done = torchrun("run", str(spec), cwd=tmp_path)
    output = done.communicate(timeout=300)[0]
    assert done.returncode != 0
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == ["error: training.batch_size: 5 does not split evenly over the 2 "
                      "processes torchrun started"], output
    assert not [line for line in output.splitlines()  # torchrun's own report aside
                if line.strip().startswith("File") and "lth_suite" in line], output


def started_training(database: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            return bool(db.execute("SELECT count(*) FROM runs WHERE name = 'r0-level0-ticket'"
                                   ).fetchone()[0])
    except sqlite3.Error:
        return False


def kill_rank_1_mid_training(folder: Path) -> tuple[int, str]:
    """Run the digits spec under torchrun in ``folder``, SIGKILL rank 1 once training has
    started; torchrun's exit code and everything printed."""
    folder.mkdir()
    spec = folder / "spec.yaml"
    spec.write_text(DIGITS)
    run = torchrun("run", str(spec), cwd=folder)
    try:
        deadline = time.time() + 240
        while not started_training(folder / "mlflow.db"):
            assert time.time() < deadline and run.poll() is None, "the run never started"
            time.sleep(0.5)
        time.sleep(2)
        ranks = [pid for pid in descendants(run.pid)
                 if "RANK=1" in Path(f"/proc/{pid}/environ").read_text(errors="replace")
                 .split("\0")]
        assert ranks, "no rank 1"
        os.kill(ranks[0], signal.SIGKILL)
        output = run.communicate(timeout=240)[0]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    return run.returncode, output


def test_a_killed_rank_ends_with_a_line_naming_the_resume_command(tmp_path):
    # Known race, on a loaded machine only: rank 0 can wait on the SQLite store past
    # torchrun's 30 s grace and be killed before it prints. One more try tells that race
    # from a missing line, which fails both.
    for attempt in range(2):
        returncode, output = kill_rank_1_mid_training(tmp_path / f"try{attempt}")
        ours = lth_lines(output)
        if any("lth-suite resume" in line for line in ours) or "Signal 9" not in output.split(
                "Root Cause")[0]:
            break
    assert returncode != 0
    assert any("lth-suite resume" in line for line in ours), output
    assert not any(line.startswith("error:") for line in ours), ours
