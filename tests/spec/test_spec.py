"""The spec: Duration, validation errors, overrides and the spec hash."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from lth_suite.errors import LthError, SpecError
from lth_suite.spec.loading import (
    apply_overrides,
    build_spec,
    canonical,
    load_spec,
    read_yaml,
    spec_hash,
    to_yaml,
)
from lth_suite.spec.sections import ComponentSpec, Duration, ExperimentSpec, Training

REPO = Path(__file__).parents[2]
QUICKSTART = REPO / "specs" / "quickstart.yaml"
# Regression pin: the hash names the experiment and is the resume key, so any change to
# what goes into it (field names, defaults, serialisation) must be deliberate. If
# specs/quickstart.yaml itself changes, recompute with `lth-suite validate specs/quickstart.yaml`.
QUICKSTART_HASH = "693572e07c8ed10e"  # training.threads defaults to auto


def problems(data, registry) -> dict[str, str]:
    """Field path -> message of every problem in a spec mapping (none: empty dict)."""
    try:
        build_spec(data, registry)
    except SpecError as exc:
        return dict(exc.problems)
    return {}


# --- Duration -----------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "unit", "amount", "text"), [
    ("50000it", "it", 50000, "50000it"),
    ("40ep", "ep", 40, "40ep"),
    ("0.5ep", "ep", 0.5, "0.5ep"),
    (" 7 it ", "it", 7, "7it"),
    (1200, "it", 1200, "1200it"),
    (0, "it", 0, "0it"),
])
def test_duration_parses(raw, unit, amount, text):
    duration = Duration.parse(raw)
    assert (duration.unit, duration.amount, str(duration)) == (unit, amount, text)
    assert Duration.parse(str(duration)) == duration  # str round-trips


@pytest.mark.parametrize("raw", [
    "10 apples", "ten ep", "", "ep", "5", "-5it", "1.5it", -3, True, False, 2.5, None,
    [10], "1e3it", float("nan"),
])
def test_duration_rejects(raw):
    with pytest.raises(ValueError):
        Duration.parse(raw)


def test_duration_to_iterations():
    assert Duration.parse("50000it").to_iterations(999) == 50000
    assert Duration.parse(300).to_iterations(7) == 300
    assert Duration.parse("40ep").to_iterations(21) == 840
    assert Duration.parse("0.5ep").to_iterations(20) == 10
    assert Duration.parse("2.5ep").to_iterations(4) == 10


def test_duration_equality_and_hash_are_by_value():
    assert Duration.parse("40ep") == Duration.parse("40.0ep") == Duration(40, "ep")
    assert Duration.parse("40ep") != Duration.parse("40it")
    assert Duration.parse(40) == Duration.parse("40it")
    assert len({Duration.parse("3ep"), Duration.parse("3.0ep"), Duration.parse("3it")}) == 2


def test_duration_in_the_spec_serialises_as_text():
    training = Training(duration="40ep", schedule={"milestones": [100, "2ep"]})
    dumped = training.model_dump(mode="json")
    assert dumped["duration"] == "40ep"
    assert dumped["schedule"]["milestones"] == ["100it", "2ep"]
    assert Training.model_validate(dumped) == training


@pytest.mark.parametrize("raw", [0, "0it", "0ep", "0.0ep"])
def test_training_duration_must_be_positive(raw):
    with pytest.raises(ValidationError, match="greater than 0"):
        Training(duration=raw)


# --- validation errors ----------------------------------------------------------------

@pytest.mark.parametrize(("section", "fields", "path"), [
    ("training", {"lrr": 0.1}, "training.lrr"),
    ("training", {"lr": "abc"}, "training.lr"),
    ("training", {"lr": 0}, "training.lr"),
    ("training", {"lr": -0.1}, "training.lr"),
    ("training", {"lr": float("inf")}, "training.lr"),
    ("training", {"lr": float("nan")}, "training.lr"),
    ("training", {"batch_size": 0}, "training.batch_size"),
    ("training", {"momentum": 1.0}, "training.momentum"),
    ("training", {"optimizer": "adamx"}, "training.optimizer.name"),
    ("training", {"duration": "10 apples"}, "training.duration"),
    ("training", {"duration": "0it"}, "training.duration"),
    ("training", {"schedule": {"gamma": float("inf")}}, "training.schedule.gamma"),
    ("pruning", {"levels": 0}, "pruning.levels"),
    ("pruning", {"fraction": {"linear": 0}}, "pruning.fraction.linear"),
    ("pruning", {"fraction": {"linear": 1}}, "pruning.fraction.linear"),
    ("pruning", {"fraction": {"conv": 1.5}}, "pruning.fraction.conv"),
    ("pruning", {"fraction": {"output": -0.1}}, "pruning.fraction.output"),
    ("pruning", {"scope": "per-layer"}, "pruning.scope"),
    ("experiment", {"replicates": 0}, "experiment.replicates"),
    ("experiment", {"seed": -1}, "experiment.seed"),
    ("experiment", {"seed": 1.5}, "experiment.seed"),
    ("model", {"hidden": "abc"}, "model.hidden"),
    ("model", {"hiden": [3]}, "model.hiden"),
    ("rewind", {"name": "step"}, "rewind.iteration"),
    ("rewind", {"name": "step", "iteration": "5 apples"}, "rewind.iteration"),
])
def test_bad_field_is_named(tiny, registry, section, fields, path):
    base = tiny[section] if isinstance(tiny[section], dict) else {"name": tiny[section]}
    tiny[section] = {**base, **fields}
    found = problems(tiny, registry)
    assert list(found) == [path], found


def test_unknown_field_message(tiny, registry):
    tiny["training"]["lrr"] = 0.1
    assert problems(tiny, registry) == {"training.lrr": "unknown field"}
    tiny["training"].pop("lrr")
    tiny["colour"] = "blue"
    assert problems(tiny, registry) == {"colour": "unknown field"}


def test_unknown_plugin_lists_known_names(tiny, registry):
    tiny["pruning"]["criterion"] = "magnitud"
    assert problems(tiny, registry) == {
        "pruning.criterion.name":
            "unknown criterion 'magnitud' (known: channel_refill, lamp, magnitude, random, wanda)"}


def test_bad_plugin_param(tiny, registry):
    tiny["pruning"]["criterion"] = {"name": "magnitude", "fracton": 0.2}
    assert problems(tiny, registry) == {"pruning.criterion.fracton": "unknown field"}


def test_component_without_name(tiny, registry):
    tiny["model"] = {"hidden": [3]}
    assert problems(tiny, registry) == {"model.name": "Field required"}


def test_every_problem_reported_in_one_pass(tiny, registry):
    """Core-field errors must not hide plugin errors (and vice versa)."""
    tiny["training"]["lr"] = "abc"
    tiny["pruning"]["levels"] = 0
    tiny["pruning"]["criterion"] = "magnitud"
    tiny["model"]["hidden"] = "wide"
    tiny["analyzers"] = ["nope", {"name": "layer_density", "x": 1}]
    found = problems(tiny, registry)
    assert set(found) == {"training.lr", "pruning.levels", "pruning.criterion.name",
                          "model.hidden", "analyzers.0.name", "analyzers.1.x"}
    assert "known: channel_refill, lamp, magnitude, random" in found["pruning.criterion.name"]


def test_spec_error_lines_name_the_source(tiny, registry):
    tiny["training"]["lr"] = -1
    tiny["pruning"]["levels"] = 0
    with pytest.raises(SpecError) as info:
        build_spec(tiny, registry, source="my.yaml")
    lines = info.value.lines()
    assert len(lines) == 2
    assert all(line.startswith("my.yaml: ") for line in lines)
    assert any(line.startswith("my.yaml: training.lr: ") for line in lines)
    assert isinstance(info.value, LthError) and info.value.exit_code == 2


@pytest.mark.parametrize(("data", "expected"), [
    ({"training": None}, {"training": "expected a mapping of fields, got nothing (null)"}),
    ({"pruning": [1]}, {"pruning": "expected a mapping of fields, got a list"}),
    ({"model": 5}, {"model": "expected a name or a mapping of fields, got a number"}),
    ({"analyzers": ["layer_density", ["x"]]},
     {"analyzers.1": "expected a name or a mapping of fields, got a list"}),
])
def test_wrong_shape_messages_are_plain(registry, data, expected):
    assert problems(data, registry) == expected


def test_nesterov_needs_momentum(tiny, registry):
    tiny["training"].update(optimizer="sgd", nesterov=True)
    assert "training" in problems(tiny, registry)
    tiny["training"]["momentum"] = 0.9
    assert problems(tiny, registry) == {}


def test_component_forms_are_equivalent(registry):
    bare = build_spec({"pruning": {"criterion": "random"}}, registry)
    flat = build_spec({"pruning": {"criterion": {"name": "random"}}}, registry)
    nested = build_spec({"pruning": {"criterion": {"name": "random", "params": {}}}}, registry)
    assert bare == flat == nested
    assert bare.pruning.criterion == ComponentSpec(name="random")


def test_plugin_defaults_are_filled(registry):
    spec = build_spec({"model": "mlp"}, registry)
    defaults = registry.get("architecture", "mlp").params_model().model_dump(mode="json")
    assert spec.model.params == defaults and defaults["hidden"] == [300, 100]
    spec = build_spec({"rewind": {"name": "step", "iteration": "2ep"}}, registry)
    assert spec.rewind.params == {"iteration": "2ep"}


# --- YAML and overrides ---------------------------------------------------------------

def test_read_yaml_errors(write_spec, tmp_path):
    bad = write_spec("training:\n  lr: [1\n  x: 2\n")
    with pytest.raises(LthError, match=r"line 3, column \d+"):
        read_yaml(bad)
    with pytest.raises(LthError, match="must be a mapping"):
        read_yaml(write_spec("- a\n- b\n"))
    with pytest.raises(LthError, match="cannot read spec"):
        read_yaml(tmp_path / "missing.yaml")
    with pytest.raises(LthError, match="cannot read spec"):
        read_yaml(tmp_path)  # a folder
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00training")
    with pytest.raises(LthError, match="not UTF-8"):
        read_yaml(binary)
    with pytest.raises(LthError, match="line 1, column"):  # no arbitrary objects
        read_yaml(write_spec("a: !!python/object/apply:os.system [echo]\n"))
    for empty in ("", "# only a comment\n", "{}\n"):  # not a silent run of every default
        with pytest.raises(LthError, match="the spec is empty"):
            read_yaml(write_spec(empty))


def test_overrides(tiny):
    data = apply_overrides(tiny, [
        "training.lr=0.01",
        "pruning.criterion=random",
        "model.hidden=[10, 5]",
        "tracking.experiment=exp=1",  # only the first '=' splits
        "controls.reinit=false",
    ])
    assert data["training"]["lr"] == 0.01
    assert data["pruning"]["criterion"] == "random"
    assert data["model"] == {"name": "mlp", "hidden": [10, 5]}
    assert data["tracking"]["experiment"] == "exp=1"
    assert data["controls"]["reinit"] is False
    assert tiny["training"]["lr"] == 3e-3, "the input mapping must not change"


def test_override_creates_sections_and_expands_bare_names():
    data = apply_overrides({"rewind": "init"}, [
        "training.schedule.gamma=0.5", "rewind.name=step", "rewind.iteration=2ep"])
    assert data == {"training": {"schedule": {"gamma": 0.5}},
                    "rewind": {"name": "step", "iteration": "2ep"}}


@pytest.mark.parametrize(("override", "message"), [
    ("training.lr", "expected KEY=VALUE"),
    ("=3", "expected KEY=VALUE"),
    ("training.lr=[1", "invalid YAML"),
    ("training.lr.x=1", "lr is not a section"),
])
def test_bad_overrides(tiny, override, message):
    with pytest.raises(LthError, match=message):
        apply_overrides(tiny, [override])


def test_load_spec_applies_overrides(write_spec, tiny, registry):
    path = write_spec(tiny)
    spec = load_spec(path, registry, ["training.lr=0.01", "model.hidden=[10,5]",
                                      "pruning.criterion=random"])
    assert spec.training.lr == 0.01
    assert spec.model.params["hidden"] == [10, 5]
    assert spec.pruning.criterion.name == "random"
    with pytest.raises(SpecError) as info:
        load_spec(path, registry, ["training.lrr=1"])
    assert info.value.problems == [("training.lrr", "unknown field")]
    assert info.value.source == str(path)


# --- hash -----------------------------------------------------------------------------

def test_hash_is_stable_and_short(tiny, registry):
    first = spec_hash(build_spec(tiny, registry))
    assert first == spec_hash(build_spec(copy.deepcopy(tiny), registry))
    assert len(first) == 16 and int(first, 16) >= 0


def test_hash_ignores_written_out_defaults(registry):
    implicit = build_spec({}, registry)
    explicit_data = yaml.safe_load(to_yaml(implicit))  # every default written out
    assert explicit_data["model"]["hidden"] == [300, 100]
    explicit = build_spec(explicit_data, registry)
    assert explicit == implicit
    assert spec_hash(explicit) == spec_hash(implicit)
    partly = build_spec({"training": {"lr": 1.2e-3, "duration": "50000it"},
                         "model": {"name": "mlp", "dropout": 0},
                         "pruning": {"criterion": {"name": "magnitude"}}}, registry)
    assert spec_hash(partly) == spec_hash(implicit)


def test_hash_ignores_key_order(tiny, registry):
    reordered = {key: tiny[key] for key in reversed(list(tiny))}
    reordered["training"] = dict(reversed(list(tiny["training"].items())))
    assert spec_hash(build_spec(reordered, registry)) == spec_hash(build_spec(tiny, registry))


@pytest.mark.parametrize("override", [
    "training.lr=0.004", "training.duration=41it", "training.batch_size=61",
    "training.schedule.gamma=0.5", "pruning.levels=3", "pruning.criterion=random",
    "model.hidden=[32,17]", "experiment.seed=1", "controls.reinit=false",
    "rewind.name=lr",
])
def test_hash_changes_with_what_changes_results(tiny, registry, override):
    changed = build_spec(apply_overrides(tiny, [override]), registry)
    assert spec_hash(changed) != spec_hash(build_spec(tiny, registry))


@pytest.mark.parametrize("override", [
    "tracking.uri=sqlite:///elsewhere.db", "tracking.experiment=other",
    "tracking.log_models=none", "tracking.log_state_dicts=false",
])
def test_hash_ignores_tracking(tiny, registry, override):
    changed = build_spec(apply_overrides(tiny, [override]), registry)
    assert changed != build_spec(tiny, registry)
    assert spec_hash(changed) == spec_hash(build_spec(tiny, registry))
    assert "tracking" not in canonical(changed)


def test_quickstart_hash_is_pinned(registry):
    spec = load_spec(QUICKSTART, registry)
    assert spec_hash(spec) == QUICKSTART_HASH


def test_to_yaml_round_trips(tiny_spec, registry):
    again = build_spec(yaml.safe_load(to_yaml(tiny_spec)), registry)
    assert again == tiny_spec
    assert isinstance(again, ExperimentSpec)
