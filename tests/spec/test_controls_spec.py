"""The spec's ``controls`` mapping: names to true/false or params, over the defaults."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.errors import SpecError
from lth_suite.spec.loading import build_spec, canonical, spec_hash


def _spec(tiny, registry, controls):
    if controls is None:
        tiny.pop("controls")
    else:
        tiny["controls"] = controls
    return build_spec(tiny, registry)


def test_the_default_controls_keep_their_canonical_form_and_hash(tiny, registry):
    default = _spec(dict(tiny), registry, None)
    written = _spec(dict(tiny), registry, {"reinit": True, "random_prune": True})
    assert canonical(written)["controls"] == {"reinit": True, "random_prune": True}
    assert spec_hash(default) == spec_hash(written)
    # the controls section as it was before controls were plugins
    assert canonical(_spec(dict(tiny), registry, {"reinit": False}))["controls"] == {
        "reinit": False, "random_prune": True}


def test_a_control_left_out_or_turned_off_spells_the_same_experiment(tiny, registry):
    base = spec_hash(_spec(dict(tiny), registry, {}))
    assert spec_hash(_spec(dict(tiny), registry, {"oneshot": False})) == base
    assert spec_hash(_spec(dict(tiny), registry, {"reinit": {}})) == base
    oneshot = _spec(dict(tiny), registry, {"oneshot": True})
    assert spec_hash(oneshot) != base
    assert oneshot.controls.enabled() == ["reinit", "random_prune", "oneshot"]


def test_an_unknown_control_names_the_known_ones(tiny, registry):
    with pytest.raises(SpecError) as caught:
        _spec(tiny, registry, {"reinti": True})
    text = str(caught.value)
    assert "controls.reinti" in text and "unknown control 'reinti'" in text
    assert "signed_constant" in text


def test_an_unknown_control_param_names_the_field(tiny, registry):
    with pytest.raises(SpecError, match=r"controls\.oneshot\.at.*unknown field"):
        _spec(tiny, registry, {"oneshot": {"at": 3}})


def test_a_control_that_cannot_work_with_the_criterion_is_refused_in_one_line(write_spec, tiny):
    tiny["controls"] = {"random_labels": True}
    done = CliRunner().invoke(app, ["run", str(write_spec(tiny)), "--dry-run"])
    assert done.exit_code == 2, done.output
    assert "controls.random_labels" in done.output and "data-driven criterion" in done.output


def test_validate_exits_2_on_an_unknown_control(write_spec, tiny):
    tiny["controls"] = {"nope": True}
    done = CliRunner().invoke(app, ["validate", str(write_spec(tiny))])
    assert done.exit_code == 2
    assert "unknown control 'nope'" in done.output


def test_the_schema_lists_every_control_with_its_params(registry):
    from lth_suite.spec.loading import json_schema

    controls = json_schema(registry)["properties"]["controls"]
    assert set(controls["properties"]) == set(registry.names("control"))
    assert controls["additionalProperties"] is False
    boolean, params = controls["properties"]["rewind_step"]["oneOf"]
    assert boolean == {"type": "boolean"} and params["required"] == ["at"]
    assert "name" not in params["properties"]
