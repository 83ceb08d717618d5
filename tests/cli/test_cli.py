"""The three CLIs: outputs written, progress shown, and one-line errors (never a traceback)."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from yolox_deploy.cli import detect, export
from yolox_deploy.cli import eval as eval_cli


def run_cli(*args: str) -> subprocess.CompletedProcess:
    module = {"yolox-detect": "detect", "yolox-eval": "eval", "yolox-export": "export"}[args[0]]
    return subprocess.run([sys.executable, "-m", f"yolox_deploy.cli.{module}", *args[1:]],
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode in (1, 2), proc.stderr  # 2: bad invocation, 1: some inputs failed
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def test_detect_on_an_image_writes_annotated_copy_and_json(nano_onnx, coco_images, tmp_path, capsys):
    assert detect.main([str(coco_images[0]), "--model", str(nano_onnx), "--save-dir", str(tmp_path)]) == 0
    assert "person" in capsys.readouterr().out
    annotated = cv2.imread(str(tmp_path / coco_images[0].name))
    original = cv2.imread(str(coco_images[0]))
    assert annotated.shape == original.shape and not np.array_equal(annotated, original)
    record = json.loads((tmp_path / "detections.json").read_text())[str(coco_images[0])]
    assert record["detections"] and record["detections"][0]["class_name"] == "person"


def test_detect_on_a_folder_with_a_bad_file_reports_it_and_continues(nano_onnx, coco_images, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in coco_images[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.jpg").write_bytes(b"")
    proc = run_cli("yolox-detect", str(folder), "--model", str(nano_onnx), "--save-dir", str(tmp_path / "out"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "broken.jpg" in proc.stderr and "images: 100%" in proc.stderr  # error line and progress bar
    assert len(json.loads((tmp_path / "out" / "detections.json").read_text())) == 3


def test_detect_on_a_video(nano_onnx, coco_images, tmp_path):
    video = tmp_path / "clip.mp4"
    frame = cv2.resize(cv2.imread(str(coco_images[0])), (320, 240))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (320, 240))
    for _ in range(4):
        writer.write(frame)
    writer.release()
    assert detect.main([str(video), "--model", str(nano_onnx), "--save-dir", str(tmp_path / "out")]) == 0
    frames = json.loads((tmp_path / "out" / "detections.json").read_text())[str(video)]["frames"]
    assert len(frames) == 4 and frames[0]["detections"]
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4


def test_eval_json_has_the_metrics(nano_onnx, coco_dir, capsys):
    assert eval_cli.main(["--model", str(nano_onnx), "--images", str(coco_dir / "images"),
                          "--ann", str(coco_dir / "instances_val2017.json"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mAP50_95"] == pytest.approx(0.30524748, abs=2e-4) and result["mAP50"] > result["mAP50_95"]
    assert result["backend"] == "onnxruntime" and result["num_images"] == 80


def test_sliced_detect_and_eval(nano_onnx, coco_dir, coco_images, tmp_path, capsys):
    assert detect.main([str(coco_images[0]), "--model", str(nano_onnx), "--slice", "256,320", "--overlap", "0.25",
                        "--merge", "nms", "--match", "iou", "--save-dir", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "detections.json").read_text())
    assert saved[str(coco_images[0])]["detections"]
    capsys.readouterr()
    assert eval_cli.main(["--model", str(nano_onnx), "--images", str(coco_dir / "images"), "--slice", "416",
                          "--ann", str(coco_dir / "instances_val2017.json"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["slices"]["size"] == [416, 416] and result["slices"]["full_image"]
    assert result["mAP50_95"] == pytest.approx(0.3166, abs=2e-3)  # whole images: 0.3052
    assert result["mAP_small"] > 0.15  # whole images: 0.112


def test_export_cli(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "t.onnx"
    assert export.main(["--to", "onnx", "--weights", str(tiny_checkpoint), "--input-size", "64", "64",
                        "--dynamic", "-o", str(out)]) == 0
    assert "max abs diff" in capsys.readouterr().out and out.is_file()


@pytest.mark.parametrize("args, fragment", [
    (("yolox-detect", "{tmp}/nope.jpg", "--model", "{onnx}"), "source not found"),
    (("yolox-detect", "{tmp}/empty.jpg", "--model", "{tmp}/m.tflite"), "unknown model file kind .tflite"),
    (("yolox-detect", "{img}", "--model", "{pth}", "--input-size", "300", "300"), "not a positive multiple of 32"),
    (("yolox-detect", "{img}", "--model", "{pth}", "--model-name", "yolox-s"), "checkpoint does not match yolox-s"),
    (("yolox-detect", "{tmp}/empty.jpg", "--model", "{onnx}"), "empty (0 bytes)"),
    (("yolox-export", "--to", "onnx", "--weights", "{tmp}/empty.jpg"), "not a readable PyTorch checkpoint"),
    (("yolox-export", "--to", "tflite", "--model-name", "yolox-nano"), "no exporter for --to 'tflite'"),
    (("yolox-eval", "--model", "{onnx}", "--images", "{tmp}", "--ann", "{tmp}/none.json"), "annotation file not found"),
    (("yolox-eval", "--model", "{onnx}", "--images", "{tmp}", "--ann", "{tmp}/notes.txt", "--batch-size", "0"),
     "--batch-size must be >= 1, got 0"),
    (("yolox-eval", "--model", "{onnx}", "--images", "{tmp}", "--ann", "{tmp}/notes.txt"),
     "notes.txt is not valid JSON"),
    (("yolox-eval", "--model", "{onnx}", "--images", "{tmp}", "--ann", "{tmp}/deploy.json"),
     "deploy.json is not a COCO instances file"),
    (("yolox-eval", "--model", "{onnx}", "--images", "{tmp}", "--ann", "{tmp}/deep.json"),
     "deep.json is not valid JSON (nested too deeply)"),
    (("yolox-detect", "{img}", "--model", "{onnx}", "--slice", "400"), "slice size 400 is not a positive multiple of 32"),
    (("yolox-detect", "{img}", "--model", "{onnx}", "--slice", "416,x"), "--slice takes H or H,W in pixels"),
    (("yolox-detect", "{img}", "--model", "{onnx}", "--slice", "416", "--overlap", "1"),
     "slice overlap 1.0 is outside [0, 1)"),
    (("yolox-detect", "{img}", "--model", "{onnx}", "--slice", "416", "--merge", "wbf"), "unknown merge 'wbf'"),
    (("yolox-eval", "--model", "{onnx}", "--images", "{tmp}", "--ann", "{tmp}/none.json", "--slice", "416", "--match",
      "giou"), "unknown match 'giou': use one of iou, ios"),
    (("yolox-detect", "{img}", "--model", "{onnx}", "--overlap", "0.3"),
     "--overlap applies only to sliced inference: add --slice H[,W]"),
])
def test_errors_are_one_line(args, fragment, tmp_path, nano_onnx, nano_pth, coco_images):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "m.tflite").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("meeting notes, not JSON\n")
    (tmp_path / "deploy.json").write_text(json.dumps({"format": "yolox-deploy", "model": "model.onnx"}))
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    subs = {"{tmp}": str(tmp_path), "{onnx}": str(nano_onnx), "{pth}": str(nano_pth), "{img}": str(coco_images[0])}
    filled = []
    for a in args:
        for key, value in subs.items():
            a = a.replace(key, value)
        filled.append(a)
    assert_one_line_error(run_cli(*filled), fragment)


def test_missing_backend_package_names_the_extra(tmp_path, coco_images, tiny_checkpoint):
    code = ("import sys; sys.modules['torch'] = None; from yolox_deploy.cli import detect; "
            f"sys.exit(detect.main([{str(coco_images[0])!r}, '--model', {str(tiny_checkpoint)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc, "pip install 'yolox-deploy[torch]'")


@pytest.mark.parametrize("module", [detect, eval_cli])
def test_slice_flags_reach_every_merge_option(module):
    """--agnostic reaches the merge of the slices too (it reached only each slice's NMS); the re-check
    and force-merge options have flags."""
    from yolox_deploy.cli.common import slice_settings

    required = ["x.jpg"] if module is detect else ["--images", "i", "--ann", "a.json"]
    parser = module.build_parser()
    settings = slice_settings(parser.parse_args([*required, "--model", "m.onnx", "--slice", "416", "--agnostic",
                                                 "--recheck", "none", "--force-merge"]))
    assert (settings.class_agnostic, settings.recheck, settings.force_merge) == (True, "none", True)
    defaults = slice_settings(parser.parse_args([*required, "--model", "m.onnx", "--slice", "416"]))
    assert (defaults.class_agnostic, defaults.recheck, defaults.force_merge) == (False, "sahi", False)


@pytest.mark.parametrize("args,fragment", [
    (["--recheck", "none"], "--recheck applies only to sliced inference"),
    (["--force-merge"], "--force-merge applies only to sliced inference"),
    (["--slice", "416", "--recheck", "always"], "unknown recheck 'always'"),
])
def test_slice_flag_errors_are_one_line(args, fragment, nano_onnx, coco_images):
    assert_one_line_error(run_cli("yolox-detect", str(coco_images[0]), "--model", str(nano_onnx), *args), fragment)
