"""Smoke tests of the benchmark scripts: they import, run on tiny sizes and write their JSON.

Benchmarks are never pass/fail on their numbers; these tests only check that the harness and
the scripts work, so that a change elsewhere cannot silently break them.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import (
    bench_data,
    bench_gradients,
    bench_step,
    bench_workflow,
    common,
    reference,
    report,
)


def test_interleave_rotates_order_and_times_every_round() -> None:
    calls: list[str] = []
    variants = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    samples = common.interleave(variants, repeats=3, warmup=1)
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")
    assert all(len(s.seconds) == 3 for s in samples.values())


def test_paired_ratio_uses_rounds_in_pairs() -> None:
    a = common.Samples(seconds=[1.0, 2.0, 3.0])
    b = common.Samples(seconds=[2.0, 4.0, 6.0])
    assert common.paired_ratio(a, b)["paired_median"] == pytest.approx(0.5)
    assert a.summary()["items_per_s"] == pytest.approx(0.5)


def test_reference_drop_rule_matches_sdnet_survival() -> None:
    from sdnet.models import survival_probabilities

    drops = reference.linear_drops(20, 0.5)
    assert [1 - d for d in drops] == pytest.approx(survival_probabilities(9, "linear", 0.5))
    assert reference.linear_drops(20, None) == [0.0] * 9


def test_thousand_job_grid_has_a_thousand_training_runs() -> None:
    experiment = bench_workflow.grid_overlay(1000)["experiment"]
    runs = 1
    for key in ("datasets", "depths", "variants", "seeds"):
        runs *= len(experiment[key])
    assert runs == 1000
    assert bench_workflow.count_jobs("job  count\ntrain_run  40\ntotal  48\n") == 48
    assert bench_workflow.count_jobs("train_run  40\n", "train_run") == 40


def test_step_bench_runs_tiny(tmp_path) -> None:
    bench_step.main(["--quick", "--depths", "8", "--batch-size", "4", "--steps", "1",
                     "--repeats", "1", "--warmup", "0", "--data-size", "16", "--out",
                     str(tmp_path)])
    doc = json.loads((tmp_path / "step-quick.json").read_text())
    (depth,) = doc["results"]["depths"]
    assert set(depth["variants"]) == {"sdnet-base", "sdnet-sd", "ref-base", "ref-sd"}
    assert 0.5 < depth["expected_flop_fraction"] < 1.0
    assert doc["machine"]["versions"]["torch"] != "absent"


def test_gradients_bench_runs_tiny(tmp_path) -> None:
    bench_gradients.main(["--quick", "--survival", "linear", "--repeats", "1", "--warmup", "0",
                          "--meter-calls", "2", "--out", str(tmp_path)])
    doc = json.loads((tmp_path / "gradients-quick.json").read_text())
    (rule,) = doc["results"]["rules"]
    assert set(rule["variants"]) == set(bench_gradients.METERS) == set(rule["variants_cpu"])
    assert rule["all_over_none_cpu"]["paired_median"] > 0
    assert rule["meter_alone_s"]["all"] > 0


def test_step_bench_sdnet_only_on_the_cpu_clock(tmp_path) -> None:
    bench_step.main(["--quick", "--depths", "8", "--batch-size", "4", "--steps", "1",
                     "--repeats", "2", "--warmup", "0", "--sdnet-only", "--clock", "cpu",
                     "--out", str(tmp_path)])
    doc = json.loads((tmp_path / "step-quick.json").read_text())
    (depth,) = doc["results"]["depths"]
    assert set(depth["variants"]) == {"sdnet-base", "sdnet-sd"}
    assert depth["clock"] == "cpu" and len(depth["sd_over_base_sdnet_rounds"]) == 2
    depth["depth"] = 20  # the report shows 20/56/110: it reads a result without references
    (tmp_path / "step.json").write_text(json.dumps(doc))
    line = next(r for r in report.render(tmp_path).splitlines() if "ResNet-20 step img/s" in r)
    assert " / -" in line and "not run" not in line


def test_data_bench_runs_tiny(tmp_path) -> None:
    bench_data.main(["--quick", "--batch-size", "8", "--batches", "2", "--repeats", "1",
                     "--workers", "0", "--data-size", "32", "--out", str(tmp_path)])
    doc = json.loads((tmp_path / "data-quick.json").read_text())
    assert doc["results"]["speedup_vs_tv-w0"] > 0
    assert doc["results"]["proposal_speedup_vs_tv-w0"] > 0


def test_report_renders_without_results(tmp_path) -> None:
    text = report.render(tmp_path)
    assert "not run" in text and "<= 0.77" in text


@pytest.mark.parametrize("mode", ["RGB", "L", "P"])
def test_proposed_png_decode_matches_pil_convert(mode: str) -> None:
    import io

    import numpy as np
    from PIL import Image

    from benchmarks import proposals

    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    image = image if mode == "RGB" else image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert np.array_equal(proposals.decode_png_rgb(buffer.getvalue()), expected)
