"""The `hf` architecture and `text` dataset in specs and runs."""

from __future__ import annotations

import pytest
import torch

from lth_suite.api import DataError, DataInfo, SpecError
from lth_suite.launch.execute import run_experiment
from lth_suite.lottery.experiment import prepare
from lth_suite.pruning.masks import Mask
from lth_suite.spec.loading import build_spec
from lth_suite_hf.testing import TINY_GPT2 as GPT2


def lm_spec(corpus, tmp_path, **changes):
    data = {
        "experiment": {"name": "gpt2", "seed": 0, "replicates": 1},
        "model": {"name": "hf", "auto": "causal_lm", "config": GPT2},
        "dataset": {"name": "text", "train": str(corpus), "block_size": 32,
                    "cache": str(tmp_path / "cache")},
        "task": "causal_lm",
        "training": {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.1, "batch_size": 8,
                     "duration": "6it", "eval_every": 3, "threads": 1},
        "pruning": {"levels": 1, "fraction": {"linear": 0.5}},
        "controls": {"reinit": True, "random_prune": False},
        "tracking": {"log_models": "none"},
        "device": "cpu",
    }
    data.update(changes)
    return data


def build(plugins, data):
    return prepare(build_spec(data, plugins.registry), plugins)


def test_conv1d_is_prunable_along_its_input_axis_and_embeddings_are_not(plugins, corpus, tmp_path):
    experiment = build(plugins, lm_spec(corpus, tmp_path))
    layers = {layer.name: layer for layer in experiment.layers}
    assert "transformer.h.0.attn.c_attn.weight" in layers
    assert layers["transformer.h.0.attn.c_attn.weight"].in_axis == 0  # (in, out): (32, 96)
    assert not any("wte" in n or "wpe" in n or "ln_" in n for n in layers)
    model = experiment.build_model(0)
    assert model.transformer.h[0].attn.c_attn.weight.shape == (32, 96)
    assert model.config.vocab_size == experiment.data.info.num_classes == 258


def test_tied_embeddings_share_one_mask_when_named(plugins, corpus, tmp_path):
    data = lm_spec(corpus, tmp_path, pruning={"levels": 1, "fraction": {
        "transformer.wte.weight": 0.5, "linear": None}})
    experiment = build(plugins, data)
    names = [layer.name for layer in experiment.layers]
    assert names.count("transformer.wte.weight") == 1 and "lm_head.weight" not in names
    model = experiment.build_model(0)
    assert model.lm_head.weight is model.transformer.wte.weight
    mask = Mask({**Mask.dense(model, experiment.layers),
                 "transformer.wte.weight": torch.rand(258, 32) > 0.5})
    mask.apply_(model)
    assert torch.equal(model.lm_head.weight == 0, ~mask["transformer.wte.weight"])


def test_the_text_dataset_packs_blocks_and_caches_them(plugins, corpus, tmp_path):
    experiment = build(plugins, lm_spec(corpus, tmp_path))
    data = experiment.data
    blocks = len(corpus.read_text().rstrip("\n").encode()) // 32  # lines joined by newlines
    assert sum(data.sizes().values()) == blocks
    assert data.x_train.dtype == torch.long and data.x_train.shape[1] == 32
    assert bytes(data.x_test[0].tolist()).decode() in corpus.read_text()
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    again = build(plugins, lm_spec(corpus, tmp_path))
    assert torch.equal(again.data.x_train, data.x_train)


def test_bad_files_and_columns_are_one_line_naming_them(plugins, corpus, labelled, tmp_path):
    with pytest.raises(DataError, match=r"dataset.train: .*nowhere.txt: no such file"):
        build(plugins, lm_spec(corpus, tmp_path, dataset={"name": "text", "train": "nowhere.txt"}))
    with pytest.raises(DataError, match=r"dataset.label_column: .* has no column 'lab'"):
        build(plugins, lm_spec(corpus, tmp_path, dataset={
            "name": "text", "train": str(labelled), "text_column": "sentence",
            "label_column": "lab", "cache": str(tmp_path / "c")}))
    with pytest.raises(SpecError, match="model_type"):
        build_spec(lm_spec(corpus, tmp_path, model={"name": "hf", "config": {"n_layer": 2}}),
                   plugins.registry)


def test_sequence_classification_reads_attention_masks(plugins, labelled, tokenizer_folder, tmp_path):
    from lth_suite_hf import HFParams
    from lth_suite_hf.models import build as build_hf

    data = {"name": "text", "train": str(labelled), "text_column": "sentence",
            "label_column": "label", "tokenizer": str(tokenizer_folder), "block_size": 16,
            "cache": str(tmp_path / "cache")}
    spec = lm_spec(labelled, tmp_path, dataset=data, task="sequence_classification",
                   model={"name": "hf", "auto": "sequence_classification",
                          "config": {**GPT2, "vocab_size": 64}})
    experiment = build(plugins, spec)
    x = experiment.data.x_train
    assert x.shape[1:] == (2, 16) and experiment.data.info.num_classes == 2
    assert bool((x[:, 1] == 0).any())  # padded rows
    torch.manual_seed(0)
    model = build_hf(HFParams(auto="sequence_classification", config={**GPT2, "vocab_size": 64}),
                     experiment.data.info).eval()
    row = x[:1].clone()
    length = int(row[0, 1].sum())
    assert length < 16
    with torch.no_grad():  # padded and masked: as if the sequence were alone, unpadded
        alone = model(input_ids=row[:, 0, :length]).logits
        assert torch.allclose(model(row), alone, atol=1e-5)
    finished = run_experiment(build_spec(spec, plugins.registry), plugins=plugins,
                              tracking_uri=f"sqlite:///{tmp_path / 's.db'}")
    assert finished.levels[1].of("ticket")[0].result.summary()["early_stop_test_accuracy"] >= 0


def test_a_gpt2_ticket_trains_with_perplexity_at_the_asked_density(plugins, corpus, tmp_path):
    uri = f"sqlite:///{tmp_path / 'lm.db'}"
    spec = build_spec(lm_spec(corpus, tmp_path), plugins.registry)
    finished = run_experiment(spec, plugins=plugins, tracking_uri=uri)
    ticket = finished.levels[1].of("ticket")[0]
    summary = ticket.result.summary()
    assert summary["early_stop_val_perplexity"] > 1
    history = ticket.result.history
    assert all(row["val_perplexity"] == pytest.approx(torch.tensor(row["val_loss"]).exp().item(),
                                                      rel=1e-6) for row in history)
    for name in ticket.mask:
        assert ticket.mask.layer_density()[name] == pytest.approx(0.5, abs=0.01)


def test_local_workers_train_an_hf_run_as_in_process(plugins, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "lth-suite-hf")  # the workers load it installed
    data = lm_spec(corpus, tmp_path)
    alone = run_experiment(build_spec(data, plugins.registry), plugins=plugins,
                           tracking_uri=f"sqlite:///{tmp_path / 'a.db'}")
    workers = run_experiment(build_spec({**data, "launcher": {"name": "local", "workers": 2}},
                                        plugins.registry),
                             plugins=plugins, tracking_uri=f"sqlite:///{tmp_path / 'b.db'}")
    for level in (0, 1):
        assert (workers.levels[level].of("ticket")[0].result.summary()
                == alone.levels[level].of("ticket")[0].result.summary())


def test_an_exported_ticket_loads_with_from_pretrained(plugins, corpus, tmp_path):
    from transformers import AutoModelForCausalLM

    from lth_suite.analysis.export import export_run
    from lth_suite.tracking import StoreReader

    uri = f"sqlite:///{tmp_path / 'e.db'}"
    data = lm_spec(corpus, tmp_path, controls={"reinit": False, "random_prune": False})
    data["tracking"] = {"log_models": "none", "log_state_dicts": True}
    finished = run_experiment(build_spec(data, plugins.registry), plugins=plugins, tracking_uri=uri)
    ticket = finished.levels[1].of("ticket")[0]
    mask = ticket.mask
    reader = StoreReader(uri)
    child = next(c for c in reader.children(finished.parent_run_id)
                 if c.name.endswith("level1-ticket"))
    result = export_run(reader, child.run_id, tmp_path / "out", plugins)
    folder = tmp_path / "out" / "pretrained"
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert any(f.parent == folder and "mask" in f.name for f in result.files)
    loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    experiment = build(plugins, data)
    model = experiment.build_model(0)
    model.load_state_dict(torch.load(tmp_path / "out" / "masked_state_dict.pt"))
    model.eval()
    tokens = experiment.data.x_test[:2]
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=tokens).logits, model(tokens), atol=1e-5)
    params = dict(loaded.named_parameters())
    for name, keep in mask.items():  # pruned weights stayed zero through training
        assert bool((params[name][~keep.cpu()] == 0).all()), name


def test_unknown_auto_class_is_a_spec_error(plugins, corpus, tmp_path):
    with pytest.raises(SpecError, match="model.auto"):
        build_spec(lm_spec(corpus, tmp_path, model={"name": "hf", "auto": "nonsense",
                                                    "config": GPT2}), plugins.registry)
    info = DataInfo("x", (8,), 10)
    assert info.tokenizer is None


@pytest.fixture(scope="module")
def finished_lm(plugins, corpus, tokenizer_folder, tmp_path_factory):
    """A tiny causal_lm ticket experiment with a tokenizer folder, its model logged."""
    folder = tmp_path_factory.mktemp("finished_lm")
    data = lm_spec(corpus, folder, controls={"reinit": False, "random_prune": False})
    data["dataset"]["tokenizer"] = str(tokenizer_folder)
    data["tracking"] = {"log_models": "final"}
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return data, uri, run_experiment(build_spec(data, plugins.registry), plugins, uri)


def test_the_report_gives_the_tasks_perplexity(finished_lm, tmp_path):
    from lth_suite.report import report

    _, uri, finished = finished_lm
    summary = report(finished.parent_run_id, uri, tmp_path / "report", log=False)
    text = (summary.folder / "summary.md").read_text()
    assert "## Test perplexity at the early-stop iteration" in text
    assert "perplexity_vs_weights.png" in {path.name for path in summary.files}
    perplexity = finished.levels[1].of("ticket")[0].summary["early_stop_test_perplexity"]
    assert f"{perplexity:.4g}" in text


def test_the_logged_model_is_in_mlflows_transformers_flavour(plugins, finished_lm, tmp_path):
    import mlflow.transformers
    from mlflow.tracking import MlflowClient

    data, uri, finished = finished_lm
    ticket = finished.levels[1].of("ticket")[0]
    client = MlflowClient(uri)
    folder = "ticket-r0-level1"  # the logged model's name
    assert folder in [a.path for a in client.list_artifacts(ticket.run_id)]
    mlmodel = client.download_artifacts(ticket.run_id, f"{folder}/MLmodel", str(tmp_path))
    assert "transformers:" in open(mlmodel).read()
    parts = mlflow.transformers.load_model(f"runs:/{ticket.run_id}/{folder}",
                                           return_type="components")
    reloaded = parts["model"].eval()
    experiment = build(plugins, data)
    network = experiment.build_model(0)
    state = client.download_artifacts(ticket.run_id, "state_dict.pt", str(tmp_path))
    network.load_state_dict(torch.load(state, weights_only=True))
    ids = torch.randint(0, reloaded.config.vocab_size, (2, 16))
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, network.eval()(ids), atol=1e-5)
    assert parts["tokenizer"] is not None


def save_gpt2(folder, **changes):
    """A tiny GPT-2 language model (bytes vocabulary) saved as a save_pretrained folder."""
    from transformers import AutoConfig, GPT2LMHeadModel

    torch.manual_seed(7)
    settings = {**GPT2, "vocab_size": 258, **changes}
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    model = GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    return model


def test_a_pretrained_folder_of_another_head_is_the_start_and_the_new_head_is_seeded(
        plugins, labelled, tmp_path):
    """The BERT-ticket setting: a language model's body under a new classification head."""
    saved = save_gpt2(tmp_path / "gpt2")
    data = {"name": "text", "train": str(labelled), "text_column": "sentence",
            "label_column": "label", "block_size": 16, "cache": str(tmp_path / "cache")}
    model = {"name": "hf", "auto": "sequence_classification", "config": str(tmp_path / "gpt2"),
             "pretrained": str(tmp_path / "gpt2")}
    experiment = build(plugins, lm_spec(labelled, tmp_path, dataset=data, model=model,
                                        task="sequence_classification"))
    assert any("score.weight" in note and "seeded" in note for note in experiment.notes)
    start, other = experiment.build_model(0), experiment.build_model(1)
    body = saved.transformer.state_dict()
    for name, tensor in start.transformer.state_dict().items():
        assert torch.equal(tensor, body[name]), name
    scratch = experiment.build_model(0, pretrained=False)
    assert torch.equal(start.score.weight, scratch.score.weight)  # the seeded head
    assert not torch.equal(start.score.weight, other.score.weight)  # per replicate
    assert not torch.equal(scratch.transformer.h[0].mlp.c_fc.weight,
                           start.transformer.h[0].mlp.c_fc.weight)


def test_a_pretrained_folder_that_does_not_fit_is_one_line(plugins, corpus, tmp_path):
    save_gpt2(tmp_path / "wide", n_embd=48)
    model = {"name": "hf", "auto": "causal_lm", "config": {**GPT2, "vocab_size": 258},
             "pretrained": str(tmp_path / "wide")}
    with pytest.raises(SpecError, match=r"model.pretrained: .*wide does not fit the model: "
                                        r"transformer\.h\.0\.attn\.c_attn\.bias \(144,\) != \(96,\)"):
        build(plugins, lm_spec(corpus, tmp_path, model=model))
    with pytest.raises(SpecError, match="model.pretrained: .*nowhere"):
        build(plugins, lm_spec(corpus, tmp_path, model={**model, "pretrained": str(
            tmp_path / "nowhere")}))
