"""`sdnet ...` command line: parse arguments, call one function with plain arguments, nothing else.

Heavy modules (torch, pandas, matplotlib) are imported inside each command so that `sdnet --help`
and `sdnet data download` stay fast. Every expected failure (bad setting, bad archive, NaN loss)
is an `SdnetError` subclass: it is printed as one line `sdnet: error: ...` and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sdnet import __version__, settings, spec
from sdnet.distributed.world import guarded
from sdnet.errors import SdnetError
from sdnet.jobs import ranks

_positive_int = settings.int_at_least(1)
_non_negative_int = settings.int_at_least(0)


class _DefaultsFormatter(argparse.HelpFormatter):
    """Shows each flag's default, unless the help text already speaks of it (a None default's
    help says what it means)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default is None  # its help says what None means
                or action.default == argparse.SUPPRESS or "default" in text
                or action.required or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)".lstrip()


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one network (one dataset x network x variant x seed)",
        description="Train one ResNet with or without stochastic depth. Defaults are the paper's "
        "CIFAR setup (SGD, batch 128, 500 epochs, lr 0.1 /10 after 250 and 375, wd 1e-4, "
        "Nesterov momentum 0.9). Started again on the same --out folder, it resumes. The flags "
        "are sdnet.settings.TrainConfig's fields, declared there once.",
        formatter_class=_DefaultsFormatter,
    )
    settings.add_train_arguments(p)
    ranks.add_rank_arguments(p)  # how many processes train the run: not settings of the run
    p.set_defaults(func=_cmd_train)

    def one_line_error(message: str) -> None:
        """A bad flag is one line (not usage + error), like every other `sdnet` error."""
        p.exit(2, f"{p.prog}: error: {message} (see `{p.prog} --help`)\n")

    p.error = one_line_error


def _cmd_train(args: argparse.Namespace) -> int:
    from sdnet.train import loop as train

    config = settings.check_config(settings.from_arguments(args))  # one line for a bad value
    if args.nproc > 1 or args.nodes > 1:  # one run on several ranks (sdnet.jobs.ranks)
        return ranks.launch(config, args.nproc, args.nodes)
    train.train(config)
    return 0


def _folder_sets_text() -> str:
    """'svhn: one of train_32x32.mat, ...' for each data set of several files (the registry's)."""
    return "; ".join(f"{name}: one of {', '.join(spec.dataset_spec(name).file_names)}"
                     for name in spec.DATASETS if spec.dataset_spec(name).folder)


def _add_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="download, prepare or fake a data set")
    dsub = p.add_subparsers(dest="data_command", required=True)
    folder_sets = ", ".join(name for name in spec.DATASETS if spec.dataset_spec(name).folder)

    d = dsub.add_parser("download", help="fetch and verify one official file (https, file:// or path)")
    d.add_argument("--dataset", choices=spec.DATASETS, required=True)
    d.add_argument("--file", default=None,
                   help=f"which official file (required for a data set of several files, "
                   f"{_folder_sets_text()}; others: their one archive, the default)")
    d.add_argument("--url", default=None,
                   help=f"archive URL or path (default: the official one); for {folder_sets} the "
                   "FOLDER holding the files (https, http, file:// or a path), the file name is "
                   "appended")
    d.add_argument("--md5", default=None,
                   help="expected md5 (default: the official one of that file; 'none' skips the "
                   "check, e.g. for locally generated fakes)")
    d.add_argument("--out", type=Path, required=True, help="folder that receives the file")
    d.set_defaults(func=_cmd_download)

    r = dsub.add_parser("prepare", help="turn the downloaded files into train/val/test .npz arrays")
    r.add_argument("--dataset", choices=spec.DATASETS, required=True)
    r.add_argument("--archive", type=Path, required=True,
                   help="the downloaded archive, or the folder holding the data set's files "
                   f"(for {folder_sets}: that folder)")
    val_size_sets = ", ".join(n for n in spec.DATASETS if "val_size" in spec.dataset_spec(n).options)
    r.add_argument("--val-size", type=_non_negative_int, default=None,
                   help=f"validation images, for {val_size_sets} (default: the data set's own: "
                   "CIFAR-10/100 hold a tenth of train out, 5000 of the real 50,000; CINIC-10 "
                   "takes its shipped valid split, or a seeded subset of it; 0: none)")
    r.add_argument("--use-extra", action=argparse.BooleanOptionalAction, default=None,
                   help="svhn: train on train + extra (default) or train only")
    r.add_argument("--val-per-class-train", type=_non_negative_int, default=None,
                   help="svhn: validation images per digit taken from train (default 400)")
    r.add_argument("--val-per-class-extra", type=_non_negative_int, default=None,
                   help="svhn: validation images per digit taken from extra (default 200)")
    r.add_argument("--max-side", type=_positive_int, default=None,
                   help="imagenet: training images stored with the longer side at most this "
                   "(default 512)")
    r.add_argument("--split-seed", type=_non_negative_int, default=0)
    r.add_argument("--workers", type=_positive_int, default=None,
                   help="image-decoding processes, for data sets of image files (default: all "
                   "cores)")
    r.add_argument("--out", type=Path, required=True)
    r.set_defaults(func=_cmd_prepare)

    f = dsub.add_parser("fake", help="write a small data set in exactly the real format")
    f.add_argument("--format", choices=spec.DATASETS, required=True)
    f.add_argument("--per-class", type=_positive_int, default=None,
                   help="images per class and split (default: small)")
    f.add_argument("--full-size", action="store_true", help="as many images as the real data set")
    f.add_argument("--seed", type=_non_negative_int, default=0)
    f.add_argument("--out", type=Path, required=True,
                   help=f"archive path to write, or a folder for it (for {folder_sets}: the folder "
                   "that receives its files)")
    f.set_defaults(func=_cmd_fake)


def _cmd_download(args: argparse.Namespace) -> int:
    from sdnet import data

    path = data.download(args.dataset, args.out, url=args.url, md5=args.md5, file=args.file)
    print(path)
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from sdnet import data

    per_class = {key: value for key, value in (("train", args.val_per_class_train),
                                               ("extra", args.val_per_class_extra))
                 if value is not None}
    data.prepare(args.dataset, args.archive, args.out, val_size=args.val_size,
                 split_seed=args.split_seed, workers=args.workers, use_extra=args.use_extra,
                 val_per_class=per_class or None,
                 **({"max_side": args.max_side} if args.max_side is not None else {}))
    return 0


def _cmd_fake(args: argparse.Namespace) -> int:
    from sdnet import data

    path = data.make_fake(args.format, args.out, per_class=args.per_class, seed=args.seed,
                          full_size=args.full_size)
    print(path)
    return 0


# `sdnet report` commands (what the workflow's report rules run): name, help, the sdnet.report
# function, and its arguments as (flag, the function's keyword, add_argument options).
_PATH = {"type": Path, "required": True}
_RUNS_CSV = ("--runs", "runs_csv", _PATH)
_EPOCHS_CSV = ("--epochs", "epochs_csv", _PATH)
_OUT_DIR = ("--out-dir", "out_dir", {**_PATH, "help": "folder that receives the files"})
_REPORT_COMMANDS = (
    ("aggregate", "run folders -> runs.csv, epochs.csv (and gradients.csv)", "aggregate", (
        ("runs", "run_dirs", {"type": Path, "nargs": "+",
                              "help": "run folders (or their summary.json)"}),
        ("--out-runs", "runs_csv", _PATH),
        ("--out-epochs", "epochs_csv", _PATH),
        ("--out-gradients", "gradients_csv", {
            "type": Path, "default": None,
            "help": "gradients.csv to write: every run's per-block gradient strength"}))),
    ("compare", ("runs.csv -> comparisons.csv (each variant against constant depth: Welch's "
                 "t-test, 95%% interval, Holm)"), "write_comparisons", (
        _RUNS_CSV, ("--out", "out_csv", {**_PATH, "help": "comparisons.csv to write"}))),
    ("tables", "runs.csv -> LaTeX and Markdown tables", "render_tables", (
        _RUNS_CSV, ("--comparisons", "comparisons_csv", {
            "type": Path, "default": None, "help": "comparisons.csv (default: computed from "
            "--runs)"}), _OUT_DIR)),
    ("figures", "runs.csv + epochs.csv -> PDF and PNG figures", "plot_figures", (
        _RUNS_CSV, _EPOCHS_CSV, _OUT_DIR,
        ("--log-scale", "log_scale", {"action": argparse.BooleanOptionalAction, "default": True,
                                      "help": "a log-scaled error axis (default: yes)"}))),
    ("p-last-figure", "runs.csv of a p_L sweep -> error_vs_p_last (PDF and PNG)",
     "plot_p_last_figure", (_RUNS_CSV, _OUT_DIR)),
    ("gradient-figures", ("runs.csv + epochs.csv + gradients.csv -> gradient_magnitude and "
                          "gradient_profile (PDF and PNG)"), "plot_gradient_figures", (
        _RUNS_CSV, _EPOCHS_CSV, ("--gradients", "gradients_csv", _PATH), _OUT_DIR)),
    ("heatmap", "runs.csv of a grid over depth and p_L -> error_heatmap (PDF and PNG)",
     "plot_heatmap_figure", (_RUNS_CSV, _OUT_DIR)),
)


def _add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="aggregate run folders, compare variants, render tables "
                       "and figures")
    rsub = p.add_subparsers(dest="report_command", required=True)
    for name, help_text, function, arguments in _REPORT_COMMANDS:
        r = rsub.add_parser(name, help=help_text)
        for flag, keyword, options in arguments:
            if flag.startswith("-"):
                metavar = None if "action" in options else flag[2:].upper().replace("-", "_")
                r.add_argument(flag, dest=keyword, metavar=metavar, **options)
            else:
                r.add_argument(keyword, metavar=flag, **options)
        r.set_defaults(func=_cmd_report, report_function=function,
                       report_keywords=[keyword for _, keyword, _ in arguments])


def _cmd_report(args: argparse.Namespace) -> int:
    """Run one sdnet.report step, its progress lines (`wrote ...`) on stderr: the rule's log."""
    import logging

    from sdnet import report

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ours = logging.getLogger("sdnet")
    level = ours.level
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    try:
        getattr(report, args.report_function)(
            **{keyword: getattr(args, keyword) for keyword in args.report_keywords})
    finally:
        ours.removeHandler(handler)
        ours.setLevel(level)
    return 0


def _add_status_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status", help="where the grid stands: every run's state, epochs, errors, ETA",
        description="Reads the run folders only (no torch): done, running (with ETA), "
        "interrupted, stale (settings differ from the config) or not started, then totals "
        "(training hours; device-hours spent per device and left). "
        "Without --results it lists the grid of config.yaml (+ --configfile files, merged as "
        "Snakemake merges them), run from the repository root; elsewhere, the grid of the "
        "--configfile files.")
    p.add_argument("--configfile", type=Path, nargs="+", default=[],
                   help="config files merged over config.yaml (when there is one here), as "
                   "given to snakemake")
    p.add_argument("--results", type=Path, default=None,
                   help="list the run folders under this folder instead of the config's grid")
    p.add_argument("--json", action="store_true", help="a JSON list, one object per run")
    p.set_defaults(func=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    from sdnet.ops import status

    if args.results is not None:
        if args.configfile:
            raise SdnetError("--results lists the run folders under a folder, without a config; "
                             "--configfile applies only without --results")
        rows = status.folder_rows(args.results)
    else:
        # config.yaml here (the repository root) under the --configfile files, as snakemake
        # merges them; elsewhere (an installed sdnet) the --configfile files alone
        base = [Path("config.yaml")] if Path("config.yaml").is_file() else []
        if not base and not args.configfile:
            raise SdnetError("no config.yaml here: run `sdnet status` in the repository root, "
                             "pass --configfile FILE, or --results DIR to list the run folders "
                             "under DIR")
        rows = status.grid_rows([*base, *args.configfile])
    print(status.as_json(rows) if args.json else status.render(rows))
    return 0


def _add_estimate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "estimate", help="what the grid will cost: device-hours per data set, network, variant",
        description="Projects, for the grid of config.yaml (+ --configfile files), the "
        "device-hours of every data set, network and variant: runs x epochs x seconds per "
        "epoch, measured from the grid's runs that have trained, else calibrated by a few "
        "seconds of the real training step and evaluation pass on this machine's device "
        "(cached per device and settings). Run from the repository root.")
    p.add_argument("--configfile", type=Path, nargs="+", default=[],
                   help="config files merged over config.yaml, as given to snakemake")
    p.add_argument("--device", default=None,
                   help="device to calibrate on: auto, cpu, cuda or cuda:N (default: the "
                   "config's train.device)")
    p.add_argument("--gpus", type=_positive_int, default=None,
                   help="also the wall time on N devices")
    p.add_argument("--cores", type=_positive_int, default=None,
                   help="CPU: the --cores the grid will run with (trainers side by side: "
                   "cores / train_resources.cpus; default: this machine's CPUs)")
    p.add_argument("--json", action="store_true",
                   help="a JSON list: one object per data set, network and variant, then the "
                   "total")
    p.set_defaults(func=_cmd_estimate)


def _cmd_estimate(args: argparse.Namespace) -> int:
    from sdnet.ops import estimate

    base = Path("config.yaml")
    if not base.is_file():
        raise SdnetError("no config.yaml here: run `sdnet estimate` in the repository root")
    result = estimate.estimate([base, *args.configfile], device=args.device, cores=args.cores)
    print(estimate.as_json(result, args.gpus) if args.json else estimate.render(result, args.gpus))
    return 0


def _add_launch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "launch", help="train runs side by side in one job, keeping every attempt's log "
        "(what the workflow's training jobs run)",
        description="Starts `sdnet train` for each run at once, copies its output into LOG and "
        "into the run folder's train.log (every attempt, under an attempt header), forwards "
        "SIGTERM/SIGINT and waits for all. Runs: LOG -- TRAIN_ARGS..., separated by ::.")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="OMP_NUM_THREADS of each trainer")
    p.add_argument("--runs-per-gpu", type=_positive_int, default=None,
                   help="trainers sharing one GPU ($SDNET_RUNS_PER_GPU of each trainer)")
    p.add_argument("runs", nargs=argparse.REMAINDER, help="LOG -- TRAIN_ARGS... [:: ...]")
    p.set_defaults(func=_cmd_launch)


def _cmd_launch(args: argparse.Namespace) -> int:
    from sdnet.jobs import packs as launch

    members = launch.parse_members(args.runs)
    return launch.launch(members, threads=args.threads, runs_per_gpu=args.runs_per_gpu)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdnet",
        description="Deep Networks with Stochastic Depth (Huang et al. 2016): data, training, reports.",
    )
    parser.add_argument("--version", action="version", version=f"sdnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(sub)
    _add_data_parser(sub)
    _add_report_parser(sub)
    _add_status_parser(sub)
    _add_estimate_parser(sub)
    _add_launch_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return guarded(lambda: args.func(args))
    except BrokenPipeError:
        # `sdnet status | head`: the reader left; Python's advice is to point stdout at devnull
        # so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
