"""What `sdnet status` costs on a large grid: reading 1,000 run folders (torch-free path).

The issue's bar is 1 s for the whole command on 1,000 runs; this times the two readings it is
made of, on synthetic folders written by the run folder's own writers (`sdnet.train.runfolder`):
- `run_status`: one folder's state (summary.json, run.json, metrics.csv, the lock), per folder;
- `folder_rows`: the whole results tree as `sdnet status` walks it.
Each is a median over `--repeats` rounds (interleaved); no test asserts these figures.

    .venv/bin/python -m benchmarks.bench_status
    .venv/bin/python -m benchmarks.bench_status --quick    # 100 folders
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks import common
from sdnet.ops import status
from sdnet.train import runfolder

ROW = {"lr": 0.1, "train_loss": 1.0, "train_error": 40.0, "val_error": 40.0, "test_error": 41.0,
       "epoch_seconds": 2.0, "blocks_computed": 1.0}


def fake_grid(results: Path, count: int, network: str = "resnet110") -> list[Path]:
    """`count` run folders written with the trainer's own writers, half finished, half
    interrupted after 3 epochs (tests/ops/test_status.py reads them too)."""
    folders = []
    for i in range(count):
        folder = results / "runs" / "cifar10" / network / f"v{i % 10}" / f"seed{i // 10}"
        folder.mkdir(parents=True)
        runfolder.write_metrics(folder, [dict(ROW, epoch=e) for e in range(1, 4)])
        if i % 2:
            runfolder.write_summary(folder, {"epochs": 3, "best_val_error": 40.0,
                                             "final_test_error": 41.0, "train_seconds": 6.0})
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    count = 100 if args.quick else 1000
    repeats = args.repeats or (3 if args.quick else 7)
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        folders = fake_grid(results, count)
        samples = common.interleave({
            "run_status": lambda: [runfolder.run_status(f) for f in folders],
            "folder_rows": lambda: status.folder_rows(results),
        }, repeats=repeats, items={"run_status": count, "folder_rows": count})
    rows = [{"reading": name, "folders": count, **s.summary()} for name, s in samples.items()]
    common.write_result(args.out, "status", args, {"readings": rows})
    common.print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
