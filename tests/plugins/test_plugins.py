"""The plugin system: built-ins as plugins, name checks, and a real third-party install."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
import types
import uuid
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.errors import LthError, UnknownComponentError
from lth_suite.plugins.hookspecs import hookimpl
from lth_suite.plugins.manager import DEFAULT_PLUGINS, LOAD_ENV, load_plugins
from lth_suite.plugins.registry import KINDS, AmbiguousComponentError, Component, NoParams, Registry
from lth_suite.spec.loading import build_spec, spec_hash

BUILTIN_PROVIDES = {
    "lth_suite.builtin.criteria": {"criterion": {"magnitude", "random"}},
    "lth_suite.builtin.rewinds": {"rewind": {"init", "step", "lr", "finetune"}},
    "lth_suite.builtin.architectures": {"architecture": {"mlp", "conv"}},
    "lth_suite.builtin.analyzers": {"analyzer": {"layer_density"}},
}


def invoke(*args: str):
    """The CLI in process; any exception escaping it fails the test."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args} raised {result.exception!r}\n{result.output}") \
            from result.exception
    assert "Traceback" not in result.output
    return result


def plugin_module(name: str = "extra_plugin", **hooks) -> types.ModuleType:
    """An in-process plugin module with the given hook implementations."""
    module = types.ModuleType(name)
    for attr, function in hooks.items():
        setattr(module, attr, hookimpl(function))
    return module


# --- built-ins are plugins ------------------------------------------------------------

def test_builtins_are_registered_as_plugins(plugins):
    assert set(DEFAULT_PLUGINS) <= set(plugins.infos)
    for name in DEFAULT_PLUGINS:
        assert plugins.manager.has_plugin(name)
        assert plugins.infos[name].distribution == "lth-suite"
    for name, provides in BUILTIN_PROVIDES.items():  # at least these; more may come
        actual = plugins.infos[name].provides
        assert set(actual) == set(provides), name
        assert all(provides[kind] <= set(actual[kind]) for kind in provides), actual
    # the registry knows which plugin each component came from
    assert plugins.registry.get("criterion", "magnitude").plugin == "lth_suite.builtin.criteria"
    assert plugins.registry.get("rewind", "step").plugin == "lth_suite.builtin.rewinds"
    assert all(plugins.registry.names(kind) for kind in KINDS)


def test_plugins_json_lists_builtins():
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["plugin"]: row for row in json.loads(result.stdout)}
    assert set(DEFAULT_PLUGINS) <= set(rows)
    for name, provides in BUILTIN_PROVIDES.items():
        actual = rows[name]["provides"]
        assert set(actual) == set(provides)
        assert all(provides[kind] <= set(actual[kind]) for kind in provides), actual
        assert rows[name]["version"] and rows[name]["distribution"] == "lth-suite"


def test_every_component_has_a_strict_params_model_and_description(registry):
    for component in registry.all():
        assert issubclass(component.params_model, BaseModel), component
        assert component.description, component
        # a typo in a plugin parameter must be a spec error, not silently ignored
        assert component.params_model.model_config.get("extra") == "forbid", component


def test_unknown_component_lists_known_names(registry):
    with pytest.raises(UnknownComponentError) as info:
        registry.get("criterion", "magnitud")
    assert str(info.value) == ("unknown criterion 'magnitud' "
                               "(known: channel_refill, lamp, magnitude, random, wanda)")
    assert info.value.exit_code == 2


# --- name checks ----------------------------------------------------------------------

def test_a_name_clash_with_a_builtin_is_an_error_only_where_used():
    def lth_register_criteria(register):
        register("magnitude", lambda params: "copycat's", NoParams, "a clashing criterion")

    plugins = load_plugins(extra=[plugin_module("copycat", lth_register_criteria=lth_register_criteria)],
                           installed=False)
    registry = plugins.registry
    [clash] = plugins.clashes()
    assert (clash.kind, clash.name, clash.plugins) == (
        "criterion", "magnitude", ("lth_suite.builtin.criteria", "copycat"))
    assert clash.warning() == ("criterion 'magnitude' is registered by lth_suite.builtin.criteria, "
                               "copycat: a spec must name it lth_suite.builtin.criteria:magnitude "
                               "or copycat:magnitude")
    with pytest.raises(AmbiguousComponentError) as info:
        registry.get("criterion", "magnitude")
    assert str(info.value) == ("criterion 'magnitude' is registered by several plugins; name one of "
                               "lth_suite.builtin.criteria:magnitude, copycat:magnitude")
    assert info.value.exit_code == 2 and isinstance(info.value, UnknownComponentError)
    assert registry.get("criterion", "copycat:magnitude").plugin == "copycat"
    assert registry.get("criterion", "lth_suite.builtin.criteria:magnitude").plugin == \
        "lth_suite.builtin.criteria"
    assert registry.build("criterion", "copycat:magnitude", {}) == "copycat's"
    assert {"copycat:magnitude", "lth_suite.builtin.criteria:magnitude", "random"} <= set(
        registry.names("criterion"))
    assert "magnitude" not in registry.names("criterion")
    assert registry.get("criterion", "lth_suite.builtin.criteria:random").name == "random"
    with pytest.raises(UnknownComponentError, match="unknown criterion 'copycat:random'"):
        registry.get("criterion", "copycat:random")
    # every name the registry lists resolves, so registry-driven tests keep working
    assert all(registry.get(c.kind, registry.spec_name(c)) is c for c in registry.all())


class PowerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    power: float = 1.0


def one_criterion(plugin: str, name: str, description: str = "x"):
    """Plugins with the built-ins and a plugin ``plugin`` registering criterion ``name``."""
    def lth_register_criteria(register):
        register(name, lambda params: None, PowerParams, description)

    return load_plugins(extra=[plugin_module(plugin, lth_register_criteria=lth_register_criteria)],
                        installed=False)


def test_qualified_names_validate_against_their_own_params_model(tiny):
    registry = one_criterion("other", "lamp", "a lamp of another kind").registry
    tiny["pruning"]["criterion"] = "lamp"
    with pytest.raises(LthError) as info:
        build_spec(tiny, registry)
    assert info.value.exit_code == 2
    assert ("pruning.criterion.name: criterion 'lamp' is registered by several plugins; name one "
            "of lth_suite.builtin.criteria:lamp, other:lamp") in str(info.value)
    tiny["pruning"]["criterion"] = {"name": "other:lamp", "power": 2}
    assert build_spec(tiny, registry).pruning.criterion.params == {"power": 2.0}
    tiny["pruning"]["criterion"] = {"name": "lth_suite.builtin.criteria:lamp", "power": 2}
    with pytest.raises(LthError, match=r"pruning\.criterion\.power: unknown field"):
        build_spec(tiny, registry)


def test_a_spec_hash_does_not_change_when_another_plugin_clashes(tiny, registry):
    """Only specs that name the clashing component change how they must be written."""
    def lth_register_rewinds(register):
        register("init", lambda params: None, NoParams, "another init")

    other = load_plugins(extra=[plugin_module("rw", lth_register_rewinds=lth_register_rewinds)],
                         installed=False).registry
    tiny["rewind"] = "finetune"
    assert spec_hash(build_spec(tiny, other)) == spec_hash(build_spec(tiny, registry))


def test_the_same_plugin_registering_a_name_twice_is_an_error():
    def lth_register_criteria(register):
        register("mine", lambda params: None)
        register("mine", lambda params: None)

    with pytest.raises(LthError) as info:
        load_plugins(extra=[plugin_module("twice", lth_register_criteria=lth_register_criteria)],
                     installed=False)
    assert str(info.value) == "criterion 'mine' is registered twice by twice"


def test_same_name_in_another_kind_is_fine():
    def lth_register_rewinds(register):
        register("magnitude", lambda params: None, NoParams, "a rewind named like a criterion")

    plugins = load_plugins(extra=[plugin_module("ok", lth_register_rewinds=lth_register_rewinds)],
                           installed=False)
    assert plugins.registry.get("rewind", "magnitude").plugin == "ok"
    assert plugins.infos["ok"].provides == {"rewind": ["magnitude"]}
    assert plugins.infos["ok"].distribution == "(in process)"


def test_misspelled_hook_fails_loudly():
    def lth_register_critera(register):
        register("mine", lambda params: None)

    with pytest.raises(LthError) as info:
        load_plugins(extra=[plugin_module("typo", lth_register_critera=lth_register_critera)],
                     installed=False)
    message = str(info.value)
    assert "typo" in message and "lth_register_critera" in message
    assert "lth_register_criteria" in message  # the suggestion


def test_wrong_hook_argument_fails_loudly():
    def lth_register_criteria(reg):
        reg("mine", lambda params: None)

    with pytest.raises(LthError, match="argtypo"):
        load_plugins(extra=[plugin_module("argtypo", lth_register_criteria=lth_register_criteria)],
                     installed=False)


def test_hook_that_raises_names_its_plugin():
    def lth_register_architectures(register):
        register("broken")  # forgot the factory

    with pytest.raises(LthError, match="clumsy"):
        load_plugins(extra=[plugin_module("clumsy",
                                          lth_register_architectures=lth_register_architectures)],
                     installed=False)


def test_same_plugin_object_twice():
    module = plugin_module("twice")
    with pytest.raises(LthError, match="twice"):
        load_plugins(extra=[module, module], installed=False)


@pytest.mark.parametrize(("name", "factory", "params_model", "message"), [
    ("", lambda p: None, NoParams, "non-empty"),
    (" x", lambda p: None, NoParams, "non-empty"),
    (3, lambda p: None, NoParams, "non-empty"),
    ("x", "not callable", NoParams, "not callable"),
    ("x", lambda p: None, dict, "BaseModel"),
    ("x", lambda p: None, NoParams(), "BaseModel"),
    ("x", lambda p: None, type("P", (BaseModel,), {"__annotations__": {"name": str}}),
     "cannot be called 'name'"),
    ("x", lambda p: None, type("P", (BaseModel,), {"__annotations__": {"params": dict}}),
     "cannot be called 'params'"),
])
def test_registry_validates_components(name, factory, params_model, message):
    registry = Registry()
    with pytest.raises(LthError, match=message):
        registry.add(Component("criterion", name, factory, params_model, "", "p"))
    assert registry.names("criterion") == []


def test_registry_build_validates_params():
    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        k: int = 1

    registry = Registry()
    registry.add(Component("criterion", "k", lambda p, extra: (p.k, extra), Params, "", "p"))
    assert registry.build("criterion", "k", {"k": 3}, "x") == (3, "x")
    with pytest.raises(ValueError):
        registry.build("criterion", "k", {"kk": 3})


def test_plugin_params_typo_is_a_spec_error(tiny):
    """A plugin's own params model validates the spec, typos included."""
    plugins = one_criterion("pw", "powered")
    tiny["pruning"]["criterion"] = {"name": "powered", "powr": 2}
    with pytest.raises(LthError, match=r"pruning\.criterion\.powr: unknown field"):
        build_spec(tiny, plugins.registry)
    tiny["pruning"]["criterion"] = {"name": "powered", "power": 2}
    assert build_spec(tiny, plugins.registry).pruning.criterion.params == {"power": 2.0}


# --- a real third-party install -------------------------------------------------------

PLUGIN_SOURCE = '''
"""A third-party lth-suite plugin: a criterion and a lifecycle hook."""
from pydantic import BaseModel, ConfigDict, Field

from lth_suite.plugins.hookspecs import hookimpl
from lth_suite.pruning.masks import keep_top

FINISHED = []


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    power: float = Field(default=1.0, gt=0)


def smallest_first(params):
    def criterion(request):
        weights = dict(request.model.named_parameters())
        scores = {n: weights[n].detach().abs() ** params.power for n in request.mask}
        return keep_top(scores, request.mask, request.groups)
    return criterion


@hookimpl
def lth_register_criteria(register):
    register("smallest_first", smallest_first, Params, "prunes the smallest weights first")


@hookimpl
def lth_experiment_finished(event):
    FINISHED.append(event.spec_hash)
'''


class Installed:
    """A plugin distribution installed into a temporary site directory."""

    def __init__(self, module: str, dist: str, version: str):
        self.module, self.dist, self.version = module, dist, version


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a plugin for real: a module plus a ``.dist-info`` with entry points."""
    site = tmp_path / "site"
    site.mkdir()
    modules: list[str] = []

    def install(source: str = PLUGIN_SOURCE, version: str = "1.2.3",
                entry_points: dict[str, str] | None = None,
                provides: list[str] | None = None) -> Installed:
        uid = uuid.uuid4().hex[:8]
        module, dist = f"lth_tp_{uid}", f"lth-smallest-{uid}"
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        points = entry_points or {"smallest": module}
        text = "[lth_suite]\n" + "".join(f"{k} = {v.format(module=module)}\n"
                                         for k, v in points.items())
        if provides is not None:  # the optional static declaration, "kind:name" entries
            text += "\n[lth_suite.provides]\n" + "".join(f"{p} = {module}\n" for p in provides)
        (info / "entry_points.txt").write_text(text)
        modules.append(module)
        importlib.invalidate_caches()
        return Installed(module, dist, version)

    monkeypatch.syspath_prepend(str(site))
    yield install
    for module in modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


def test_installed_plugin_is_listed_with_its_version(install, monkeypatch):
    plugin = install()
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    rows = {row["plugin"]: row for row in json.loads(invoke("plugins", "--json").stdout)}
    assert rows[plugin.dist]["version"] == "1.2.3"
    assert rows[plugin.dist]["distribution"] == plugin.dist
    assert rows[plugin.dist]["provides"] == {"criterion": ["smallest_first"]}
    assert set(DEFAULT_PLUGINS) <= set(rows)

    monkeypatch.setenv("COLUMNS", "200")  # rich truncates columns to the terminal width
    table = invoke("plugins")
    assert table.exit_code == 0
    line = next(line for line in table.stdout.splitlines() if plugin.dist in line)
    assert "1.2.3" in line and "smallest_first" in line


@pytest.mark.parametrize(("setting", "loaded"), [
    (None, True),  # unset: every installed plugin
    ("{dist}", True),
    ("{dist_upper}", True),  # distribution names compare normalised
    ("smallest", True),  # the entry-point name
    ("other-plugin, {dist}", True),
    ("", False),
    ("other-plugin", False),
])
def test_load_env_restricts_installed_plugins(install, monkeypatch, setting, loaded):
    plugin = install()
    if setting is None:
        monkeypatch.delenv(LOAD_ENV, raising=False)
    else:
        monkeypatch.setenv(LOAD_ENV, setting.format(
            dist=plugin.dist, dist_upper=plugin.dist.upper().replace("-", "_")))
    plugins = load_plugins()
    assert (plugin.dist in plugins.infos) is loaded
    assert ("smallest_first" in plugins.registry.names("criterion")) is loaded
    assert set(DEFAULT_PLUGINS) <= set(plugins.infos)
    # the tests' own loader never sees it
    assert "smallest_first" not in load_plugins(installed=False).registry.names("criterion")


def test_installed_plugin_component_validates_and_runs(install, monkeypatch, tiny,
                                                       write_spec, tracking_uri):
    plugin = install()
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    tiny["pruning"] = {"criterion": {"name": "smallest_first", "power": 2}, "levels": 1}
    tiny["controls"] = {"reinit": False, "random_prune": False}
    tiny["training"]["duration"] = "20it"
    tiny["tracking"] = {"log_models": "none", "log_state_dicts": False}
    spec = write_spec(tiny)

    bad = write_spec({**tiny, "pruning": {"criterion": {"name": "smallest_first", "pwr": 2}}},
                     name="bad.yaml")
    result = invoke("validate", bad)
    assert result.exit_code == 2 and "pruning.criterion.pwr: unknown field" in result.stderr

    result = invoke("validate", spec)
    assert result.exit_code == 0, result.output

    result = invoke("run", spec, "--tracking-uri", tracking_uri)
    assert result.exit_code == 0, result.output
    finished = sys.modules[plugin.module].FINISHED  # its lifecycle hook ran, once
    assert len(finished) == 1

    from mlflow.tracking import MlflowClient

    runs = MlflowClient(tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri).search_experiments()],
        filter_string=f"tags.`lth_suite.spec_hash` = '{finished[0]}'")
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parent) == 1
    assert json.loads(parent[0].data.tags["lth_suite.plugins"])[plugin.dist] == "1.2.3"
    # the params are the flattened spec (whatever prefix the tracker gives them)
    params = {k.rsplit("pruning.", 1)[-1]: v for k, v in parent[0].data.params.items()
              if "pruning.criterion." in k}
    assert params == {"criterion.name": "smallest_first", "criterion.power": "2.0"}


def test_without_the_plugin_the_spec_is_an_error(install, tiny, write_spec):
    install()  # installed, but LTH_SUITE_LOAD_PLUGINS is empty (conftest)
    tiny["pruning"]["criterion"] = "smallest_first"
    result = invoke("validate", write_spec(tiny))
    assert result.exit_code == 2
    assert ("unknown criterion 'smallest_first' (known: channel_refill, lamp, magnitude, "
            "random)") in result.stderr


def test_installed_plugin_with_misspelled_hook(install, monkeypatch):
    plugin = install(PLUGIN_SOURCE.replace("def lth_register_criteria",
                                           "def lth_register_critera"))
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    result = invoke("plugins")
    assert result.exit_code == 2
    assert "lth_register_critera" in result.stderr and plugin.dist in result.stderr


BROKEN_IMPORT = "import a_module_that_does_not_exist_anywhere\n"
IMPORT_ERROR = ("cannot import entry point '{module}': ModuleNotFoundError: "
                "No module named 'a_module_that_does_not_exist_anywhere'")

RAISES_WHILE_REGISTERING = PLUGIN_SOURCE + textwrap.dedent('''
    @hookimpl
    def lth_register_architectures(register):
        register("smallest_net", lambda params, info: None, description="x")


    @hookimpl
    def lth_register_criteria(register):
        register("smallest_first", smallest_first, Params, "registered before the error")
        raise RuntimeError("boom")
''').replace('''@hookimpl
def lth_register_criteria(register):
    register("smallest_first", smallest_first, Params, "prunes the smallest weights first")
''', "")
REGISTER_ERROR = "lth_register_criteria raised RuntimeError: boom"


def warnings_about(stderr: str, plugin: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if line.startswith("warning: plugin") and plugin in line]


def assert_isolated(plugin: Installed, error: str, provides: dict[str, list[str]],
                    tiny, write_spec) -> None:
    """Listed broken with its error and a single warning; other specs still validate."""
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["plugin"]: row for row in json.loads(result.stdout)}
    row = rows[plugin.dist]
    assert row["status"] == "broken" and row["error"] == error
    assert row["version"] == plugin.version and row["provides"] == provides
    assert all(rows[name]["status"] == "ok" and rows[name]["error"] is None
               for name in DEFAULT_PLUGINS)
    assert len(warnings_about(result.stderr, plugin.dist)) == 1, result.stderr
    assert error in warnings_about(result.stderr, plugin.dist)[0]

    table = invoke("plugins")
    assert table.exit_code == 0
    assert "broken" in table.stdout and "error" in table.stdout
    assert len(warnings_about(table.stderr, plugin.dist)) == 1

    result = invoke("validate", write_spec(tiny))  # a spec that does not use it
    assert result.exit_code == 0, result.output
    assert len(warnings_about(result.stderr, plugin.dist)) == 1


def test_installed_plugin_that_fails_to_import_is_isolated(install, monkeypatch, tiny,
                                                           write_spec, tracking_uri):
    plugin = install(BROKEN_IMPORT, provides=["criterion:smallest_first", "rewind:halfway"])
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    error = IMPORT_ERROR.format(module=plugin.module)
    assert_isolated(plugin, error, {"criterion": ["smallest_first"], "rewind": ["halfway"]},
                    tiny, write_spec)

    # a run that does not use it trains and logs as usual
    tiny["pruning"]["levels"] = 1
    tiny["training"]["duration"] = "20it"
    tiny["controls"] = {"reinit": False, "random_prune": False}
    tiny["tracking"] = {"log_models": "none", "log_state_dicts": False}
    result = invoke("run", write_spec(tiny, "ok.yaml"), "--tracking-uri", tracking_uri)
    assert result.exit_code == 0, result.output
    assert len(warnings_about(result.stderr, plugin.dist)) == 1

    # a spec that uses one of its components: precise, from the static declaration
    tiny["pruning"]["criterion"] = "smallest_first"
    result = invoke("run", write_spec(tiny, "uses.yaml"), "--tracking-uri", tracking_uri)
    assert result.exit_code == 2
    assert (f"pruning.criterion.name: criterion 'smallest_first' comes from plugin "
            f"{plugin.dist}, which failed to load: {error}") in result.stderr
    # a name it does not declare is simply unknown
    tiny["pruning"]["criterion"] = "nonesuch"
    result = invoke("validate", write_spec(tiny, "unknown.yaml"))
    assert result.exit_code == 2
    assert "unknown criterion 'nonesuch' (known: " in result.stderr
    assert "failed to load" not in result.stderr.split("error:", 1)[1]


def test_broken_plugin_without_a_declaration_is_named_in_unknown_errors(install, monkeypatch,
                                                                       tiny, write_spec):
    plugin = install(BROKEN_IMPORT)
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    error = IMPORT_ERROR.format(module=plugin.module)
    rows = {row["plugin"]: row for row in json.loads(invoke("plugins", "--json").stdout)}
    assert rows[plugin.dist]["status"] == "broken" and rows[plugin.dist]["provides"] == {}
    tiny["pruning"]["criterion"] = "smallest_first"
    result = invoke("validate", write_spec(tiny))
    assert result.exit_code == 2
    known = ", ".join(load_plugins(installed=False).registry.names("criterion"))
    assert (f"unknown criterion 'smallest_first' (known: {known}); plugin {plugin.dist} "
            f"failed to load: {error}") in result.stderr


def test_installed_plugin_that_raises_while_registering_is_isolated(install, monkeypatch, tiny,
                                                                   write_spec):
    plugin = install(RAISES_WHILE_REGISTERING)
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    # what it registered before the error is known, though no declaration says so
    assert_isolated(plugin, REGISTER_ERROR,
                    {"architecture": ["smallest_net"], "criterion": ["smallest_first"]},
                    tiny, write_spec)

    plugins = load_plugins(warn=False)
    assert plugins.infos[plugin.dist].status == "broken"
    assert plugin.dist not in plugins.versions()  # runs are not tagged with it
    assert not plugins.manager.has_plugin(plugin.dist)  # so its lifecycle hooks never run
    assert "smallest_first" not in plugins.registry.names("criterion")
    assert "smallest_net" not in plugins.registry.names("architecture")  # registered, dropped

    for path, value, kind, name in (("pruning.criterion", "smallest_first", "criterion",
                                     "smallest_first"),
                                    ("model", "smallest_net", "architecture", "smallest_net")):
        spec = {**tiny, "model": value} if path == "model" else \
            {**tiny, "pruning": {"criterion": value}}
        result = invoke("validate", write_spec(spec, f"{name}.yaml"))
        assert result.exit_code == 2
        assert (f"{path}.name: {kind} '{name}' comes from plugin {plugin.dist}, which failed "
                f"to load: {REGISTER_ERROR}") in result.stderr
    # it may have had more to register after the error: unknown names mention it
    tiny["pruning"]["criterion"] = "nonesuch"
    result = invoke("validate", write_spec(tiny, "unknown.yaml"))
    assert result.exit_code == 2
    assert f"; plugin {plugin.dist} failed to load: {REGISTER_ERROR}" in result.stderr


def test_a_broken_plugin_does_not_disable_a_working_one(install, monkeypatch):
    good, bad = install(), install(BROKEN_IMPORT)
    monkeypatch.setenv(LOAD_ENV, f"{good.dist},{bad.dist}")
    plugins = load_plugins(warn=False)
    assert plugins.infos[good.dist].status == "ok"
    assert plugins.registry.get("criterion", "smallest_first").plugin == good.dist
    assert [info.name for info in plugins.broken()] == [bad.dist]


def test_load_plugins_warns_on_stderr_unless_asked_not_to(install, monkeypatch, capsys):
    plugin = install(BROKEN_IMPORT)
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    load_plugins()
    assert len(warnings_about(capsys.readouterr().err, plugin.dist)) == 1
    load_plugins(warn=False)
    assert capsys.readouterr().err == ""


CLASHING_SOURCE = PLUGIN_SOURCE.replace('register("smallest_first"', 'register("lamp"')


def test_installed_plugin_clashing_with_a_builtin_is_a_warning(install, monkeypatch):
    plugin = install(CLASHING_SOURCE)
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    warning = (f"warning: criterion 'lamp' is registered by lth_suite.builtin.criteria, "
               f"{plugin.dist}: a spec must name it lth_suite.builtin.criteria:lamp or "
               f"{plugin.dist}:lamp")
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    assert warning in result.stderr and plugin.dist in result.stdout
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    assert warning in result.stderr
    rows = {row["plugin"]: row for row in json.loads(result.stdout)}
    assert rows[plugin.dist]["provides"] == {"criterion": ["lamp"]}
    assert rows[plugin.dist]["clashes"] == [warning.removeprefix("warning: ")]
    assert rows["lth_suite.builtin.criteria"]["clashes"] == rows[plugin.dist]["clashes"]
    assert rows["lth_suite.builtin.rewinds"]["clashes"] == []
    assert invoke("schema").exit_code == 0


def test_a_spec_naming_a_clashing_component(install, monkeypatch, tiny, write_spec,
                                            tracking_uri):
    plugin = install(CLASHING_SOURCE)
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    tiny["pruning"] = {"criterion": "lamp", "levels": 1}
    result = invoke("validate", write_spec(tiny))
    assert result.exit_code == 2
    assert (f"pruning.criterion.name: criterion 'lamp' is registered by several plugins; name one "
            f"of lth_suite.builtin.criteria:lamp, {plugin.dist}:lamp") in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the spec's header line and this one

    tiny["pruning"]["criterion"] = "lth_suite.builtin.criteria:lamp"
    result = invoke("validate", write_spec(tiny, name="builtin.yaml"))
    assert result.exit_code == 0, result.output

    tiny["pruning"]["criterion"] = {"name": f"{plugin.dist}:lamp", "power": 2}
    tiny["controls"] = {"reinit": False, "random_prune": False}
    tiny["training"]["duration"] = "20it"
    tiny["tracking"] = {"log_models": "none", "log_state_dicts": False}
    spec = write_spec(tiny, name="theirs.yaml")
    result = invoke("validate", spec)
    assert result.exit_code == 0, result.output
    result = invoke("run", spec, "--tracking-uri", tracking_uri)
    assert result.exit_code == 0, result.output
    assert len(sys.modules[plugin.module].FINISHED) == 1

    schema = json.loads(invoke("schema").stdout)
    titles = {o.get("title") for o in schema["$defs"]["Pruning"]["properties"]["criterion"]["oneOf"]}
    assert {"criterion lth_suite.builtin.criteria:lamp", f"criterion {plugin.dist}:lamp"} <= titles
    assert "criterion lamp" not in titles


def test_distribution_with_two_entry_points(install, monkeypatch):
    source = PLUGIN_SOURCE + textwrap.dedent('''
        class Rewinds:
            @hookimpl
            def lth_register_rewinds(self, register):
                register("halfway", lambda params: None, description="x")

        rewinds = Rewinds()
    ''')
    plugin = install(source, entry_points={"criteria": "{module}",
                                           "rewinds": "{module}:rewinds"})
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    plugins = load_plugins()
    assert plugins.registry.get("criterion", "smallest_first").plugin.startswith(plugin.dist)
    assert plugins.registry.get("rewind", "halfway").plugin.startswith(plugin.dist)
    ours = {n: i for n, i in plugins.infos.items() if i.distribution == plugin.dist}
    assert len(ours) == 2 and all(i.version == "1.2.3" for i in ours.values())


def test_schema_includes_installed_plugin_params(install, monkeypatch):
    plugin = install()
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    schema = json.loads(invoke("schema").stdout)
    criteria = schema["$defs"]["Pruning"]["properties"]["criterion"]["oneOf"]
    mine = [o for o in criteria if o.get("title") == "criterion smallest_first"]
    assert len(mine) == 1 and "power" in mine[0]["properties"]


def test_spec_file_roundtrip_with_plugin(install, monkeypatch, tiny, write_spec):
    """A spec dumped with the plugin's defaults filled re-validates to the same spec."""
    plugin = install()
    monkeypatch.setenv(LOAD_ENV, plugin.dist)
    registry = load_plugins().registry
    tiny["pruning"]["criterion"] = "smallest_first"
    spec = build_spec(tiny, registry)
    assert spec.pruning.criterion.params == {"power": 1.0}
    again = build_spec(yaml.safe_load(yaml.safe_dump(spec.model_dump(mode="json"))), registry)
    assert again == spec
