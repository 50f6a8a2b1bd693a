"""docs/plugins.md documents the whole extension surface of lth_suite/plugins/hookspecs.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"


def declared_hooks() -> list[str]:
    """Functions of lth_suite/plugins/hookspecs.py marked ``@hookspec`` (bare or called)."""
    tree = ast.parse((ROOT / "lth_suite" / "plugins" / "hookspecs.py").read_text())
    hooks = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if isinstance(target, ast.Name) and target.id == "hookspec":
                hooks.append(node.name)
    return hooks


def documented_hooks() -> dict[str, list[str]]:
    """Hook name -> argument names, from the doc's ``### `hook(args)``` headings."""
    found = re.findall(r"^### `(lth_\w+)\(([^)]*)\)`", DOC.read_text(), re.M)
    return {name: [a.strip() for a in args.split(",") if a.strip()] for name, args in found}


def test_hookspecs_are_found():
    hooks = declared_hooks()
    assert "lth_register_criteria" in hooks and "lth_experiment_finished" in hooks


def test_every_hook_is_documented_with_its_arguments():
    tree = ast.parse((ROOT / "lth_suite" / "plugins" / "hookspecs.py").read_text())
    arguments = {node.name: [a.arg for a in node.args.args] for node in tree.body
                 if isinstance(node, ast.FunctionDef)}
    documented = documented_hooks()
    for hook in declared_hooks():
        assert hook in documented, f"docs/plugins.md has no '### `{hook}(...)`' section"
        assert documented[hook] == arguments[hook], hook
    # and nothing stale: every documented hook still exists
    assert set(documented) <= set(declared_hooks())


def test_doc_covers_the_conventions_and_is_linked_from_the_readme():
    text = DOC.read_text()
    for needle in ('extra="forbid"', "[project.entry-points.lth_suite]", "lth_suite.provides",
                   "LTH_SUITE_LOAD_PLUGINS", "failed to load", "installed=False", "PluginFailure"):
        assert needle in text, needle
    readme = (ROOT / "README.md").read_text()
    plugins_section = readme.split("## Plugins\n", 1)[1].split("\n## ", 1)[0]
    assert "(docs/plugins.md)" in plugins_section
    assert "lth-suite-pai" in plugins_section and "lth-suite-example" in plugins_section


def test_hookspecs_are_grouped_by_lifecycle():
    """Registration hooks under their banner, then experiment events under theirs (pytest's way)."""
    source = (ROOT / "lth_suite" / "plugins" / "hookspecs.py").read_text()
    registration = source.index("# Registration hooks (called once when plugins load)")
    events = source.index("# Experiment events (called while an experiment runs)")
    assert registration < events
    for hook in declared_hooks():
        where = source.index(f"def {hook}(")
        if hook.startswith("lth_register_"):
            assert registration < where < events, hook
        else:
            assert events < where, hook
    text = DOC.read_text()  # the doc keeps the same two groups, in the same order
    assert text.index("## Registration hooks") < text.index("## Experiment events")
