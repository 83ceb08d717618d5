"""yolox-bench: rows, failure rows, writers (table, JSON, CSV, PNG), with tiny models."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from yolox_deploy.measure.bench import BASELINE, BenchConfig, Row, overhead_summary, run_bench  # noqa: E402
from yolox_deploy.measure.report import (  # noqa: E402
    _label_offsets,
    markdown_table,
    write_csv,
    write_json,
    write_plot,
)
from yolox_deploy.measure.timing import summarize, time_interleaved  # noqa: E402
from yolox_deploy.cli import bench as bench_cli  # noqa: E402


def test_summary_statistics():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["p50"] == 3.0 and s["mean"] == 22.0 and 4.0 < s["p90"] < 100.0 and s["p99"] > s["p90"]


def test_interleaving_times_blocks_after_a_settling_call():
    log: list[str] = []

    def call_of(name):
        def call():
            log.append(name)
            return (float(len(log)), 0.0, 0.0)
        return call

    calls = [(Row("a", "fp32", 1), call_of("a")), (Row("b", "fp32", 1), call_of("b"))]
    samples = time_interleaved(calls, BenchConfig(backends=[], warmup=1, iters=7, block=5, settle_ms=0,
                                                  progress=False))
    # warm-up, then per round: one untimed call + a block of timed calls per row (5, then the last 2)
    assert "".join(log) == "ab" + "a" * 6 + "b" * 6 + "a" * 3 + "b" * 3
    assert [len(v) for v in samples.values()] == [7, 7]
    # the settling call's time is never recorded
    assert [s[0] for s in samples[0]] == [4.0, 5.0, 6.0, 7.0, 8.0, 16.0, 17.0]


def test_no_call_starts_after_the_deadline_and_a_row_without_a_timed_call_is_a_cut():
    """yolox-tune's hard budget: warm-up, settling and timed calls all stop at the deadline."""
    import time

    from yolox_deploy.measure.timing import TimingCut

    def slow():
        time.sleep(0.02)
        return (20.0, 0.0, 0.0)

    calls = [(Row("a", "fp32", 1), slow), (Row("b", "fp32", 1), slow)]
    cfg = BenchConfig(backends=[], warmup=3, seconds=10.0, block=5, settle_ms=0, progress=False)
    started = time.monotonic()
    samples = time_interleaved(calls, cfg, deadline=started + 0.5)
    assert time.monotonic() - started < 0.5 + 0.15  # at most the call in flight past it (10 s asked)
    assert all(len(v) >= 1 for v in samples.values())
    with pytest.raises(TimingCut, match="timing cut at the deadline"):
        time_interleaved(calls, cfg, deadline=time.monotonic() + 0.05)  # spent in warm-up: no timed call


def test_settling_lasts_settle_ms_so_the_previous_rows_threads_go_quiet(monkeypatch):
    import yolox_deploy.measure.timing as bench_module

    now = [0.0]
    monkeypatch.setattr(bench_module.time, "perf_counter", lambda: now[0])
    log: list[str] = []

    def call_of(name, ms):
        def call():
            log.append(name)
            now[0] += ms / 1e3
            return (ms, 0.0, 0.0)
        return call

    calls = [(Row("fast", "fp32", 1), call_of("f", 12.0)), (Row("slow", "fp32", 1), call_of("s", 250.0))]
    time_interleaved(calls, BenchConfig(backends=[], warmup=0, iters=2, block=2, settle_ms=50, progress=False))
    # 12 ms calls: 5 untimed ones reach 60 ms >= 50; a slower call than settle_ms settles once
    assert "".join(log) == "f" * 5 + "ff" + "s" + "ss"


def test_scatter_labels_of_overlapping_points_are_staggered():
    assert _label_offsets([(10.0, 0.3052), (16.2, 0.3052), (16.3, 0.3053), (42.0, 0.3052), (20.0, 0.29)]) == \
        [0.0, 0.0, -10.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory, tiny_checkpoint):
    cfg = BenchConfig(backends=["onnxruntime", "torch", "no-such-backend"], weights=tiny_checkpoint,
                      model_name=None, precisions=["fp32", "fp16", "int8"], batches=[1, 2], input_size=(64, 64),
                      warmup=1, iters=3, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    return run_bench(cfg)


def rows_by(result, backend, precision, batch):
    return next(r for r in result["rows"] if (r.backend, r.precision, r.batch) == (backend, precision, batch))


def test_rows_time_every_stage_and_keep_failures_with_reasons(tiny_result):
    ok = rows_by(tiny_result, "onnxruntime", "fp32", 2)
    assert ok.ok and set(ok.ms) == {"preprocess", "inference", "postprocess", "end_to_end"}
    e2e = ok.ms["end_to_end"]
    assert 0 < e2e["p50"] <= e2e["p90"] <= e2e["p99"] and ok.images_per_s > 0
    fp16_onnx = rows_by(tiny_result, "onnxruntime", "fp16", 1)  # the FP16 ONNX, run by ONNX Runtime
    assert fp16_onnx.ok and fp16_onnx.model_file.endswith("model-fp16.onnx")
    assert rows_by(tiny_result, "onnxruntime", "int8", 1).status == "int8 needs --data DIR for calibration images"
    assert "fp16 is not offered" in rows_by(tiny_result, "torch", "fp16", 1).status
    assert "unknown backend 'no-such-backend'" in rows_by(tiny_result, "no-such-backend", "fp32", 1).status
    baseline = rows_by(tiny_result, BASELINE, "fp32", 1)
    assert baseline.ok and baseline.ms["end_to_end"]["p50"] > 0
    assert "e2e_ratio_vs_baseline" in tiny_result["summary"]


def test_writers(tiny_result, tmp_path):
    from yolox_deploy.precision import cpu_features

    table = markdown_table(tiny_result)
    assert "| onnxruntime | fp32 | 2 |" in table and "unknown backend" in table and "Machine:" in table
    assert tiny_result["machine"]["cpu_features"] == list(cpu_features())
    assert f"CPU features: {' '.join(cpu_features()) or 'unknown'};" in table  # which precisions could run
    assert "postprocess: C++ kernel built;" in table  # the header says which postprocess ran
    write_json(tiny_result, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["machine"]["cores"] >= 1 and data["config"]["input_size"] == [64, 64]
    assert {r["backend"] for r in data["rows"]} >= {"onnxruntime", "torch", BASELINE}
    write_csv(tiny_result, tmp_path / "r.csv")
    with open(tmp_path / "r.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "backend" and len(rows) == 1 + len(tiny_result["rows"])
    pytest.importorskip("matplotlib")
    write_plot(tiny_result, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bf16_row_runs_the_fp32_model_in_bf16_where_the_cpu_has_it(tmp_path, tiny_checkpoint):
    ov = pytest.importorskip("openvino")
    cfg = BenchConfig(backends=["openvino", "torch"], weights=tiny_checkpoint, precisions=["bf16"], batches=[1],
                      input_size=(64, 64), warmup=0, iters=1, cache_dir=tmp_path, progress=False, baseline=False)
    openvino_row, torch_row = run_bench(cfg)["rows"]
    assert torch_row.status == "torch does not compute in bf16; openvino does"
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert openvino_row.ok and openvino_row.arithmetic == "bf16"
        assert openvino_row.model_file.endswith("model-fp32.xml")
    else:
        assert "needs BF16 support" in openvino_row.status


def test_export_failure_becomes_a_row(tmp_path, tiny_checkpoint):
    pytest.importorskip("openvino")
    cfg = BenchConfig(backends=["openvino"], weights=tiny_checkpoint, precisions=["int8"], batches=[1],
                      input_size=(64, 64), warmup=0, iters=1, cache_dir=tmp_path, progress=False, baseline=False)
    row, = run_bench(cfg)["rows"]
    assert not row.ok and "int8 needs --data" in row.status


def test_overhead_summary_compares_with_the_baseline_row():
    def row(backend, pre, inf, post):
        r = Row(backend, "fp32", 1)
        r.ms = {stage: summarize([v]) for stage, v in
                zip(("preprocess", "inference", "postprocess", "end_to_end"), (pre, inf, post, pre + inf + post))}
        return r

    s = overhead_summary([row("onnxruntime", 1.0, 20.0, 1.0), row(BASELINE, 1.0, 20.0, 3.0)])
    assert s["pre_post_overhead_pct"] == pytest.approx(10.0) and s["e2e_ratio_vs_baseline"] == pytest.approx(22 / 24)


def test_cli_writes_json_csv_png(tmp_path, tiny_checkpoint, capsys):
    pytest.importorskip("matplotlib")
    args = ["--weights", str(tiny_checkpoint), "--backends", "onnxruntime",
            "--input-size", "64", "64", "--iters", "2", "--warmup", "0", "--cache-dir", str(tmp_path / "c"),
            "--json", str(tmp_path / "b.json"), "--csv", str(tmp_path / "b.csv"), "--plot", str(tmp_path / "b.png")]
    assert bench_cli.main(args) == 0
    out = capsys.readouterr().out
    assert "| onnxruntime | fp32 | 1 |" in out
    assert all((tmp_path / f).is_file() for f in ("b.json", "b.csv", "b.png"))


def test_cli_argument_errors(capsys):
    assert bench_cli.main(["--precisions", "fp8"]) == 2
    assert "unknown precision 'fp8'" in capsys.readouterr().err
    assert bench_cli.main(["--ann", "x.json"]) == 2
    assert "--ann needs --data" in capsys.readouterr().err
    for bad in (["--iters", "0"], ["--block", "0"], ["--warmup", "-1"], ["--seconds", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            bench_cli.main(bad)
        assert exit_info.value.code == 2 and "must be >=" in capsys.readouterr().err


def test_model_files_mode_needs_no_export(tmp_path, tiny_onnx, nano_onnx):
    cfg = BenchConfig(backends=[], models=[nano_onnx, tiny_onnx, tmp_path / "x.tflite"], batches=[1, 2],
                      input_size=None, warmup=0, iters=2, cache_dir=tmp_path, progress=False)
    result = run_bench(cfg)
    rows = {(r.backend, r.batch): r for r in result["rows"]}
    assert rows[("onnxruntime (yolox_nano.onnx)", 1)].ok
    assert "static batch of 1" in rows[("onnxruntime (yolox_nano.onnx)", 2)].status
    assert rows[("onnxruntime (tiny.onnx)", 2)].ok  # dynamic batch; input size from its metadata
    assert "unknown model file kind .tflite" in rows[("x.tflite", 1)].status
    baseline = rows[(BASELINE, 1)]
    assert baseline.ok and "yolox_nano.onnx" in baseline.model_file
    assert "Model: yolox_nano.onnx, tiny.onnx, x.tflite (model files as given)" in markdown_table(result)


def test_formats_sharing_a_suffix_get_their_own_cache_files(tmp_path, tiny_checkpoint):
    """OpenVINO's and ncnn's weights are both '.bin': exported side by side they must not
    overwrite each other (the ncnn sidecar's checksum would catch it, as a failed row)."""
    pytest.importorskip("openvino")
    pytest.importorskip("ncnn")
    pytest.importorskip("pnnx")
    images = tmp_path / "images"
    images.mkdir()
    import cv2

    cv2.imwrite(str(images / "a.png"), np.full((48, 64, 3), 90, np.uint8))
    cfg = BenchConfig(backends=["ncnn", "openvino"], weights=tiny_checkpoint, model_name=None,
                      precisions=["fp32"], batches=[1], input_size=(64, 64), warmup=0, iters=1,
                      cache_dir=tmp_path / "cache", progress=False, baseline=False)
    result = run_bench(cfg)
    assert all(r.ok for r in result["rows"]), [r.status for r in result["rows"]]
    from yolox_deploy import Detector

    for row in result["rows"]:  # re-open after every export: still the file each sidecar describes
        Detector(row.model_file)


def test_tensorrt_rows_build_from_the_onnx_artifact_of_each_precision(tmp_path, tiny_checkpoint, monkeypatch):
    """The latency row path of yolox-bench for tensorrt, on the labelled stand-in tensorrt (the
    numbers here are ONNX Runtime's; a GPU gives the real ones)."""
    import tensorrt_fake

    tensorrt_fake.install(monkeypatch, "11.4.0")
    cfg = BenchConfig(backends=["tensorrt"], weights=tiny_checkpoint, precisions=["fp32", "fp16", "int8-nncf"],
                      batches=[1, 2], input_size=(64, 64), warmup=0, iters=1, cache_dir=tmp_path, progress=False,
                      baseline=False)
    rows = run_bench(cfg)["rows"]
    assert [(r.precision, r.batch, r.ok) for r in rows] == [("fp32", 1, True), ("fp32", 2, True), ("fp16", 1, True),
                                                           ("fp16", 2, True), ("int8-nncf", 1, False),
                                                           ("int8-nncf", 2, False)]
    assert rows[0].model_file.endswith("model-fp32.engine") and "OpenVINO's NNCF IR" in rows[-1].status


@pytest.mark.gpu
def test_tensorrt_latency_rows_on_a_gpu(tmp_path, nano_pth, coco_dir):  # pragma: no cover
    """The yolox-bench rows the issue "GPU checks when a GPU is lent" reads: nano engines per
    precision against ONNX Runtime FP32 in the same run."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU")
    cfg = BenchConfig(backends=["onnxruntime", "tensorrt"], weights=nano_pth, precisions=["fp32", "fp16", "int8"],
                      batches=[1, 8], warmup=5, iters=30, cache_dir=tmp_path, data=coco_dir / "images",
                      progress=False)
    rows = [r for r in run_bench(cfg)["rows"] if r.backend == "tensorrt"]
    assert len(rows) == 6 and all(r.ok for r in rows), [r.status for r in rows]


def test_sliced_twin_rows_give_slices_per_second(tmp_path, tiny_onnx):
    from yolox_deploy import SliceSettings

    cfg = BenchConfig(backends=[], models=[tiny_onnx], batches=[1, 4], warmup=0, iters=2, cache_dir=tmp_path,
                      progress=False, baseline=False, slices=SliceSettings(128, overlap=0.25))
    result = run_bench(cfg)
    plain = {r.batch: r for r in result["rows"] if not r.sliced}
    sliced = {r.batch: r for r in result["rows"] if r.sliced}
    assert set(sliced) == {1, 4} and all(r.ok for r in sliced.values())
    for row in sliced.values():  # 640x480 noise in 128x128 windows moving 96 px: 7 x 5 windows + the whole
        assert row.sliced.startswith("128x128 ov 0.25 +whole") and row.slices_per_image == 36
        assert row.slices_per_s == pytest.approx(36 * row.images_per_s)
    assert all(r.slices_per_s is None for r in plain.values())
    assert "slicing_overhead_pct" in result["summary"]
    assert "slices/s" in markdown_table(result) and "slicing and merging cost" in markdown_table(result)


def test_cli_exit_code_says_whether_every_row_ran(tmp_path, nano_onnx, capsys):
    """Exit 2 with one line when no row ran, 1 when a row of a named backend failed, 0 otherwise;
    --backends with --model runs each file on each named backend (was ignored)."""
    common = ["--iters", "1", "--warmup", "0", "--settle-ms", "0", "--no-baseline", "--cache-dir", str(tmp_path / "c")]
    (tmp_path / "notes.txt").write_text("not a model")
    for args, fragment in ((["--backends", "foo"], "unknown backend 'foo' in --backends"),
                           (["--model", str(nano_onnx), "--backends", "foo"], "unknown backend 'foo'"),
                           (["--model", str(tmp_path / "missing.onnx")], "model file not found"),
                           (["--model", str(tmp_path / "notes.txt")], "no row ran (1 tried)")):
        assert bench_cli.main([*args, *common]) == 2, args
        err = [line for line in capsys.readouterr().err.splitlines() if "yolox-bench:" in line]
        assert len(err) == 1 and fragment in err[0], err
    assert bench_cli.main(["--model", str(nano_onnx), "--backends", "onnxruntime,ncnn", *common]) == 1
    captured = capsys.readouterr()
    assert "1 of 2 rows failed; first: ncnn (yolox_nano.onnx)" in captured.err
    assert "| onnxruntime (yolox_nano.onnx) | as exported | 1 |" in captured.out and "FAILED: " in captured.out
    assert bench_cli.main(["--model", str(nano_onnx), *common]) == 0
