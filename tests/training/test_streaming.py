"""The imagefolder dataset: in memory or streamed by loader workers, same batches either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from lth_suite.builtin.datasets import ImageFolderParams
from lth_suite.builtin.datasets.imagefolder import load_imagefolder
from lth_suite.cli import app
from lth_suite.launch.execute import run_experiment
from lth_suite.spec.loading import build_spec
from lth_suite.training.data import RawData
from lth_suite.training.streaming import StreamedData, StreamedSplits, split_streamed

CLASSES, TRAIN_PER_CLASS, TEST_PER_CLASS, SIDE = 3, 8, 4, 32


def write_image_folder(root: Path) -> Path:
    """3 classes x 8 training and 4 test PNG images of 32x32: each class its own hue."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for part, count in (("train", TRAIN_PER_CLASS), ("val", TEST_PER_CLASS)):
        for label in range(CLASSES):
            folder = root / part / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 96, (SIDE, SIDE, 3))
                pixels[..., label] += 150
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "images")


def params(root: Path, **changes) -> ImageFolderParams:
    return ImageFolderParams(root=root, image_size=SIDE, resize=SIDE, validation=3, **changes)


def streamed(root: Path, workers: int) -> StreamedSplits:
    data = load_imagefolder(params(root, storage="stream", workers=workers), seed=0)
    assert isinstance(data, StreamedData)
    return split_streamed(data, params(root))


def test_auto_storage_keeps_small_folders_in_memory_and_streams_large_ones(folder):
    in_memory = load_imagefolder(params(folder), seed=0)
    assert isinstance(in_memory, RawData)
    assert in_memory.x_train.shape == (CLASSES * TRAIN_PER_CLASS, 3, SIDE, SIDE)
    assert sorted(in_memory.y_test.tolist()) == sorted(list(range(CLASSES)) * TEST_PER_CLASS)
    # 36 decoded images of 3x32x32 float32 are 442,368 bytes: a limit below that streams.
    tight = load_imagefolder(params(folder, memory_limit=400_000 / 2 ** 30), seed=0)
    assert isinstance(tight, StreamedData) and len(tight.train) == CLASSES * TRAIN_PER_CLASS


def test_batches_do_not_depend_on_workers_or_on_where_training_starts(folder):
    def draw(workers: int, start: int, stop: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
        batches = streamed(folder, workers).batches(7, [11], stop)
        return [batches(i)[0] for i in range(start, stop)]

    with_two = draw(2, 0)
    for other in (draw(0, 0), draw(1, 0)):
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                   for a, b in zip(with_two, other))
    # Resuming at iteration 4 (an epoch of 21 training images is 3 batches of 7) draws
    # the same batches as the run that got there.
    assert all(torch.equal(a[0], b[0]) for a, b in zip(with_two[4:], draw(2, 4)))
    # Augmented: a batch is not the plain evaluation images, and epochs differ in order.
    labels = [set(y.tolist()) for _, y in with_two]
    assert with_two[0][0].shape == (7, 3, SIDE, SIDE) and labels[0] <= set(range(CLASSES))
    assert not torch.equal(with_two[0][1], with_two[3][1]) or not torch.equal(
        with_two[0][0], with_two[3][0])


def test_shards_of_the_ranks_make_up_the_whole_batch(folder):
    data = streamed(folder, 0)
    whole = data.batches(6, [3], 4)(2)[0]
    shares = [data.batches(6, [3], 4, shard=(rank, 2))(2)[0] for rank in (0, 1)]
    assert torch.equal(torch.cat([x for x, _ in shares]), whole[0])
    assert torch.equal(torch.cat([y for _, y in shares]), whole[1])


def test_streamed_evaluation_covers_each_split_once(folder):
    data = streamed(folder, 2)
    data.eval_batch_size = 5
    validation = list(data.evaluation("validation"))
    test = list(data.evaluation("test"))
    assert sum(len(y) for _, y in validation) == 3 and sum(len(y) for _, y in test) == 12
    assert [len(y) for _, y in test] == [5, 5, 2]
    assert data.sizes() == {"train": 21, "validation": 3, "test": 12}


def spec_data(root: Path, storage: str) -> dict:
    return {
        "experiment": {"name": f"folder-{storage}", "seed": 0},
        "model": {"name": "conv", "depth": 2, "width": 4, "hidden": [16]},
        "dataset": {"name": "imagefolder", "root": str(root), "image_size": SIDE, "resize": SIDE,
                    "validation": 3, "storage": storage, "workers": 2, "augment": False,
                    "eval_batch_size": 4},
        "training": {"optimizer": "adam", "lr": 3e-3, "batch_size": 6, "duration": "8it",
                     "eval_every": 4},
        "pruning": {"levels": 1},
        "controls": {"reinit": False, "random_prune": False},
        "tracking": {"log_models": "none"},
        "report": {"enabled": False},
    }


def test_streamed_training_equals_in_memory_training(folder, registry, plugins, tracking_uri):
    """Without augmentation both paths see the same images: the same metrics and masks."""
    finished = {storage: run_experiment(build_spec(spec_data(folder, storage), registry),
                                        plugins, tracking_uri)
                for storage in ("memory", "stream")}
    client = MlflowClient(tracking_uri)
    metrics = {}
    for storage, result in finished.items():
        children = [b for level in result.levels for b in level.branches]
        assert [(b.level, b.branch) for b in children] == [(0, "ticket"), (1, "ticket")]
        metrics[storage] = [client.get_run(b.run_id).data.metrics for b in children]
        masks = [b.mask for b in children]
        if storage == "memory":
            memory_masks = masks
        else:
            assert all(torch.equal(a[k], b[k]) for a, b in zip(memory_masks, masks) for k in a)
    for memory, stream in zip(metrics["memory"], metrics["stream"]):
        assert memory.keys() == stream.keys()
        assert all(memory[k] == pytest.approx(stream[k], rel=1e-4, abs=1e-5) for k in memory), (
            memory, stream)


def test_a_missing_folder_is_a_one_line_error(tmp_path, write_spec):
    spec = spec_data(tmp_path / "nowhere", "stream")
    result = CliRunner().invoke(app, ["run", str(write_spec(spec)), "--tracking-uri",
                                      f"sqlite:///{tmp_path / 'm.db'}"])
    assert result.exit_code == 2, result.output
    assert "dataset.root: no folder" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("storage", ["memory", "stream"])
def test_an_unreadable_image_is_a_one_line_error_naming_it(folder, tmp_path, write_spec,
                                                           tracking_uri, storage):
    broken = folder / "train" / "class1" / "3.png"
    broken.write_bytes(b"not an image")
    result = CliRunner().invoke(app, ["run", str(write_spec(spec_data(folder, storage))),
                                      "--tracking-uri", tracking_uri])
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert f"dataset.root: {broken} is not a readable image" in last, result.output
    assert "Traceback" not in result.output
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert all(r.info.status != "RUNNING" for r in runs)  # nothing left half-written
