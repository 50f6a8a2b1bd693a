"""The same spec run again: said at start, a run name of its own, the newest reported."""

from __future__ import annotations

from lth_suite.launch.execute import Audience, start_experiment
from lth_suite.spec.loading import build_spec
from lth_suite.tracking import open_reader


class Notes(Audience):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        self.lines.append(text)


def test_an_identical_run_is_announced_and_named_apart(tiny, plugins, tracking_uri):
    tiny["pruning"]["levels"] = 1
    tiny["controls"] = {"reinit": False, "random_prune": False}
    tiny["tracking"]["log_models"] = "none"
    spec = build_spec(tiny, plugins.registry)
    heard = []
    for _ in range(3):
        notes = Notes()
        result = start_experiment(spec, plugins, tracking_uri, audience=notes)
        assert result.error is None
        heard.append((notes.lines, result.finished.parent_run_id))
    reader = open_reader(tracking_uri)
    (first_notes, first), (second_notes, second), (_, third) = heard
    assert first_notes == []
    assert second_notes == [f"an identical finished run exists: {first} "
                            f"({reader.run(first).name}); this makes another; "
                            "`lth-suite report tiny` uses the newest"]
    names = [reader.run(run).name for run in (first, second, third)]
    assert names[0].startswith("tiny-") and names[1:] == [f"{names[0]}-2", f"{names[0]}-3"]
    assert reader.find_experiment("tiny").run_id == third
