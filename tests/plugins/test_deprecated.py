"""Old import paths: each still gives the lth_suite.api object, with a DeprecationWarning.

pyproject's filterwarnings ignores DeprecationWarning, so every check here records
warnings explicitly.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

import pytest

import lth_suite
import lth_suite.api as api
from lth_suite.deprecated import ALIASES, API, NOT_API, message, removal_version
from lth_suite.plugins.manager import load_plugins
from lth_suite.spec.loading import build_spec

ROOT = Path(__file__).resolve().parents[2]
OLD_NAMES = [(module, name) for module, names in ALIASES.items() for name in names]


def test_removal_version_is_the_next_minor():
    assert removal_version("0.1.0") == "0.2.0"
    assert removal_version("1.9.3") == "1.10.0"
    assert removal_version("2.0.0rc1") == "2.1.0"
    assert removal_version() == removal_version(lth_suite.__version__)


@pytest.mark.parametrize(("module", "name"), OLD_NAMES, ids=[f"{m}.{n}" for m, n in OLD_NAMES])
def test_an_old_name_warns_and_is_the_api_object(module, name):
    old = importlib.import_module(module)
    with pytest.warns(DeprecationWarning) as record:
        value = getattr(old, name)
    [warning] = [w for w in record if issubclass(w.category, DeprecationWarning)]
    new = NOT_API.get((module, name), API)
    assert str(warning.message) == (f"{module}.{name} is deprecated: import it from {new}; "
                                    f"the alias goes in version {removal_version()}")
    assert warning.filename == __file__  # points at the caller, not at the alias machinery
    if (module, name) in NOT_API:
        assert name not in api.__all__
        assert value is getattr(importlib.import_module(new), name)
    else:
        assert name in api.__all__
        assert value is getattr(api, name)


def test_from_import_of_an_old_name_warns_at_the_importing_line():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        from lth_suite.masks import keep_top  # noqa: F401
    assert [str(w.message) for w in record] == [message("lth_suite.masks", "keep_top")]
    assert record[0].filename == __file__
    assert keep_top is api.keep_top


def test_an_unknown_old_name_is_an_attribute_error():
    import lth_suite.masks

    with pytest.raises(AttributeError, match="module 'lth_suite.masks' has no attribute 'nope'"):
        lth_suite.masks.nope  # noqa: B018
    with pytest.raises(ImportError):
        from lth_suite.training import no_such_name  # noqa: F401


def test_packages_keep_their_submodules():
    """The package __getattr__ must not hide a submodule that was not imported yet."""
    from lth_suite.analysis import similarity
    from lth_suite.pruning import targets

    assert targets.PruneRequest is api.PruneRequest and similarity.__name__.endswith("similarity")


def test_old_paths_cost_no_torch_until_a_name_is_used():
    """A plugin's hook module importing an old path stays as light as one importing the api."""
    code = textwrap.dedent("""
        import sys, warnings
        warnings.simplefilter("error")
        import lth_suite.hookspecs, lth_suite.registry, lth_suite.masks, lth_suite.pruning
        import lth_suite.rewinding, lth_suite.events, lth_suite.training, lth_suite.analysis
        import lth_suite.data, lth_suite.launching
        print(sorted(m for m in ("torch", "mlflow", "lth_suite.api") if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]", result.stderr


OLD_PLUGIN = '''
"""A plugin written against the imports lth-suite documented before its layout by domain."""
from pydantic import BaseModel, ConfigDict, Field

from lth_suite.hookspecs import hookimpl
from lth_suite.masks import keep_top
from lth_suite.registry import NoParams, lazy


class PowerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    power: float = Field(default=1.0, gt=0, description="scores are |w| ** power")


def power_magnitude(params):
    def criterion(request):
        weights = dict(request.model.named_parameters())
        scores = {n: weights[n].detach().abs() ** params.power for n in request.mask}
        return keep_top(scores, request.mask, request.groups)
    return criterion


@hookimpl
def lth_register_criteria(register):
    register("power_magnitude", power_magnitude, PowerParams, "keeps the largest |w|^power")


@hookimpl
def lth_register_rewinds(register):
    register("old_init", lazy("lth_suite.builtin.rewinds.strategies:rewind_to_init"), NoParams, "x")
'''


def test_a_plugin_written_with_the_old_imports_loads(tmp_path, monkeypatch, tiny):
    (tmp_path / "old_style_plugin.py").write_text(OLD_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "old_style_plugin", raising=False)
    with pytest.warns(DeprecationWarning) as record:
        module = importlib.import_module("old_style_plugin")
    warned = {str(w.message).split(" is deprecated")[0] for w in record
              if issubclass(w.category, DeprecationWarning)}
    assert warned == {"lth_suite.hookspecs.hookimpl", "lth_suite.masks.keep_top",
                      "lth_suite.registry.NoParams", "lth_suite.registry.lazy"}
    plugins = load_plugins(extra=[module], installed=False)
    assert plugins.infos["old_style_plugin"].provides == {"criterion": ["power_magnitude"],
                                                          "rewind": ["old_init"]}
    tiny["pruning"]["criterion"] = {"name": "power_magnitude", "power": 2}
    spec = build_spec(tiny, plugins.registry)
    assert spec.pruning.criterion.params == {"power": 2.0}
    assert callable(plugins.registry.build("criterion", "power_magnitude", {"power": 2}))


def test_the_deprecations_page_lists_every_alias():
    page = (ROOT / "docs" / "deprecations.md").read_text()
    rows = set(re.findall(r"^\| `([\w.]+)` \| `([\w.]+)` \|", page, flags=re.MULTILINE))
    assert rows == {(f"{m}.{n}", new_path) for m, n in OLD_NAMES
                    for new_path in [f"{NOT_API.get((m, n), API)}.{n}"]}
    assert f"version {removal_version()}" in page


def test_alias_modules_are_only_aliases():
    """An old top-level module holds its __getattr__ and nothing a plugin could grow onto."""
    for module in ALIASES:
        path = ROOT / Path(*module.split(".")).with_suffix(".py")
        if path.exists():  # a package's own __init__ is checked by the parametrized test
            loaded = importlib.import_module(module)
            public = {n for n, v in vars(loaded).items() if not n.startswith("_")
                      and not isinstance(v, types.ModuleType)}
            assert public == set(), module
