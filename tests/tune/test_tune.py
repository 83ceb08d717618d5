"""yolox-tune end to end on YOLOX-Nano with small budgets: the choice, the deployment folder,
loading it everywhere, and every bad input in one line with nothing half-written."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from yolox_deploy import Detector
from yolox_deploy.cli import bench as bench_cli
from yolox_deploy.cli import detect as detect_cli
from yolox_deploy.cli import eval as eval_cli
from yolox_deploy.cli import tune as tune_cli
from yolox_deploy.errors import ModelFileError
from yolox_deploy.runtimes import load_backend
from yolox_deploy.tune.choice import TuneRow, choose

pytest.importorskip("openvino")
pytest.importorskip("pycocotools")

COUNT = 40  # images: the smallest split that judges INT8 (20 calibration, 20 evaluation)


@pytest.fixture(scope="module")
def subset(coco_dir, tmp_path_factory):
    """The first COUNT shared images in a folder of their own, with their annotations."""
    folder = tmp_path_factory.mktemp("subset")
    images = folder / "images"
    images.mkdir()
    ann = json.loads((coco_dir / "instances_val2017.json").read_text())
    kept = sorted(ann["images"], key=lambda e: e["id"])[:COUNT]
    for entry in kept:
        (images / entry["file_name"]).write_bytes((coco_dir / "images" / entry["file_name"]).read_bytes())
    ids = {e["id"] for e in kept}
    ann = {**ann, "images": kept, "annotations": [a for a in ann["annotations"] if a["image_id"] in ids]}
    (folder / "ann.json").write_text(json.dumps(ann))
    return images, folder / "ann.json"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def tune(capsys, *args) -> tuple[int, str, str]:
    rc = tune_cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def tuned(nano_onnx, subset, cache, tmp_path_factory):
    """ONNX Runtime and OpenVINO x fp32/int8 on one thread, with the COCO labels."""
    images, ann = subset
    out = tmp_path_factory.mktemp("deploy") / "nano"
    with pytest.MonkeyPatch.context():
        rc = tune_cli.main(["--model", str(nano_onnx), "--data", str(images), "--ann", str(ann), "-o", str(out),
                            "--backends", "onnxruntime,openvino", "--precisions", "fp32,int8", "--threads", "1",
                            "--budget-s", "300", "--timing-s", "0.3", "--cache-dir", str(cache)])
    assert rc == 0
    return out, json.loads((out / "deploy.json").read_text())


def rows_of(record) -> list[TuneRow]:
    return [TuneRow(**{**r, "images_per_s_by_batch": {int(k): v for k, v in r["images_per_s_by_batch"].items()}})
            for r in record["candidates"]]


def test_the_folder_holds_the_fastest_candidate_within_the_bound_and_why(tuned):
    out, record = tuned
    model = record["model_file"]
    assert model in ("model.onnx", "model.xml")  # onnxruntime or openvino won
    companions = {"model.bin"} if model == "model.xml" else set()
    assert {p.name for p in out.iterdir()} == {"deploy.json", "pareto.png", "table.md", "verify", model} | companions
    labels = {(r["backend"], r["precision"]) for r in record["candidates"]}
    assert labels == {("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8")}
    rows = rows_of(record)
    chosen, _ = choose(rows, record["accuracy"]["max_ap_drop"], by_throughput=False)
    assert (chosen.backend, chosen.precision, chosen.threads) == (record["backend"], record["precision"],
                                                                  record["threads"])
    assert record["measured"]["delta_mAP50_95"] >= -0.01 and record["batch"] == 1
    reference = next(r for r in rows if r.role == "reference")
    assert reference.delta_mAP50_95 == 0 and reference.speedup == 1.0 and 0.2 < reference.mAP50_95 < 0.6
    for r in rows:
        assert r.p50_ms > 0 and r.p99_ms >= r.p50_ms and r.speedup > 0
    int8 = next(r for r in rows if r.backend == "onnxruntime" and r.precision == "int8")
    assert -0.05 < int8.delta_mAP50_95 < 0.02  # the Q/DQ INT8 keeps its accuracy on COCO labels
    assert record["accuracy"]["mode"] == "annotations" and record["accuracy"]["images"] == COUNT // 2
    split = record["split"]
    assert len(split["calibration"]) == len(split["evaluation"]) == COUNT // 2
    assert not set(split["calibration"]) & set(split["evaluation"]) and split["seed"] == 0
    for r in rows:
        assert r.delta_low <= r.delta_mAP50_95 <= r.delta_high and r.cpu_ms_per_image > 0
    machine = record["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and machine["os"] and "onnxruntime" in machine["versions"]
    assert isinstance(machine["cpu_features"], list)
    assert record["detector"] == {"conf": 0.25, "iou": 0.45, "max_det": 300, "class_agnostic": False}
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "table.md").read_text()
    assert sum(line.startswith("| -> ") for line in table.splitlines()) == 1
    assert "ncnn" not in table  # not asked for: not listed


def test_detector_on_the_folder_equals_the_chosen_configuration(tuned, coco_images):
    out, record = tuned
    det = Detector(out)
    assert (det.backend.name, det.backend.precision, det.conf, det.iou, det.max_det) == (
        record["backend"], record["arithmetic"], 0.25, 0.45, 300)
    assert list(det.input_size) == record["model"]["input_size"] == [416, 416]
    direct = Detector(load_backend(out / record["model_file"], record["backend"], threads=record["threads"],
                                   precision=record["arithmetic"]), conf=0.25, iou=0.45)
    for image in coco_images[:4]:
        got, want = det(image), direct(image)
        np.testing.assert_array_equal(got.xyxy, want.xyxy)
        np.testing.assert_array_equal(got.class_ids, want.class_ids)


def test_every_cli_takes_the_folder_as_its_model(tuned, subset, capsys, tmp_path):
    out, record = tuned
    images, ann = subset
    image = sorted(images.iterdir())[0]
    assert detect_cli.main(["--model", str(out), str(image), "--no-save"]) == 0
    assert image.name in capsys.readouterr().out
    # tune scored the evaluation half of the split only: yolox-eval on those images
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    for name in record["split"]["evaluation"]:
        (evaluation / name).symlink_to(images / name)
    labels = json.loads(ann.read_text())
    kept = {e["id"] for e in labels["images"] if e["file_name"] in record["split"]["evaluation"]}
    labels = {**labels, "images": [e for e in labels["images"] if e["id"] in kept],
              "annotations": [a for a in labels["annotations"] if a["image_id"] in kept]}
    (tmp_path / "evaluation.json").write_text(json.dumps(labels))
    assert eval_cli.main(["--model", str(out), "--images", str(evaluation), "--ann", str(tmp_path / "evaluation.json"),
                          "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    chosen = next(r for r in record["candidates"] if (r["backend"], r["precision"], r["threads"]) ==
                  (record["backend"], record["precision"], record["threads"]))
    # yolox-eval's settings are tune's accuracy settings: the same mAP on the same images
    assert evaluated["backend"] == record["backend"] and evaluated["mAP50_95"] == pytest.approx(chosen["mAP50_95"],
                                                                                                abs=1e-6)
    assert bench_cli.main(["--model", str(out), "--iters", "2", "--warmup", "0", "--no-baseline", "--settle-ms", "0",
                           "--json", str(tmp_path / "b.json")]) == 0
    (row,) = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert row["status"] == "ok" and row["backend_name"] == record["backend"]


def test_another_machine_gets_one_warning_line_and_the_detections(tuned, subset, tmp_path):
    out, _ = tuned
    moved = tmp_path / "elsewhere"
    shutil.copytree(out, moved)
    record = json.loads((moved / "deploy.json").read_text())
    other_cores = record["machine"]["cores"] + 1  # another machine, built from this one: holds on any CPU
    record["machine"] = {**record["machine"], "cpu": "Some Other CPU", "cores": other_cores}
    (moved / "deploy.json").write_text(json.dumps(record))
    image = sorted(subset[0].iterdir())[0]
    done = subprocess.run([sys.executable, "-m", "yolox_deploy.cli.detect", "--model", str(moved), str(image),
                           "--no-save"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "tuned on another machine" in line]
    assert len(warned) == 1 and warned[0].startswith("yolox-detect: warning: elsewhere was tuned on another machine")
    assert "'Some Other CPU'" in warned[0] and f"cores {other_cores}" in warned[0]
    assert image.name in done.stdout


def test_the_folder_of_another_model_is_refused_unless_forced(tuned, nano_pth, nano_onnx, subset, cache, capsys,
                                                              tmp_path):
    out, _ = tuned
    before = (out / "deploy.json").read_bytes()
    rc, _, err = tune(capsys, "--weights", nano_pth, "--data", subset[0], "-o", out, "--budget-s", "60")
    assert rc == 2 and err.startswith("yolox-tune: error: ") and err.count("\n") == 1
    assert "already holds another model's deployment" in err
    assert "--force" in err and (out / "deploy.json").read_bytes() == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    rc, _, err = tune(capsys, "--weights", nano_pth, "--data", subset[0], "-o", other, "--budget-s", "60")
    assert rc == 2 and "holds files that are not a yolox-tune deployment" in err
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    rc, _, err = tune(capsys, "--model", nano_onnx, "--data", subset[0], "-o", other, "--force", "--backends",
                      "onnxruntime", "--precisions", "fp32", "--threads", "1", "--timing-s", "0.1",
                      "--cache-dir", cache)
    assert rc == 0, err
    assert sorted(p.name for p in other.iterdir()) == ["deploy.json", "model.onnx", "pareto.png", "table.md", "verify"]


def test_an_interrupted_run_leaves_the_folder_as_it_was(tuned, nano_onnx, subset, cache, capsys, monkeypatch):
    out, _ = tuned
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as Ctrl-C lands while the staged folder is being written

    monkeypatch.setattr("yolox_deploy.tune.run.write_pareto_plot", interrupted)
    rc, _, err = tune(capsys, "--model", nano_onnx, "--data", subset[0], "--ann", subset[1], "-o", out,
                      "--backends", "onnxruntime", "--precisions", "fp32", "--threads", "1", "--timing-s", "0.1",
                      "--cache-dir", cache)
    assert rc == 130 and "interrupted: nothing written" in err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no staging folder left beside it


@pytest.mark.parametrize("raised, skipped", [
    (KeyError("a bug in the measuring code"), False),
    (ValueError("a bug in the measuring code"), False),
    (RuntimeError("a bug in the measuring code"), False),
    (ModelFileError("this candidate's model cannot be used"), True),
])
def test_only_the_candidates_own_errors_become_skipped_rows(nano_onnx, subset, cache, capsys, tmp_path, monkeypatch,
                                                            raised, skipped):
    from yolox_deploy.tune.run import Tuner

    def measure(self, candidate, detector):
        raise raised

    monkeypatch.setattr(Tuner, "measure", measure)
    out = tmp_path / "deploy"
    args = ["--model", nano_onnx, "--data", subset[0], "--ann", subset[1], "-o", out, "--backends", "onnxruntime",
            "--precisions", "fp32,fp16", "--threads", "1", "--timing-s", "0.1", "--cache-dir", cache]
    if not skipped:
        with pytest.raises(type(raised), match="a bug in the measuring code"):
            tune(capsys, *args)
        assert not out.exists()
        return
    rc, stdout, err = tune(capsys, *args)
    assert rc == 0, err
    assert "this candidate's model cannot be used" in stdout
    assert json.loads((out / "deploy.json").read_text())["precision"] == "fp32"


def test_nothing_within_the_bound_prints_the_table_names_the_closest_and_writes_nothing(nano_onnx, subset, cache,
                                                                                          capsys, tmp_path):
    """The FP32 reference left out by --backends/--precisions is measured but never chosen."""
    out = tmp_path / "deploy"
    rc, stdout, err = tune(capsys, "--model", nano_onnx, "--data", subset[0], "--ann", subset[1], "-o", out,
                           "--backends", "openvino", "--precisions", "int8-all", "--threads", "1", "--timing-s", "0.1",
                           "--cache-dir", cache)
    assert rc == 1, err
    assert "| reference only |" in stdout and "openvino | int8-all" in stdout and "| -> " not in stdout
    assert "no candidate is within --max-ap-drop 0.01 (and sure of it); closest: openvino int8-all x1" in err
    assert "nothing was written" in err
    assert not out.exists()


def test_without_labels_the_estimate_is_recorded_and_a_budget_skip_is_listed(nano_onnx, subset, capsys, tmp_path):
    out = tmp_path / "deploy"
    rc, stdout, _ = tune(capsys, "--model", nano_onnx, "--data", subset[0], "-o", out, "--backends",
                         "onnxruntime,openvino", "--precisions", "fp32", "--threads", "1", "--budget-s", "9",
                         "--timing-s", "1.5", "--cache-dir", tmp_path / "cache")
    assert rc == 0, stdout
    record = json.loads((out / "deploy.json").read_text())
    assert (record["backend"], record["precision"]) == ("onnxruntime", "fp32")
    assert any(s["reason"].startswith("budget: needs about") for s in record["skipped"]), record["skipped"]
    assert record["candidates"][0]["export_s"] == 0.0  # the given ONNX: nothing exported
    assert record["accuracy"]["mode"] == "label-free estimate" and record["elapsed_s"] <= 9 * 1.05
    assert 0 < record["measured"]["mAP50_95"] < 1  # the FP32 model against truths sampled from its detections


def test_batch_auto_deploys_the_batch_with_the_most_images_per_second(nano_pth, subset, cache, capsys, tmp_path):
    out = tmp_path / "deploy"
    rc, stdout, _ = tune(capsys, "--weights", nano_pth, "--data", subset[0], "-o", out, "--backends", "onnxruntime",
                         "--precisions", "fp32", "--threads", "2", "--batch", "auto", "--timing-s", "0.2",
                         "--cache-dir", cache)
    assert rc == 0, stdout
    record = json.loads((out / "deploy.json").read_text())
    row = record["candidates"][0]  # the reference (then its spinning variant)
    assert [r["spinning"] for r in record["candidates"]] == [False, True]
    assert all(r["throughput_speedup"] > 0 for r in record["candidates"])
    assert record["candidates"][0]["throughput_speedup"] == pytest.approx(1.0, rel=0.25)  # itself, same window
    assert row["export_s"] > 0 and row["accuracy_s"] > 0  # the FP32 ONNX was exported from the .pth here
    chosen = next(r for r in record["candidates"] if r["spinning"] == record["spinning"])  # either may win
    for candidate in record["candidates"]:
        assert sorted(int(k) for k in candidate["images_per_s_by_batch"]) == [1, 2, 4, 8]
    by_batch = {int(k): v for k, v in chosen["images_per_s_by_batch"].items()}
    assert record["batch"] == max(by_batch, key=by_batch.get) and Detector(out).batch_size == record["batch"]


@pytest.mark.parametrize("case", ["empty", "unreadable", "missing", "not a folder", "other images", "resized",
                                  "budget"])
def test_bad_input_is_one_line_and_writes_nothing(case, nano_onnx, subset, cache, capsys, tmp_path):
    images, ann = subset
    data, labels, budget = images, None, "60"
    if case == "empty":
        data = tmp_path / "empty"
        data.mkdir()
    elif case == "unreadable":
        data = tmp_path / "bad"
        data.mkdir()
        (data / "a.jpg").write_bytes(b"not a jpeg at all")
    elif case == "missing":
        data = tmp_path / "nowhere"
    elif case == "not a folder":
        data = next(images.iterdir())
    elif case == "other images":
        full = json.loads(ann.read_text())
        full["images"].append({**full["images"][0], "id": 999999, "file_name": "not_here.jpg"})
        labels = tmp_path / "ann.json"
        labels.write_text(json.dumps(full))
    elif case == "resized":
        full = json.loads(ann.read_text())
        full["images"][0]["width"] //= 2
        labels = tmp_path / "ann.json"
        labels.write_text(json.dumps(full))
    else:
        budget = "0.01"
    out = tmp_path / "deploy"
    rc, _, err = tune(capsys, "--model", nano_onnx, "--data", data, *(["--ann", labels] if labels else []),
                      "-o", out, "--budget-s", budget, "--backends", "onnxruntime", "--precisions", "fp32",
                      "--cache-dir", cache)
    expected = {"empty": "holds no images", "unreadable": "unreadable image", "missing": "is not a folder",
                "not a folder": "is not a folder",
                "other images": f"1 of the {COUNT + 1} images in ann.json are not in",
                "resized": "the annotations are for other images", "budget": "too small for even one candidate"}
    errors = [line for line in err.replace("\r", "\n").splitlines() if "error" in line]
    assert rc == 2 and len(errors) == 1 and errors[0].startswith("yolox-tune: error: "), err
    assert expected[case] in errors[0]
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_source_must_be_a_raw_fp32_onnx_or_a_checkpoint(tuned, subset, cache, capsys, tmp_path):
    out, _ = tuned
    rc, _, err = tune(capsys, "--model", out / "deploy.json", "--data", subset[0], "-o", tmp_path / "d")
    assert rc == 2 and "makes every format from a raw FP32 .onnx or a .pth" in err
    (int8,) = cache.glob("*/model-int8-calib*.onnx")  # made by the module's run
    rc, _, err = tune(capsys, "--model", int8, "--data", subset[0], "-o", tmp_path / "d", "--cache-dir", cache)
    assert rc == 2 and f"{int8.name} is an INT8 ONNX: give the raw FP32 ONNX" in err
    assert not (tmp_path / "d").exists()


def test_an_onnx_given_as_weights_is_the_source_not_random_weights(nano_onnx, subset, tmp_path):
    from yolox_deploy.tune import TuneConfig

    cfg = TuneConfig(data=subset[0], output=tmp_path / "d", weights=nano_onnx)
    assert cfg.onnx == nano_onnx and cfg.checkpoint is None


def test_the_entry_point_is_installed():
    from importlib.metadata import entry_points

    assert any(ep.name == "yolox-tune" and ep.value == "yolox_deploy.cli.tune:main"
               for ep in entry_points(group="console_scripts"))
    assert Path(tune_cli.__file__).name == "tune.py"


def test_verify_holds_on_a_copy_tuned_on_another_machine_and_changes_nothing(tuned, subset, capsys, tmp_path):
    out, _ = tuned
    moved = tmp_path / "fleet-node"
    shutil.copytree(out, moved)
    record = json.loads((moved / "deploy.json").read_text())
    record["machine"] = {**record["machine"], "cpu": "Some Other CPU", "cores": record["machine"]["cores"] + 1}
    (moved / "deploy.json").write_text(json.dumps(record))
    before = {p.relative_to(moved): p.read_bytes() for p in moved.rglob("*") if p.is_file()}
    rc, stdout, err = tune(capsys, "--verify", moved, "--data", subset[0], "--ann", subset[1], "--timing-s", "0.3")
    assert rc in (0, 1), err
    lines = stdout.splitlines()
    assert sum(line.startswith("| -> | deployed: ") for line in lines) == 1
    assert any("| onnxruntime fp32 x1 |" in line for line in lines)  # the FP32 reference, re-measured
    assert len([line for line in lines if line.startswith("| ")]) == 2 + 1 + 1 + len(record["verify"]["alternatives"])
    verdict = lines[-1]
    assert verdict.startswith("holds: " if rc == 0 else "does not hold: ")
    assert {p.relative_to(moved): p.read_bytes() for p in moved.rglob("*") if p.is_file()} == before


def test_verify_fails_a_deployment_outside_the_bound_and_update_redeploys(tuned, subset, cache, capsys, tmp_path):
    """A folder whose model was swapped for the every-conv INT8 file (ΔmAP about -0.09 on
    these images) no longer holds; --update puts the fastest configuration that holds in."""
    out, _ = tuned
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    # the every-conv INT8 file of the same split (nothing within the bound: exit 1, nothing written)
    tune(capsys, "--model", tuned[1]["source"]["path"], "--data", subset[0], "--ann", subset[1], "-o",
         tmp_path / "scratch", "--backends", "onnxruntime", "--precisions", "int8-all", "--threads", "1",
         "--timing-s", "0.1", "--cache-dir", cache)
    (int8_all,) = Path(cache).glob("*/model-int8-all-calib*.onnx")
    record = json.loads((broken / "deploy.json").read_text())
    for old in broken.glob("model.*"):
        old.unlink()
    shutil.copy(int8_all, broken / "model.onnx")
    record.update(model_file="model.onnx", backend="onnxruntime", precision="int8-all", arithmetic="fp32")
    from yolox_deploy.tune.deploy_dir import files_sha256

    record["files_sha256"] = files_sha256(broken)  # a folder written whole around the wrong model
    (broken / "deploy.json").write_text(json.dumps(record))
    before = (broken / "deploy.json").read_bytes()
    rc, stdout, _ = tune(capsys, "--verify", broken, "--data", subset[0], "--ann", subset[1], "--timing-s", "0.2")
    assert rc == 1 and "does not hold: outside the bound" in stdout and "nothing changed" in stdout
    assert (broken / "deploy.json").read_bytes() == before
    rc, stdout, _ = tune(capsys, "--verify", broken, "--data", subset[0], "--ann", subset[1], "--timing-s", "0.2",
                         "--update")
    assert rc == 1 and "updated" in stdout
    updated = json.loads((broken / "deploy.json").read_text())
    assert updated["precision"] != "int8-all" and updated["verified"][-1]["deployed"] != "onnxruntime int8-all x1"
    # what the folder says of its choice is this machine's measurement of the new one, not the old record's
    assert updated["why"].startswith("re-verified on this machine")
    # (the FP32 reference and an alternative can share a label: both are "onnxruntime fp32 x1")
    measured_here = {m["speedup"] for m in updated["verified"][-1]["measured"]
                     if m["label"].removeprefix("deployed: ") == updated["verified"][-1]["deployed"]}
    assert updated["measured"]["speedup"] in measured_here and updated["measured"]["p99_ms"] is None
    labels = [TuneRow(**row).label for row in updated["verify"]["alternatives"]]
    before_label = TuneRow("onnxruntime", "int8-all", record["threads"], spinning=record.get("spinning")).label
    assert before_label in labels  # the configuration deployed before, its file kept in verify/
    assert all(label in updated["verify"]["files"] for label in labels)
    assert updated["files_sha256"][updated["model_file"]] != record["files_sha256"]["model.onnx"]
    rc, stdout, err = tune(capsys, "--verify", broken, "--data", subset[0], "--ann", subset[1], "--timing-s", "0.2")
    assert "outside the bound" not in stdout, stdout


def test_verify_refuses_a_folder_without_its_verify_files_in_one_line(tuned, subset, capsys, tmp_path):
    out, _ = tuned
    old = tmp_path / "old"
    shutil.copytree(out, old)
    shutil.rmtree(old / "verify")
    rc, _, err = tune(capsys, "--verify", old, "--data", subset[0])
    assert rc == 2 and err.count("\n") == 1 and "verify/0/model" in err and "missing" in err


def test_a_60_second_budget_holds_with_every_backend_and_a_fresh_cache(nano_pth, subset, capsys, tmp_path):
    """Exports (ONNX, INT8 calibration, OpenVINO NNCF, ncnn) run in a child with a deadline:
    the whole run, writing included, ends within the budget plus 5%."""
    import time

    out = tmp_path / "deploy"
    started = time.monotonic()
    rc, stdout, err = tune(capsys, "--weights", nano_pth, "--data", subset[0], "-o", out, "--budget-s", "60",
                           "--cache-dir", tmp_path / "cache")
    wall = time.monotonic() - started
    assert rc == 0, err
    record = json.loads((out / "deploy.json").read_text())
    assert wall <= 63.0 and record["elapsed_s"] <= 63.0, (wall, record["elapsed_s"])
    assert record["elapsed_s"] >= 0.9 * wall - 1  # the whole run, not its first part
    reasons = " ".join(s["reason"] for s in record["skipped"])
    assert "budget" in reasons  # 60 s cannot measure every candidate of every backend


@pytest.mark.parametrize("args, message", [
    (["--update"], "--update goes with --verify DEPLOY_DIR"),
    (["--verify", "VERIFY", "--model", "MODEL"], "--verify re-measures a deployment folder"),
    (["--verify", "MISSING"], "has no deploy.json"),
    (["--weights", "MODEL"], "give -o DEPLOY_DIR"),
])
def test_verify_and_update_misuse_is_one_line(tuned, subset, nano_pth, capsys, tmp_path, args, message):
    out, _ = tuned
    names = {"VERIFY": str(out), "MODEL": str(nano_pth), "MISSING": str(tmp_path)}
    rc, stdout, err = tune(capsys, *[names.get(a, a) for a in args], "--data", subset[0])
    assert rc == 2 and err.count("\n") == 1 and message in err, err


def test_arguments_are_checked_before_any_image_is_read(nano_onnx, capsys, tmp_path):
    """--backends foo is refused first: the folder's unreadable image is never reached."""
    data = tmp_path / "bad"
    data.mkdir()
    (data / "a.jpg").write_bytes(b"not a jpeg at all")
    rc, _, stderr = tune(capsys, "--model", nano_onnx, "--data", data, "-o", tmp_path / "out", "--backends", "foo")
    assert rc == 2 and stderr.strip().splitlines() == [
        "yolox-tune: error: unknown backend 'foo' in --backends; use one of "
        "ncnn, onnxruntime, openvino, tensorrt, torch, triton"]
    assert not (tmp_path / "out").exists()


def test_an_interval_on_too_few_images_is_never_sure_whatever_the_precision(nano_onnx, subset, cache, capsys,
                                                                            tmp_path):
    """8 images (4 evaluated): an FP32 OpenVINO candidate's interval is not sure (a bootstrap over a few
    images is as narrow as their spread; over one it has zero width), so the reference is chosen and
    the table and a note say why. Only INT8 was gated by the image count before."""
    pytest.importorskip("openvino")
    few = tmp_path / "few"
    few.mkdir()
    for path in sorted(subset[0].iterdir())[:8]:
        shutil.copy(path, few / path.name)
    ann = json.loads(subset[1].read_text())
    kept = [e for e in ann["images"] if (few / e["file_name"]).exists()]
    ids = {e["id"] for e in kept}
    (tmp_path / "few.json").write_text(json.dumps({**ann, "images": kept, "annotations": [
        a for a in ann["annotations"] if a["image_id"] in ids]}))
    out = tmp_path / "deploy"
    rc, stdout, err = tune(capsys, "--model", nano_onnx, "--data", few, "--ann", tmp_path / "few.json", "-o", out,
                           "--backends", "onnxruntime,openvino", "--precisions", "fp32", "--threads", "1",
                           "--timing-s", "0.1", "--cache-dir", cache)
    assert rc == 0, err
    openvino = [line for line in stdout.splitlines() if line.startswith("|") and "| openvino |" in line]
    assert openvino and all("uncertain (interval on 4 images: too few)" in line for line in openvino), stdout
    assert "note: 4 evaluation images: no ΔmAP interval is sure on fewer than 20" in stdout
    record = json.loads((out / "deploy.json").read_text())
    assert (record["backend"], record["precision"]) == ("onnxruntime", "fp32")


def test_the_gate_holds_for_every_precision():
    from yolox_deploy.tune.estimate import MIN_INTERVAL_IMAGES, Delta

    assert Delta(0.0, 0.0, 0.0, images=1).crosses(0.01)  # one image: zero width, yet never sure
    assert Delta(0.0, -0.001, 0.001, images=MIN_INTERVAL_IMAGES - 1).crosses(0.01)
    assert not Delta(0.0, -0.001, 0.001, images=MIN_INTERVAL_IMAGES).crosses(0.01)
    assert not Delta(0.0, 0.0, 0.0).crosses(0.01)  # the reference itself


def test_verify_refuses_a_model_file_that_is_not_the_one_written(tuned, subset, capsys, tmp_path):
    """deploy.json records the sha256 of model.* and verify/*; --verify checks them first."""
    out, record = tuned
    assert set(record["files_sha256"]) >= {record["model_file"], *record["verify"]["files"].values()}
    changed = tmp_path / "changed"
    shutil.copytree(out, changed)
    model = changed / record["model_file"]
    model.write_bytes(model.read_bytes() + b"\0")
    rc, _, err = tune(capsys, "--verify", changed, "--data", subset[0], "--ann", subset[1], "--timing-s", "0.1")
    assert rc == 2 and err.strip() == (f"yolox-tune: error: {changed}/{record['model_file']} is not the file "
                                       "yolox-tune wrote (sha256 differs): copy the folder again, or re-run yolox-tune")


def test_verify_loads_the_deployment_as_users_do(tuned, subset, capsys, tmp_path):
    """The deployed configuration is Detector(folder): a threshold deploy.json cannot hold fails --verify
    in one line (it loaded the model file alone, so deploy.json's settings were never exercised)."""
    out, _ = tuned
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    record = json.loads((bad / "deploy.json").read_text())
    record["detector"]["conf"] = 7
    (bad / "deploy.json").write_text(json.dumps(record))
    rc, _, err = tune(capsys, "--verify", bad, "--data", subset[0], "--ann", subset[1], "--timing-s", "0.1")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "conf" in err, err


@pytest.mark.slow
def test_the_budget_holds_for_yolox_s_at_640_with_batch_auto(subset, capsys, tmp_path):
    """Every step is under the one deadline, sized from measured call and load times: warm-up and
    settling calls, the reference's timing and scoring, the per-batch windows of --batch auto, and
    writing the folder. A seeded yolox-s@640 (several times nano's cost per call) either fits or is
    refused in one line, within the budget plus 5% either way."""
    import time

    torch = pytest.importorskip("torch")
    from yolox_deploy.models.zoo import seeded_model

    weights = tmp_path / "weights" / "yolox_s.pth"
    weights.parent.mkdir()
    torch.save({"model": seeded_model("yolox-s").state_dict()}, weights)
    images, ann = subset
    budget = 90
    started = time.monotonic()
    rc, stdout, err = tune(capsys, "--weights", weights, "--data", images, "--ann", ann, "-o", tmp_path / "deploy",
                           "--budget-s", budget, "--batch", "auto", "--backends", "onnxruntime,openvino",
                           "--cache-dir", tmp_path / "cache")
    wall = time.monotonic() - started
    assert wall <= 1.05 * budget, (wall, stdout[-2000:], err)
    if rc == 0:
        record = json.loads((tmp_path / "deploy" / "deploy.json").read_text())
        assert record["elapsed_s"] <= 1.05 * budget and record["batch"] >= 1
    else:
        assert rc == 2 and "is too small for even one candidate" in err, err
