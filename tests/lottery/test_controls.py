"""Controls are plugins: every built-in control on a tiny experiment, and what each one's
start is made of."""

from __future__ import annotations

import copy

import pytest
import torch

from lth_suite.api import ControlContext, ControlStart, Mask, RewindPoint, SpecError
from lth_suite.launch.execute import run_experiment
from lth_suite.plugins.manager import load_plugins
from lth_suite.spec.loading import build_spec
from lth_suite.testing import TINY

ALL = ("reinit", "random_prune", "signed_reinit", "signed_constant", "inverted", "oneshot")


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """The tiny experiment with every built-in control that magnitude pruning allows."""
    data = copy.deepcopy(TINY)
    data["controls"] = {**dict.fromkeys(ALL, True), "rewind_step": {"at": "20it"}}
    plugins = load_plugins(installed=False)
    spec = build_spec(data, plugins.registry)
    uri = f"sqlite:///{tmp_path_factory.mktemp('controls') / 'store.db'}"
    return run_experiment(spec, plugins, uri)


def test_every_control_trains_at_every_pruned_level_with_the_tickets_per_layer_counts(finished):
    for event in finished.levels[1:]:
        ticket = event.of("ticket")[0].mask
        for control in ALL:
            (result,) = event.of(control)
            assert result.mask.kept() == ticket.kept(), (event.level, control)
    assert not finished.levels[0].of("reinit")  # a dense level 0 has no controls


def test_controls_that_vary_the_weights_keep_the_tickets_mask(finished):
    for event in finished.levels[1:]:
        ticket = event.of("ticket")[0].mask
        for control in ("reinit", "signed_reinit", "signed_constant"):
            assert event.of(control)[0].mask.equals(ticket), control
        assert not event.of("random_prune")[0].mask.equals(ticket)


def test_oneshot_is_the_ticket_at_level_1_and_inverted_its_mirror(finished):
    first, last = finished.levels[1], finished.levels[-1]
    assert first.of("oneshot")[0].mask.equals(first.of("ticket")[0].mask)
    oneshot, inverted = last.of("oneshot")[0].mask, last.of("inverted")[0].mask
    for name, keep in oneshot.items():  # the top and the bottom of one ranking per layer
        kept = int(keep.sum())
        assert int((keep & inverted[name]).sum()) == max(0, 2 * kept - keep.numel()), name
    assert not oneshot.equals(last.of("ticket")[0].mask)  # iterative is not one-shot


def test_rewind_step_trains_the_tickets_mask_from_the_dense_weights_at_k(finished):
    dense = finished.levels[0].of("ticket")[0].result.history
    for event in finished.levels[1:]:
        (rewound,) = event.of("rewind_step")
        assert rewound.mask.equals(event.of("ticket")[0].mask)
        first = rewound.result.history[0]
        assert first["iteration"] == 20 and "train_loss" not in first
        # the dense training's weights at 20, masked: not the dense evaluation at 20
        assert first != next(row for row in dense if row["iteration"] == 20)


def test_a_control_capture_beyond_the_training_is_a_spec_error(plugins):
    from lth_suite.lottery.experiment import prepare

    data = copy.deepcopy(TINY)
    data["controls"] = {"rewind_step": {"at": "41it"}}
    with pytest.raises(SpecError, match=r"controls\.rewind_step: iteration 41 is beyond"):
        prepare(build_spec(data, plugins.registry), plugins)


def test_the_summary_has_a_column_per_control(finished):
    row = finished.summary[-1]
    for control in ALL:
        assert f"{control}/early_stop_test_accuracy" in row


def _context(control: str, mask: Mask, init: dict[str, torch.Tensor]) -> ControlContext:
    """A context around one linear layer, for checking a control's start by hand."""
    return ControlContext(
        replicate=0, level=1, mask=mask, base_mask=mask, point=RewindPoint(init, 7, None),
        init_state=init, trained_state=init, dense_state=init, layers=[], criterion=None,
        data=None, config=None, seed=1, generator=torch.Generator().manual_seed(1),
        build_state=lambda seed: {k: torch.randn(v.shape, generator=torch.Generator()
                                                 .manual_seed(seed)) for k, v in init.items()},
        random_like=lambda like, generator: like, request=None, seed_for=lambda salt: 2)


def test_signed_controls_keep_the_inits_signs_and_the_schedule_position():
    registry = load_plugins(installed=False).registry
    init = {"fc.weight": torch.randn(6, 5, generator=torch.Generator().manual_seed(0)),
            "fc.bias": torch.randn(6, generator=torch.Generator().manual_seed(3))}
    mask = Mask({"fc.weight": torch.rand(6, 5, generator=torch.Generator().manual_seed(4)) > 0.5})
    context = _context("x", mask, init)
    for name in ("signed_reinit", "signed_constant"):
        start = registry.build("control", name, {})(context)
        assert isinstance(start, ControlStart) and start.mask.equals(mask)
        weight = start.point.state["fc.weight"]
        assert torch.equal(torch.sign(weight), torch.sign(init["fc.weight"]))
        assert start.point.start_iteration == 7
        assert not torch.equal(weight, init["fc.weight"])
    constant = registry.build("control", "signed_constant", {})(context).point.state
    assert torch.allclose(constant["fc.weight"].abs(),
                          torch.full((6, 5), float(init["fc.weight"].std())))
    assert torch.equal(constant["fc.bias"], init["fc.bias"])  # only masked tensors change


def test_a_population_trains_controls_that_start_elsewhere_as_a_population_of_their_own(
        plugins, tracking_uri):
    data = copy.deepcopy(TINY)
    data["training"]["population"] = "on"
    data["pruning"]["levels"] = 1
    data["controls"] = {"rewind_step": {"at": "20it"}, "signed_constant": True}
    finished = run_experiment(build_spec(data, plugins.registry), plugins, tracking_uri)
    level = finished.levels[1]
    assert level.of("rewind_step")[0].result.history[0]["iteration"] == 20
    assert level.of("signed_constant")[0].result.history[0]["iteration"] == 0
