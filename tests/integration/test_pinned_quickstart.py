"""The quickstart's results are pinned: every training's mask and metric history, and every
level's summary, bit for bit, as the store holds them.

Float results depend on the vector instructions torch's CPU kernels use, so there is one
pin per CPU capability (``torch.backends.cpu.get_cpu_capability()``):
``pinned/quickstart-AVX512.json`` was written from a store of the quickstart run before
lth-suite's restructuring into domain folders, on the AVX-512 machines of that time;
``pinned/quickstart-AVX2.json`` from the same code (commit b7bc293, before the parallel/
folder and the one entry point) on an AVX2 machine. Any change to how a level is planned,
trained or recorded that moves a single bit shows here. With one torch thread the figures
do not depend on the machine's core count. On a capability without a pin the test is
skipped, naming the command that writes one from a checkout whose results are trusted;
regenerate (only for an intended change of results) with::

    OMP_NUM_THREADS=1 lth-suite run specs/quickstart.yaml --set report.enabled=false \
        --tracking-uri sqlite:///$PWD/q.db
    python tests/integration/test_pinned_quickstart.py sqlite:///$PWD/q.db > tests/pinned/quickstart-CAP.json
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from lth_suite.api import BRANCHES
from lth_suite.tracking.names import (
    HISTORY_KEYS,
    MASK_ARTIFACT,
    PARENT_TAG,
    SPEC_HASH_TAG,
    STATE_ARTIFACT,
    WALL_TIME,
)

ROOT = Path(__file__).resolve().parents[2]
PINNED = Path(__file__).resolve().parents[1] / "pinned"


def pinned_file() -> Path:
    """The pin of this machine's CPU capability (AVX2, AVX512, ...)."""
    return PINNED / f"quickstart-{torch.backends.cpu.get_cpu_capability()}.json"


def _digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()[:20]


def _state_digest(path: str) -> str:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return _digest(b"".join(k.encode() + state[k].numpy().tobytes() for k in sorted(state)))


def fingerprint(uri: str) -> dict:
    """Per child run: digests of its mask, weights and metric histories; per level: the
    parent's summary metrics; and the spec hash."""
    client = MlflowClient(uri)
    runs = [r for e in client.search_experiments()
            for r in client.search_runs([e.experiment_id], max_results=1000)]
    parent = next(r for r in runs if PARENT_TAG not in r.data.tags)
    found: dict = {"spec_hash": parent.data.tags[SPEC_HASH_TAG], "trainings": {}, "levels": {}}
    with tempfile.TemporaryDirectory() as folder:
        for run in sorted(runs, key=lambda r: r.info.run_name):
            if run is parent:
                continue
            rid = run.info.run_id
            histories = {key: [(m.step, repr(m.value)) for m in sorted(
                client.get_metric_history(rid, key), key=lambda m: m.step)] for key in HISTORY_KEYS}
            found["trainings"][run.info.run_name] = {
                "mask": _digest(Path(client.download_artifacts(rid, MASK_ARTIFACT, folder))
                                .read_bytes()),
                "history": _digest(json.dumps(histories).encode()),
                **({"weights": _state_digest(client.download_artifacts(rid, STATE_ARTIFACT,
                                                                       folder))}
                   if run.info.run_name.endswith("ticket") else {}),
            }
    for key in sorted(parent.data.metrics):
        if ("/" in key and key.split("/")[0] not in BRANCHES) or key == WALL_TIME:
            continue  # analyzers' metrics are pinned by their own tests; time is no result
        for metric in client.get_metric_history(parent.info.run_id, key):
            found["levels"].setdefault(str(metric.step), {})[key] = repr(metric.value)
    return found


def test_quickstart_masks_and_metrics_are_bit_identical_to_the_pinned_run(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lth_suite.cli import app

    path = pinned_file()
    if not path.exists():
        pytest.skip(f"no pinned quickstart for CPU capability "
                    f"{torch.backends.cpu.get_cpu_capability()}: write {path.name} as this "
                    "module's docstring says, from a checkout whose results are trusted")
    pinned = json.loads(path.read_text())
    uri = f"sqlite:///{tmp_path / 'q.db'}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        done = CliRunner().invoke(app, ["run", str(ROOT / "specs" / "quickstart.yaml"),
                                        "--set", "report.enabled=false", "--tracking-uri", uri])
    finally:
        torch.set_num_threads(threads)
    assert done.exit_code == 0, done.output
    found = fingerprint(uri)
    assert found["spec_hash"] == pinned["spec_hash"]
    assert sorted(found["trainings"]) == sorted(pinned["trainings"])
    for name, digests in pinned["trainings"].items():
        assert found["trainings"][name] == digests, name
    assert found["levels"] == pinned["levels"]


if __name__ == "__main__":
    print(json.dumps(fingerprint(sys.argv[1]), indent=1, sort_keys=True))
