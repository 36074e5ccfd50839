"""MkDocs hooks (mkdocs.yml `hooks:`): the manual's facts generated from the code at build time.

Nothing in the reference pages is copied by hand, so the manual cannot drift from the code:
- `reference/configuration.md`: every `sdnet.settings.TrainConfig` setting from its declaration
  (`sdnet.settings.declarations()`: flag, type, default, bounds, choices, help, config groups)
  and every key of the config schema (the file `sdnet.grid` validates with) with its description;
- `reference/cli.md`: every command, sub-command and flag of `sdnet.cli.build_parser()`;
- `images/results/*.png` and the result tables: rendered by `sdnet.report` from the run results
  kept in docs/fixtures/demo/ (the demo's aggregated CSVs), exactly as the workflow renders them;
- markers `<!-- sdnet:NAME -->` in hand-written pages (see MARKERS) replaced by generated Markdown:
  the paper's numbers (`sdnet.report.paper`), the presets' grids (`sdnet.grid` on config/paper/).
An unknown marker fails the build. The API pages are mkdocstrings' (docstrings, read statically).

`python docs/_hooks/reference.py --readme-figure` writes the README's one figure
(docs/images/demo-test-error.png) from the same fixture.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "docs" / "fixtures" / "demo"
README_FIGURE = ROOT / "docs" / "images" / "demo-test-error.png"
MARKER = re.compile(r"<!--\s*sdnet:([a-z0-9-]+)\s*-->")

if str(ROOT / "src") not in sys.path:  # a checkout without `pip install -e .` builds too
    sys.path.insert(0, str(ROOT / "src"))


# ----------------------------------------------------------------------------- Markdown helpers


def cell(value: Any) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    text = " ".join(str(value).split())
    return text.replace("|", "\\|")


def code(value: Any) -> str:
    text = str(value)
    return f"`{text}`" if text else ""


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- configuration


def _config_groups(group: str | None) -> str:
    from sdnet import settings

    return {
        settings.TRAIN: "`train`, `datasets.<ds>.train`, `networks.<network>`, "
                        "`variants.<name>`",
        settings.SURVIVAL: "`variants.<name>`",
        settings.RUN: "the grid (`experiment`): the run's identity",
        None: "none: set by the training rule or by hand",
    }[group]


def _type(item: Any) -> str:
    name = {"Path": "path"}.get(item.kind.__name__, item.kind.__name__)
    if item.is_list:
        name = f"list of {name}"
    return f"{name} or null" if item.optional else name


def _bounds(item: Any) -> str:
    parts = []
    if item.choices is not None:
        parts.append("one of " + ", ".join(code(c) for c in item.choices))
    if item.minimum is not None:
        parts.append(f">= {item.minimum:g}")
    if item.exclusive_minimum is not None:
        parts.append(f"> {item.exclusive_minimum:g}")
    if item.maximum is not None:
        parts.append(f"<= {item.maximum:g}")
    if item.pattern is not None:
        parts.append(f"matches {code(item.pattern)}")
    return "; ".join(parts)


def _default(item: Any) -> str:
    if item.required:
        return "required"
    value = item.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return code(" ".join(str(v) for v in value))
    return code(value)


def settings_reference() -> str:
    from sdnet import settings

    rows = [(code(d.name), code(d.flag) if d.kind is not bool else
             f"`{d.flag}` / `--no-{d.flag[2:]}`", _type(d), _default(d), _bounds(d),
             _config_groups(d.config), d.help) for d in settings.declarations()]
    return table(["setting", "flag", "type", "default", "bounds", "set in the config by",
                  "what it does"], rows)


def _schema() -> dict:
    import yaml

    from sdnet.grid.schema import find_schema, with_datasets

    return with_datasets(yaml.safe_load(find_schema().read_text()))


def _schema_type(node: dict) -> str:
    if "$ref" in node:
        return node["$ref"].rsplit("/", 1)[-1].replace("_", " ")
    kind = node.get("type")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if "enum" in node:
        return "one of " + ", ".join(code(v) for v in node["enum"])
    return kind or ("object" if "properties" in node else "")


def _schema_default(node: dict) -> str:
    if "default" not in node:
        return ""
    value = node["default"]
    return "null" if value is None else code(value)


def schema_reference() -> str:
    schema = _schema()
    out = [f"The schema file: `{find_schema_relpath()}`. {schema.get('description', '')}\n"]
    rows = []
    for key, node in schema["properties"].items():
        rows.append((f"**`{key}`**", _schema_type(node), _schema_default(node),
                     node.get("description", "")))
        for sub, subnode in (node.get("properties") or {}).items():
            if key == "train":
                continue  # the training settings: the table above
            rows.append((f"`{key}.{sub}`", _schema_type(subnode), _schema_default(subnode),
                         subnode.get("description", "")))
    out.append(table(["key", "type", "default", "description"], rows))
    return "\n".join(out)


def find_schema_relpath() -> str:
    from sdnet.grid.schema import find_schema

    path = find_schema().resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


def configuration_page() -> str:
    from sdnet import settings

    job_size = ", ".join(code(r) for r in settings.RESOURCES)
    return f"""# Configuration reference

*Generated at build time from `sdnet.settings` (the one declaration of every training setting)
and from the config schema; nothing here is written by hand.*

## Training settings

Every field of `sdnet.settings.TrainConfig`: the `sdnet train` flag it becomes, its default,
the bounds and choices checked (by argparse, by the config schema and by `check_config`: one
declaration), and where the workflow config may set it. A setting set in several places follows
the cascade `train` < `datasets.<ds>.train` < `networks.<network>` < `variants.<name>` (the
most specific wins). The job-size keys {job_size} may be set wherever a training setting may;
they size the job (ranks, nodes) and are not `TrainConfig` fields.

{settings_reference()}
## Workflow config keys

Every top-level key of the config (`config.yaml`, merged with `--configfile` files) and the keys
one level below it, with the schema's description and default.

{schema_reference()}"""


# ----------------------------------------------------------------------------- command line


def _parser_actions(parser: argparse.ArgumentParser) -> tuple[list, list]:
    """(flag and positional actions, sub-command actions) of one parser, help left out."""
    plain, subs = [], []
    for action in parser._actions:  # argparse offers no public walk of its parsers
        if isinstance(action, argparse._SubParsersAction):
            subs.append(action)
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            plain.append(action)
    return plain, subs


def _action_default(action: argparse.Action) -> str:
    default = action.default
    if action.required or default in (None, argparse.SUPPRESS) or \
            isinstance(action, argparse._StoreTrueAction) and default is False:
        return "required" if action.required and action.option_strings else ""
    if isinstance(default, (list, tuple)):
        return code(" ".join(str(v) for v in default))
    return code(default)


def _cli_section(parser: argparse.ArgumentParser, level: int, help_text: str) -> list[str]:
    formatter = argparse.HelpFormatter(parser.prog)
    plain, subs = _parser_actions(parser)
    out = [f"{'#' * level} `{parser.prog}`\n"]
    if help_text:
        out.append(help_text.rstrip(".") + ".\n")
    if parser.description and parser.description != help_text:
        out.append(" ".join(parser.description.split()) + "\n")
    out.append("```text\n" + parser.format_usage().strip() + "\n```\n")
    if plain:
        rows = []
        for action in plain:
            name = ", ".join(code(s) for s in action.option_strings) or code(action.dest)
            if action.choices is not None and not isinstance(action.choices, dict):
                name += " {" + ",".join(str(c) for c in action.choices) + "}"
            # the plain formatter: no "(default: ...)" appended, the default has its column
            text = formatter._expand_help(action) if action.help else ""
            rows.append((name, _action_default(action), text))
        out.append(table(["argument", "default", "help"], rows))
    for sub in subs:
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        for name, child in sub.choices.items():
            out += _cli_section(child, min(level + 1, 4), helps.get(name, ""))
    return out


def cli_commands() -> list[str]:
    """The prog of every parser under `sdnet` (`sdnet`, `sdnet train`, `sdnet data fake` ...)."""
    from sdnet.cli import build_parser

    def walk(parser: argparse.ArgumentParser) -> list[str]:
        progs = [parser.prog]
        for sub in _parser_actions(parser)[1]:
            for child in sub.choices.values():
                progs += walk(child)
        return progs

    return walk(build_parser())


def cli_page() -> str:
    from sdnet.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines to $COLUMNS
    try:
        sections = _cli_section(build_parser(), 2, "")
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    commands = "\n".join(f"- `{prog}`" for prog in cli_commands()[1:])
    return ("# Command-line reference\n\n*Generated at build time from `sdnet.cli.build_parser()`; "
            "`sdnet COMMAND --help` prints the same.*\n\nThe commands:\n\n" + commands + "\n\n"
            + "\n".join(sections))


# ----------------------------------------------------------------------------- the paper, presets


def paper_results() -> str:
    from sdnet.report import paper

    rows = []
    for entry in paper.PAPER_RESULTS:
        rule = "constant depth" if entry.survival == "none" else \
            f"stochastic depth, linear decay to p_L = {entry.p_last:g}"
        epochs = getattr(entry, "epochs", None)  # read at that epoch; None: the schedule's end
        rows.append((spec_title(entry.dataset), f"ResNet-{entry.depth} (`{entry.arch}`)",
                     rule, "yes" if entry.augment else "no", epochs or "",
                     f"{entry.test_error:.2f}",
                     entry.source + (f" ({entry.note})" if entry.note else "")))
    return table(["data set", "network (family)", "training", "augmentation", "at epoch",
                  "test error %", "where in the paper"], rows)


def spec_title(dataset: str) -> str:
    from sdnet import spec

    return spec.dataset_spec(dataset).title


def presets() -> str:
    from sdnet import grid

    rows = []
    for path in sorted((ROOT / "config" / "paper").glob("*.yaml")):
        cfg = grid.load_config([ROOT / "config.yaml", path], warn=lambda _: None)
        runs = grid.runs(cfg)
        datasets = sorted({r.dataset for r in runs}, key=[r.dataset for r in runs].index)
        networks = sorted({r.network for r in runs}, key=[r.network for r in runs].index)
        variants = sorted({r.variant for r in runs}, key=[r.variant for r in runs].index)
        seeds = sorted({r.seed for r in runs})
        epochs = sum(int(r.settings["epochs"]) for r in runs)
        rows.append((f"[`{path.name}`](#{path.stem})", len(runs), f"{epochs:,}",
                     ", ".join(spec_title(d) for d in datasets), ", ".join(networks),
                     len(variants), len(seeds), cfg["results_dir"]))
    return table(["preset", "training runs", "epochs in all", "data sets", "networks",
                  "variants", "seeds", "results under"], rows)


# ----------------------------------------------------------------------------- results


@functools.lru_cache(maxsize=1)
def rendered_results() -> Path:
    """The fixture's tables and figures, rendered by sdnet.report into a temporary folder."""
    import matplotlib

    matplotlib.use("Agg")
    from sdnet import report

    out = Path(tempfile.mkdtemp(prefix="sdnet-docs-"))
    runs, epochs, grads = (FIXTURE / f"{n}.csv" for n in ("runs", "epochs", "gradients"))
    comparisons = out / "comparisons.csv"
    report.write_comparisons(runs, comparisons)
    report.render_tables(runs, out / "tables", comparisons)
    report.plot_figures(runs, epochs, out / "figures")
    report.plot_gradient_figures(runs, epochs, grads, out / "figures")
    return out


def result_table(name: str) -> Callable[[], str]:
    def render() -> str:
        text = (rendered_results() / "tables" / f"{name}.md").read_text()
        return re.sub(r"^#+ .*\n", "", text, flags=re.MULTILINE)  # the page gives the heading
    return render


MARKERS: dict[str, Callable[[], str]] = {
    "paper-results": paper_results,
    "presets": presets,
    "summary-table": result_table("summary"),
    "per-seed-table": result_table("per_seed"),
    "cost-table": result_table("cost"),
}
GENERATED_PAGES: dict[str, Callable[[], str]] = {
    "reference/configuration.md": configuration_page,
    "reference/cli.md": cli_page,
}


# ----------------------------------------------------------------------------- MkDocs events


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for uri, make in GENERATED_PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    for png in sorted((rendered_results() / "figures").glob("*.png")):
        files.append(File.generated(config, f"images/results/{png.name}",
                                    content=png.read_bytes()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in MARKERS:
            raise KeyError(f"{page.file.src_uri}: unknown marker <!-- sdnet:{name} -->; "
                           f"known: {', '.join(MARKERS)}")
        return MARKERS[name]()
    return MARKER.sub(replace, markdown)


def on_post_build(config: Any) -> None:
    if rendered_results.cache_info().currsize:
        shutil.rmtree(rendered_results(), ignore_errors=True)
        rendered_results.cache_clear()


if __name__ == "__main__":
    if sys.argv[1:] != ["--readme-figure"]:
        raise SystemExit("usage: python docs/_hooks/reference.py --readme-figure")
    figure = rendered_results() / "figures" / "test_error_curves.png"
    README_FIGURE.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(figure, README_FIGURE)
    shutil.rmtree(rendered_results(), ignore_errors=True)
    print(README_FIGURE.relative_to(ROOT))
