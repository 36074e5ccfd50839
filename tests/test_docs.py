"""The manual: `mkdocs build --strict` succeeds, and its reference pages hold every `sdnet train`
flag, every TrainConfig setting and every sub-command, generated from the code (docs/_hooks/).

The build is one module-scoped fixture (it imports sdnet.report and renders the result figures:
tens of seconds on a loaded machine, so the tests that need it are marked slow); the hook's
generators are also checked directly, fast.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sdnet import settings
from sdnet.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
HOOK = REPO / "docs" / "_hooks" / "reference.py"


def load_hook():
    spec = importlib.util.spec_from_file_location("sdnet_docs_hook", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_flags() -> set[str]:
    """Every option string of the `sdnet train` parser (help aside)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train = sub.choices["train"]
    return {s for a in train._actions if not isinstance(a, argparse._HelpAction)
            for s in a.option_strings}


def codes(page: Path) -> set[str]:
    """The text of every <code> element of a built page (HTML entities decoded)."""
    text = page.read_text(encoding="utf-8")
    return {html.unescape(re.sub(r"<[^>]+>", "", m)) for m in
            re.findall(r"<code[^>]*>(.*?)</code>", text, flags=re.DOTALL)}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(out)], cwd=REPO, check=False,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.slow
def test_every_train_flag_and_setting_is_in_the_built_reference(site: Path) -> None:
    cli = codes(site / "reference" / "cli.html")
    config = codes(site / "reference" / "configuration.html")
    flags = train_flags()
    assert {"--p-last", "--nproc", "--no-augment"} <= flags  # the walk found the real parser
    assert not flags - cli, f"sdnet train flags missing from the CLI page: {flags - cli}"
    names = {d.name for d in settings.declarations()}
    assert not names - config, f"settings missing from the configuration page: {names - config}"
    declared_flags = {d.flag for d in settings.declarations()}
    assert not declared_flags - config, declared_flags - config


@pytest.mark.slow
def test_the_cli_page_lists_every_sub_command(site: Path) -> None:
    progs = load_hook().cli_commands()
    assert {"sdnet train", "sdnet data fake", "sdnet report heatmap", "sdnet status",
            "sdnet estimate", "sdnet launch"} <= set(progs)
    page = codes(site / "reference" / "cli.html")
    assert not set(progs) - page, set(progs) - page


@pytest.mark.slow
def test_pages_markers_and_figures_are_rendered(site: Path) -> None:
    for page in site.rglob("*.html"):
        assert "<!-- sdnet:" not in page.read_text(encoding="utf-8"), page
    figures = {p.name for p in (site / "images" / "results").glob("*.png")}
    assert {"test_error_curves.png", "gradient_profile.png"} <= figures
    results = (site / "results.html").read_text(encoding="utf-8")
    assert "images/results/test_error_curves.png" in results
    api = (site / "reference" / "api.html").read_text(encoding="utf-8")
    for module in ("sdnet.data.registry", "sdnet.networks", "sdnet.models.gate",
                   "sdnet.jobs.supervisor"):
        assert f'id="{module}"' in api, module


def test_configuration_page_has_a_row_per_setting_and_schema_key() -> None:
    hook = load_hook()
    page = hook.configuration_page()
    for item in settings.declarations():
        assert re.search(rf"^\| `{item.name}` \| `{item.flag}`", page, flags=re.MULTILINE), item
    for key in hook._schema()["properties"]:
        assert f"**`{key}`**" in page, key


def test_an_unknown_marker_fails_the_build() -> None:
    hook = load_hook()

    class Page:
        class file:
            src_uri = "x.md"

    assert "| data set |" in hook.on_page_markdown("<!-- sdnet:paper-results -->", Page, None, None)
    with pytest.raises(KeyError, match="sdnet:no-such-table"):
        hook.on_page_markdown("<!-- sdnet:no-such-table -->", Page, None, None)


def test_the_readme_is_short_and_its_commands_and_links_exist() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    for command in re.findall(r"^make (\w+)", readme, flags=re.MULTILINE):
        assert command in targets, command
    assert {"demo", "test"} <= set(re.findall(r"^make (\w+)", readme, flags=re.MULTILINE))
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert "docs/images/demo-test-error.png" in links
    for link in links:
        assert (REPO / link).exists(), link


def test_the_design_page_draws_the_import_linter_layers_in_order() -> None:
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c["layers"] for c in contracts["contracts"] if c["type"] == "layers")
    page = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    block = page.split("The layers, top to bottom", 1)[1].split("```", 2)[1]
    drawn = [re.split(r"\s{2,}", line.strip())[0] for line in block.splitlines() if line.strip()]
    assert drawn == layers
