"""Start-up: the CLI, the plugins and spec validation load without torch or mlflow."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from lth_suite.plugins.registry import LazyFactory, lazy
from lth_suite.testing import heavy_imports

ROOT = Path(__file__).resolve().parents[2]
def imported_after(code: str) -> list[str]:
    """The heavy top-level packages a fresh interpreter holds after running ``code``.

    LTH_SUITE_LOAD_PLUGINS is empty here (conftest): installed plugins may import what
    they like, the built-ins must not.
    """
    return heavy_imports(code, cwd=ROOT)


def test_cli_and_builtin_plugins_import_neither_torch_nor_mlflow():
    assert imported_after("""
        import lth_suite.cli, lth_suite.plugins.manager
        lth_suite.plugins.load_plugins()
    """) == []


def test_validating_a_spec_imports_neither_torch_nor_mlflow():
    assert imported_after(f"""
        from pathlib import Path
        from lth_suite.plugins.manager import load_plugins
        from lth_suite.spec.loading import json_schema, load_spec, spec_hash
        registry = load_plugins().registry
        spec = load_spec(Path({str(ROOT / "specs" / "quickstart.yaml")!r}), registry, [])
        spec_hash(spec)
        json_schema(registry)
    """) == []


def test_building_a_component_imports_its_implementation(registry):
    from lth_suite.builtin import architectures
    from lth_suite.training.data import DataInfo

    model = registry.build("architecture", "mlp", {"hidden": [8]}, DataInfo("t", (1, 4, 4), 3))
    assert type(model).__name__ == "MLP"
    # Models pickled before the networks moved name them in architectures.py: still found.
    assert architectures.MLP is type(model)
    with pytest.raises(AttributeError):
        architectures.NoSuchNetwork  # noqa: B018


def test_dataset_params_stay_importable_from_data():
    from lth_suite.plugins.params import DatasetParams as defined
    from lth_suite.training.data import DatasetParams

    assert DatasetParams is defined


def test_lazy_factory_imports_on_first_call_and_pickles():
    factory = lazy("json:dumps")
    assert isinstance(factory, LazyFactory) and factory._resolved is None
    assert factory([1]) == "[1]"
    assert factory.resolve() is json.dumps
    copy = pickle.loads(pickle.dumps(factory))
    assert copy.target == "json:dumps" and copy._resolved is None and copy({}) == "{}"
    assert lazy("os:path.join")("a", "b") == str(Path("a", "b"))  # a dotted attribute path
    assert repr(factory) == "lazy('json:dumps')"


@pytest.mark.parametrize("target", ["json", "json:", ":dumps", ""])
def test_lazy_rejects_a_malformed_target(target):
    with pytest.raises(ValueError, match="package.module:attribute"):
        lazy(target)


def test_lazy_names_a_missing_attribute_when_called():
    with pytest.raises(AttributeError):
        lazy("json:no_such_function")()
