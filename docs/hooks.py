"""MkDocs hook: the reference pages generated from the code (the CLI and the spec).

This is the one place where the docs import lth-suite's code (besides the ``:::``
directives of mkdocstrings in the reference pages): if a module moves, change it here.

- ``reference/cli.md``: every command of the ``lth-suite`` typer app, its help, usage,
  arguments and options, from the click command that typer builds.
- ``reference/spec.md``: every section and field of the spec with its type, default and
  description, from the JSON schema that ``lth-suite schema`` prints (built-in plugins
  only, so the page does not depend on what else is installed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer.main
from mkdocs.structure.files import File, Files

from lth_suite.cli import app
from lth_suite.plugins import load_plugins
from lth_suite.spec import ExperimentSpec  # the spec's top-level model
from lth_suite.spec.loading import json_schema

CLI_INTRO = """\
# Command line

Every command of `lth-suite`, generated from the code (`lth-suite COMMAND --help` prints
the same). `python -m lth_suite ...` works the same as `lth-suite ...`; bad input exits
with code 2 and one line per problem, before any MLflow run exists.
"""


def _usage(pieces: list[str]) -> str:
    """Usage pieces as ``--help`` shows them: typer's ``{spec}`` placeholders as ``SPEC``."""
    return re.sub(r"\{(\w+)\}", lambda match: match.group(1).upper(), " ".join(pieces))


def _cli_command(name: str, command: Any, parent: Any) -> list[str]:
    """The Markdown of one command: its help, usage, arguments and options."""
    context = type(command).context_class(command, info_name=name, parent=parent)
    path = context.command_path
    lines = [f"## `{path}`", "", (command.help or "").strip(), "", "```",
             f"{path} {_usage(command.collect_usage_pieces(context))}", "```", ""]
    rows = []
    for param in command.get_params(context):
        record = param.get_help_record(context)
        if record is None or getattr(param, "hidden", False):
            continue
        names, text = record
        default = param.default
        shown = ("" if param.required or default in (None, False, (), []) or callable(default)
                 or "[default" in text else f"`{default}`")
        rows.append(f"| `{names}` | {param.param_type_name} | {_cell(text)} | {shown} |")
    if rows:
        lines += ["| name | kind | description | default |", "| --- | --- | --- | --- |", *rows, ""]
    return lines


def cli_reference() -> str:
    """The CLI reference page, from the click command typer builds of the ``lth-suite`` app."""
    root = typer.main.get_command(app)
    context = type(root).context_class(root, info_name="lth-suite")
    lines = [CLI_INTRO, (root.help or "").strip(), ""]
    names = root.list_commands(context)
    lines += [f"- [`lth-suite {name}`](#lth-suite-{name}): "
              f"{_cell((root.get_command(context, name).help or '').splitlines()[0])}" for name in names]
    lines.append("")
    for name in names:
        lines += _cli_command(name, root.get_command(context, name), context)
    return "\n".join(lines) + "\n"


SPEC_INTRO = """\
# Spec reference

Every section and field of the spec, generated from its JSON schema (what
`lth-suite schema` prints, for editors). Every field has a default, so a spec states only
what differs; unknown fields are errors everywhere. The plugin sections (`model`,
`dataset`, `pruning.criterion`, `rewind`, `analyzers`, `launcher`, `sparsity.allocation`,
`sparsity.dynamic`) take a bare plugin name or a mapping of `name` and the plugin's params;
`controls` maps control plugins' names to `true`, `false` or their params; the built-in
plugins and their params are listed with each. Installed plugins add theirs
(`lth-suite schema` includes them). See [the spec in brief](../getting-started.md#the-spec)
for a complete example.
"""


def _ref(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref`` resolved (one level)."""
    if "$ref" in node:
        return schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _type(schema: dict[str, Any], node: dict[str, Any]) -> str:
    """A short type name for a JSON-schema node."""
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        return " | ".join(f"`{value}`" for value in node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            kinds = [_type(schema, option) for option in node[key]]
            return " | ".join(dict.fromkeys(kinds))
    if "$ref" in node:
        return "mapping"
    kind = node.get("type", "any")
    if kind == "array" and "items" in node:
        return f"list of {_type(schema, node['items'])}"
    return kind


def _spec_default(key: str) -> Any:
    """The default of a dotted spec key, from a spec built with every default."""
    value: Any = ExperimentSpec().model_dump(mode="json")
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, dict) and set(value) <= {"name", "params"} and "name" in value:
        return value["name"] if not value.get("params") else value  # a component: its name
    return value


def _default(node: dict[str, Any], key: str | None = None) -> str:
    """The default of a field, as a code span: the schema's, else that of the spec's model."""
    if "default" in node:
        return f"`{json.dumps(node['default'])}`"
    if key is not None and "$ref" not in node:  # a nested section's fields have their own rows
        value = _spec_default(key)
        if value is not None:
            return f"`{json.dumps(value)}`"
    return ""


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _components(node: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The plugin options of a component slot (``oneOf`` of titled objects), else None."""
    options = node.get("oneOf") or node.get("anyOf")
    if node.get("type") == "array":
        options = node.get("items", {}).get("oneOf")
    if not options:
        return None
    objects = [o for o in options if o.get("type") == "object" and "const" in
               o.get("properties", {}).get("name", {})]
    return objects or None


def _fields_table(schema: dict[str, Any], model: dict[str, Any], prefix: str) -> list[str]:
    """A table of ``model``'s fields, each with its dotted key, type, default, description."""
    rows = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in model.get("properties", {}).items():
        description = field.get("description", "")
        resolved = _ref(schema, field)
        if field is not resolved and not description:
            description = resolved.get("description", "").split("\n\n")[0]
        default = _cell(_default(field, f"{prefix}{name}"))
        rows.append(f"| `{prefix}{name}` | {_cell(_type(schema, field))} | {default} "
                    f"| {_cell(description)} |")
    return rows


def _component_list(schema: dict[str, Any], options: list[dict[str, Any]], key: str) -> list[str]:
    """One entry per built-in plugin of a slot: its name, description and params."""
    lines = [f"Built-in plugins for `{key}`:", ""]
    for option in sorted(options, key=lambda o: o["properties"]["name"]["const"]):
        name = option["properties"]["name"]["const"]
        params = {k: v for k, v in option["properties"].items() if k != "name"}
        lines.append(f"- **`{name}`**: {_cell(option.get('description', ''))}")
        for param, field in params.items():
            default = f" (default {_default(field)})" if "default" in field else " (required)"
            text = field.get("description", "")
            lines.append(f"    - `{param}`: {_cell(_type(schema, field))}{default}"
                         + (f": {_cell(text)}" if text else ""))
    return [*lines, ""]


def _section(schema: dict[str, Any], key: str, node: dict[str, Any], level: int) -> list[str]:
    """The Markdown of one spec section (recursing into nested sections)."""
    lines = [f"{'#' * level} `{key}`", ""]
    description = node.get("description") or _ref(schema, node).get("description", "")
    options = _components(node)
    if options:
        if description:
            lines += [_cell(description), ""]
        if _default(node, key):
            lines += [f"Default: {_default(node, key)}.", ""]
        return lines + _component_list(schema, options, key)
    model = _ref(schema, node)
    for option in node.get("anyOf", []):  # an optional section: `null` or the section
        if "$ref" in option:
            model = _ref(schema, option)
            lines += [f"Optional (default {_default(node) or '`null`'}).", ""]
    if "properties" not in model:  # a plain field at the top level
        lines += [f"Type: {_type(schema, node)}; default: {_default(node)}.", ""]
        if description:
            lines += [_cell(description), ""]
        return lines
    if description:
        lines += [description.split("\n\n")[0].replace("\n", " "), ""]
    lines += _fields_table(schema, model, f"{key}.") + [""]
    for name, field in model["properties"].items():
        if _components(field) or "properties" in _ref(schema, field) or any(
                "$ref" in option for option in field.get("anyOf", [])):
            lines += _section(schema, f"{key}.{name}", field, min(level + 1, 4))
    return lines


def spec_reference() -> str:
    """The spec reference page, from the JSON schema of the built-in plugins."""
    schema = json_schema(load_plugins(installed=False, warn=False).registry)
    lines = [SPEC_INTRO]
    for key, node in schema["properties"].items():
        lines += _section(schema, key, node, 2)
    return "\n".join(lines) + "\n"


# Markdown files of the repository outside docs/ that the site shows as pages: repository
# path -> site path, and the links each makes to other repository files -> their site pages.
REPOSITORY_PAGES = {
    "benchmarks/RESULTS.md": "benchmarks.md",
    "plugins/lth-suite-pai/README.md": "plugin-packages/lth-suite-pai.md",
    "plugins/lth-suite-example/README.md": "plugin-packages/lth-suite-example.md",
    "plugins/lth-suite-timm/README.md": "plugin-packages/lth-suite-timm.md",
    "plugins/lth-suite-hf/README.md": "plugin-packages/lth-suite-hf.md",
}
REPOSITORY_LINKS = {"](../../README.md)": "](../index.md)", "](../../docs/plugins.md)": "](../plugins.md)",
                    "](../../docs/how-to/timm.md)": "](../how-to/timm.md)",
                    "](../../docs/how-to/transformers.md)": "](../how-to/transformers.md)"}


def repository_page(path: Path) -> str:
    """A Markdown file of the repository, its links to other repository files made site links."""
    text = path.read_text()
    for old, new in REPOSITORY_LINKS.items():
        text = text.replace(old, new)
    return text


def on_files(files: Files, config: Any) -> Files:
    """Add the generated reference pages and the repository's other Markdown pages to the site."""
    for path, content in (("reference/cli.md", cli_reference()), ("reference/spec.md", spec_reference())):
        files.append(File.generated(config, path, content=content))
    root = Path(config["config_file_path"]).parent
    for source, target in REPOSITORY_PAGES.items():
        files.append(File.generated(config, target, content=repository_page(root / source)))
    return files
