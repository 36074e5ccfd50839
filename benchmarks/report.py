"""The latest figures against the issue's targets, as a Markdown table (for benchmarks/README.md).

Reads benchmarks/results/*.json (full runs; `-quick` files are smoke runs and are ignored) and
prints one row per target: what was measured, the target, met or not, and when/where. With
`--update-readme` the table replaces the block between the markers in benchmarks/README.md.

    .venv/bin/python -m benchmarks.report
    .venv/bin/python -m benchmarks.report --update-readme
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import common

README = common.ROOT / "benchmarks" / "README.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def step_depth(doc: dict[str, Any], depth: int) -> dict[str, Any] | None:
    return next((d for d in doc["results"]["depths"] if d["depth"] == depth), None)


Row = dict[str, str]


def row(what: str, value: float | None, target: str, ok: Callable[[float], bool], fmt: str,
        doc: dict[str, Any] | None) -> Row:
    if value is None or doc is None:
        return {"figure": what, "measured": "not run", "target": target, "met": "-", "run": "-"}
    machine = doc["machine"]
    where = machine.get("gpu") or f"{machine['cpus']}-core {machine['cpu']}"
    when = f"{machine['date_utc']}, {where}, load {machine['load_avg_1m']:.1f}"
    met = "-" if target == "-" else ("yes" if ok(value) else "**no**")
    return {"figure": what, "measured": format(value, fmt), "target": target, "met": met,
            "run": when}


def step_rows(doc: dict[str, Any] | None, gpu: bool) -> list[Row]:
    rows = []
    tag = " (GPU)" if gpu else ""
    for depth in (20, 56, 110):
        d = step_depth(doc, depth) if doc else None
        base = d["variants"]["sdnet-base"]["items_per_s"] if d else None
        sd = d["variants"]["sdnet-sd"]["items_per_s"] if d else None
        ref = d["variants"].get("ref-sd", {}).get("items_per_s") if d else None
        rows.append(row(f"ResNet-{depth} step img/s sdnet base / SD / ref SD{tag}",
                        base, "-", lambda v: True, ".0f", doc))
        if d:
            ref_text = "-" if ref is None else f"{ref:.0f}"
            rows[-1]["measured"] = f"{base:.0f} / {sd:.0f} / {ref_text}"
        ratio = d["sd_over_base_sdnet"]["paired_median"] if d else None
        target = "<= 0.77" if depth == 110 and not gpu else "-"  # issue 17
        rows.append(row(f"ResNet-{depth} sdnet SD / baseline step time{tag} "
                        f"(E[flops] {d['expected_flop_fraction']:.3f})" if d else
                        f"ResNet-{depth} sdnet SD / baseline step time{tag}",
                        ratio, target, lambda v, d=depth: d != 110 or gpu or v <= 0.77, ".3f", doc))
        speed = d["speedup_sd_sdnet_vs_ref"]["paired_median"] if d and "speedup_sd_sdnet_vs_ref" in d \
            else None
        rows.append(row(f"ResNet-{depth} sdnet SD vs reference SD step, x faster{tag}", speed,
                        ">= 1.7" if not gpu else "-", lambda v: gpu or v >= 1.7, ".2f", doc))
    return rows


def data_rows(doc: dict[str, Any] | None, gpu: bool) -> list[Row]:
    need = 20 if gpu else 5
    tag = " (GPU)" if gpu else ""
    rows = []
    for workers in (0, 2):
        key = f"speedup_vs_tv-w{workers}"
        value = doc["results"].get(key) if doc else None
        rows.append(row(f"on-device aug vs DataLoader {workers} workers, x{tag}", value,
                        f">= {need}", lambda v: v >= need, ".1f", doc))
        proposal = doc["results"].get(f"proposal_{key}") if doc else None
        if proposal is not None:
            rows.append(row(f"  same with proposals.crop_flip_gather, x{tag}", proposal,
                            f">= {need}", lambda v: v >= need, ".1f", doc))
    return rows


def other_rows(results: Path) -> list[Row]:
    wf, prep, mem = (load(results, n) for n in ("workflow", "prepare", "memory"))
    wfv = wf["results"]["variants"] if wf else {}
    rows = [
        row("snakemake -n, full default grid, s", wfv.get("dry-full", {}).get("median_s"),
            "<= 3", lambda v: v <= 3, ".2f", wf),
        row("snakemake -n, 1,000-job grid, s", wfv.get("dry-grid", {}).get("median_s"),
            "<= 15", lambda v: v <= 15, ".2f", wf),
        row("snakemake no-op on finished demo, s", wfv.get("noop-demo", {}).get("median_s"),
            "-", lambda v: True, ".2f", wf),
        row("snakemake --version (start-up floor), s", wfv.get("version", {}).get("median_s"),
            "-", lambda v: True, ".2f", wf),
    ]
    prepv = prep["results"]["variants"] if prep else {}
    for name, need in (("cifar10", None), ("cinic10", 5000)):
        value = prepv.get(name, {}).get("items_per_s")
        rows.append(row(f"prepare {name} full-size fake, images/s", value,
                        f">= {need}" if need else "-", lambda v, n=need: n is None or v >= n,
                        ".0f", prep))
    grads = load(results, "gradients")
    for rule in (grads["results"]["rules"] if grads else [{"survival": "linear"}]):
        ratio = rule.get("all_over_none_cpu", {}).get("paired_median")
        rows.append(row(f"ResNet-{rule.get('depth', 110)} {rule['survival']} step with / without "
                        "the gradient meter (CPU time)", ratio, "<= 1.02", lambda v: v <= 1.02,
                        ".3f", grads))
    peak = mem["results"].get("steps", {}).get("peak_rss_mib") if mem else None
    rows.append(row("peak RSS, ResNet-110 training on CIFAR-10-sized data (CPU), MiB", peak,
                    "<= 2048", lambda v: v <= 2048, ".0f", mem))
    return rows


def gpu_rows(results: Path) -> list[Row]:
    mem = load(results, "memory-cuda")
    rows = []
    for name in ("baseline", "stochastic"):
        r = mem["results"].get(name) if mem else None
        rows.append(row(f"GPU ResNet-110 {name} epoch (45k images), s",
                        r["epoch_seconds"][-1] if r else None, "<= 4", lambda v: v <= 4,
                        ".2f", mem))
        rows.append(row(f"GPU ResNet-110 {name}, 500 epochs incl. eval, min",
                        r["projected_500_epochs_min"] if r else None, "<= 35",
                        lambda v: v <= 35, ".1f", mem))
        rows.append(row(f"GPU ResNet-110 {name} peak CUDA memory, MiB",
                        r["peak_memory_mib"] if r else None, "-", lambda v: True, ".0f", mem))
    return rows


def versions_line(results: Path) -> str:
    for name in ("step", "data", "workflow", "prepare", "memory", "step-cuda"):
        doc = load(results, name)
        if doc:
            v = doc["machine"]["versions"]
            return ", ".join(f"{k} {v[k]}" for k in v) + f"; commit {doc['machine']['commit']}"
    return "no results yet"


def render(results: Path) -> str:
    from tabulate import tabulate

    rows = (step_rows(load(results, "step"), False) + data_rows(load(results, "data"), False)
            + other_rows(results) + step_rows(load(results, "step-cuda"), True)
            + data_rows(load(results, "data-cuda"), True) + gpu_rows(results))
    table = tabulate(rows, headers="keys", tablefmt="github")
    return f"Versions: {versions_line(results)}.\n\n{table}\n"


def update_readme(text: str, readme: Path = README) -> None:
    from sdnet.atomic import atomic_write_text

    body = readme.read_text()
    head, rest = body.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(readme, f"{head}{START}\n{text}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", type=Path, default=common.RESULTS)
    p.add_argument("--update-readme", action="store_true")
    args = p.parse_args(argv)
    text = render(args.results)
    print(text)
    if args.update_readme:
        update_readme(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
