"""benchmarks/bench_imagenet.py runs (tiny sizes) and records what it claims to."""

from __future__ import annotations

import json

from benchmarks import bench_imagenet


def test_imagenet_bench_runs_tiny(tmp_path) -> None:
    bench_imagenet.main(["--quick", "--parts", "loader", "prepare", "--batch-size", "4",
                         "--batches", "2", "--repeats", "1", "--workers", "0", "--out",
                         str(tmp_path)])
    doc = json.loads((tmp_path / "imagenet-loader-prepare-quick.json").read_text())
    loader, prepare = doc["results"]["loader"], doc["results"]["prepare"]
    assert loader["sdnet"]["items"] == loader["tv-w0"]["items"] == 8
    assert loader["sdnet"]["items_per_s"] > 0 and loader["mean_jpeg_kb"] > 1
    assert prepare["projection_16_cores_min"] > 0
    assert doc["machine"]["cpu"] and "load_avg_1m" in doc["machine"]
