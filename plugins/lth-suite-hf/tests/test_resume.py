"""An hf experiment interrupted mid-level resumes to the tickets of an uninterrupted one."""

from __future__ import annotations

from test_hf_plugin import lm_spec

import lth_suite_hf
from lth_suite.launch.execute import run_experiment
from lth_suite.spec.loading import build_spec
from lth_suite.testing import fail_then_resume


def branches(finished) -> dict:
    """(replicate, level, branch) -> (mask, metric history) of a finished experiment."""
    return {(b.replicate, b.level, b.branch): (b.mask, b.result.history)
            for event in finished.levels for b in event.branches}


def test_a_failed_gpt2_experiment_resumes_to_the_same_tickets(plugins, corpus, tmp_path,
                                                              monkeypatch):
    data = {**lm_spec(corpus, tmp_path, controls={"reinit": False, "random_prune": False}),
            "report": {"enabled": False}}
    alone = branches(run_experiment(build_spec(data, plugins.registry), plugins,
                                    f"sqlite:///{tmp_path / 'alone.db'}"))
    resumed = fail_then_resume(data, [lth_suite_hf], f"sqlite:///{tmp_path / 'flaky.db'}",
                               {"reinit": False, "random_prune": False})
    found = branches(resumed)
    assert found[(0, 1, "flaky")][0].equals(found[(0, 1, "ticket")][0])
    found = {key: value for key, value in found.items() if key[2] != "flaky"}
    assert sorted(found) == sorted(alone)
    for key, (mask, history) in alone.items():
        assert found[key][0].equals(mask), key
        assert found[key][1] == history, key  # perplexities too, bit for bit
        assert any("val_perplexity" in row for row in history)
    restored = {(b.level, b.branch) for e in resumed.levels for b in e.branches if b.restored}
    assert (0, "ticket") in restored and (1, "flaky") not in restored
