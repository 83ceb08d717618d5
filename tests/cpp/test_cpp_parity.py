"""The C++ library (cpp/) gives Python's answers: the same letterboxed inputs, the same detections,
the same COCO mAP, the same refusals. Runs in the C++ stage of CI (``.ci/cpp``: a Debian 13 root
filesystem with the library built by CMake), once as built and once under AddressSanitizer +
UBSan; elsewhere these tests are skipped.

Environment: ``YOLOX_DEPLOY_CPP_BUILD`` (the CMake build folder, installed into its ``install/``),
``YOLOX_DEPLOY_CPP_MODELS`` (what ``cpp_models.py`` exported), ``YOLOX_DEPLOY_CPP_SANITIZED=1`` for
the sanitizer build. ``YOLOX_DEPLOY_PARITY_IMAGES`` (a folder of images) with
``YOLOX_DEPLOY_PARITY_ANN`` (their COCO annotations) adds a reviewer's own images to every check.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile_deploy_cases import CPP_MESSAGES, HOSTILE, hostile_folder  # tests/: the Python reader's corpus

BUILD = Path(os.environ["YOLOX_DEPLOY_CPP_BUILD"]) if os.environ.get("YOLOX_DEPLOY_CPP_BUILD") else None
MODELS = Path(os.environ.get("YOLOX_DEPLOY_CPP_MODELS", "/nonexistent"))
SANITIZED = os.environ.get("YOLOX_DEPLOY_CPP_SANITIZED") == "1"
REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.cpp, pytest.mark.assets,
              pytest.mark.skipif(BUILD is None, reason="runs in the C++ stage of CI (.ci/cpp builds cpp/ in Debian 13)")]

THREADS = 2
# Both sides run the same ONNX Runtime / OpenVINO libraries on byte-identical inputs, so raw outputs
# are equal; the tolerances are the project's detection tolerances for these backends (boxes 1e-3 px,
# scores 1e-5) and the measured differences are reported (docs/cpp.md).
BOX_TOLERANCE = 1e-3  # pixels of the original image
SCORE_TOLERANCE = 1e-5
MAP_TOLERANCE = 1e-4
SETTINGS = {
    "defaults": {},
    "evaluation": {"conf": 0.01, "iou": 0.65, "max_det": -1},  # the official evaluator's
}
CASES = {  # name -> (model file, backend)
    "onnxruntime-fp32-official": ("official", "onnxruntime"),
    "onnxruntime-fp32": ("nano.onnx", "onnxruntime"),
    "onnxruntime-int8": ("nano_int8.onnx", "onnxruntime"),
    "openvino-fp32": ("nano_openvino.xml", "openvino"),
    "end-to-end": ("nano_e2e.onnx", "onnxruntime"),
}
# oneTBB, under OpenVINO, dlopens tbbbind with RTLD_DEEPBIND, which ASan's runtime refuses by killing
# the process (google/sanitizers#611): OpenVINO cannot run in the sanitizer build at all.
OPENVINO_UNDER_SANITIZER = "OpenVINO's TBB cannot load under ASan (dlopen RTLD_DEEPBIND, google/sanitizers#611)"
REPORT = Path(os.environ.get("YOLOX_DEPLOY_CPP_REPORT", "/work/parity_report.json"))


def model_path(name: str, assets: Path) -> Path:
    path = assets / "models" / "yolox_nano.onnx" if name == "official" else MODELS / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: .ci/cpp exports the models under test (tests/cpp/cpp_models.py)")
    return path


def tool(name: str = "yolox-detect-cpp") -> Path:
    path = BUILD / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: build cpp/ with CMake into YOLOX_DEPLOY_CPP_BUILD")
    return path


def run_tool(*args: Any, expect: int = 0) -> subprocess.CompletedProcess:
    """yolox-detect-cpp with ``args``; its exit code must be ``expect`` and its stderr clean (no
    sanitizer report, no runtime's log lines) or, on an error, exactly one line."""
    done = subprocess.run([str(tool()), *map(str, args)], capture_output=True, text=True, timeout=600)
    assert "Sanitizer" not in done.stderr and "runtime error:" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == expect, f"exit {done.returncode}, stderr: {done.stderr[-2000:]}"
    if expect == 0:
        assert done.stderr == "", f"stderr is not clean: {done.stderr[:500]}"
    else:
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("yolox-detect-cpp: error: "), done.stderr[-2000:]
    return done


# The backends this build must have (.ci/cpp: both in Debian 13; OpenVINO only in the Debian 12
# stage, whose release has no ONNX Runtime package)
EXPECTED_BACKENDS = os.environ.get("YOLOX_DEPLOY_CPP_BACKENDS", "onnxruntime,openvino")


def compiled(backend: str) -> bool:
    return backend in EXPECTED_BACKENDS.split(",")


def skip_unless_compiled(backend: str) -> None:
    if not compiled(backend):
        pytest.skip(f"{backend} is not compiled into this build (YOLOX_DEPLOY_CPP_BACKENDS={EXPECTED_BACKENDS})")


def default_model(assets: Path) -> tuple[Path, str]:
    """nano as ONNX for ONNX Runtime where it is compiled in, else as OpenVINO IR: the model of
    the checks that hold whatever the backend (letterbox, slicing)."""
    if compiled("onnxruntime"):
        return model_path("nano.onnx", assets), "onnxruntime"
    return model_path("nano_openvino.xml", assets), "openvino"


def image_sets(assets: Path) -> dict[str, tuple[Path, Path | None]]:
    """name -> (image folder, COCO annotations or None): the shared 80, plus a reviewer's folder."""
    coco = assets / "data" / "coco-val-mini"
    sets = {"shared": (coco / "images", coco / "instances_val2017.json")}
    if os.environ.get("YOLOX_DEPLOY_PARITY_IMAGES"):
        ann = os.environ.get("YOLOX_DEPLOY_PARITY_ANN")
        sets["reviewer"] = (Path(os.environ["YOLOX_DEPLOY_PARITY_IMAGES"]), Path(ann) if ann else None)
    return sets


def python_detector(model: Path, backend: str, settings: dict[str, Any]) -> Any:
    from yolox_deploy import Detector

    options = {k: v for k, v in settings.items() if k != "max_det"}
    if "max_det" in settings:
        options["max_det"] = None if settings["max_det"] < 0 else settings["max_det"]
    return Detector(model, backend=backend, threads=THREADS, **options)


def cpp_flags(settings: dict[str, Any]) -> list[str]:
    flags = []
    for key, flag in (("conf", "--conf"), ("iou", "--iou"), ("max_det", "--max-det")):
        if key in settings:
            flags += [flag, str(settings[key])]
    return flags


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, assets) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(case, settings, image set) -> the C++ tool's detections.json, computed once."""
    folder = tmp_path_factory.mktemp("cpp_outputs")
    found = {}
    for set_name, (images, _) in image_sets(assets).items():
        for case, (model, backend) in CASES.items():
            if (SANITIZED and backend == "openvino") or not compiled(backend):
                continue
            for settings_name, settings in SETTINGS.items():
                if case == "end-to-end" and settings_name != "defaults":
                    continue  # its thresholds are baked into the graph
                out = folder / f"{set_name}-{case}-{settings_name}.json"
                run_tool("--model", model_path(model, assets), "--backend", backend, "--threads", THREADS,
                         *cpp_flags(settings), "--json", out, images)
                found[(case, settings_name, set_name)] = json.loads(out.read_text())
    return found


def record(key: str, value: Any) -> None:
    """Adds a measured figure to the parity report (docs/cpp.md quotes it)."""
    report = json.loads(REPORT.read_text()) if REPORT.is_file() else {}
    report[key] = value
    try:
        REPORT.write_text(json.dumps(report, indent=1, sort_keys=True))
    except OSError:
        pass


def core_sha_of_tree(core: Path) -> str:
    listing = "".join(f"{f.name}\n{hashlib.sha256(f.read_bytes()).hexdigest()}\n"
                      for f in sorted(core.iterdir(), key=lambda f: f.name) if f.is_file())
    return hashlib.sha256(listing.encode()).hexdigest()


def test_both_builds_come_from_the_same_core_sources():
    from yolox_deploy.processing import _kernel

    version = run_tool("--version").stdout  # the version line loads no runtime
    cpp_sha = version.split("core_sources_sha256=")[1].split()[0]
    tree_sha = core_sha_of_tree(REPO / "cpp" / "core")
    assert cpp_sha == tree_sha == _kernel.CORE_SOURCES_SHA256
    assert f"backends={EXPECTED_BACKENDS} " in version


def test_letterboxed_inputs_are_byte_identical(tmp_path, assets):
    from yolox_deploy.processing.images import read_image
    from yolox_deploy.processing.preprocess import letterbox

    for set_name, (images, _) in image_sets(assets).items():
        saved = tmp_path / set_name
        run_tool("--model", default_model(assets)[0], "--json", tmp_path / "d.json", "--save-input", saved, images)
        paths = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        assert paths
        for path in paths:
            want = letterbox(read_image(path), (416, 416))[0]
            got = np.fromfile(saved / f"{path.name}.f32", np.float32).reshape(want.shape)
            assert got.tobytes() == want.tobytes(), f"{path.name}: {np.count_nonzero(got != want)} values differ"
        record(f"letterbox_identical_{set_name}", len(paths))


def compare(cpp: dict[str, Any], python: Any, name: str) -> tuple[float, float]:
    """Same count and classes, boxes and scores within tolerance; returns the largest differences."""
    got = cpp["detections"]
    assert len(got) == len(python), f"{name}: C++ {len(got)} detections, Python {len(python)}"
    if not got:
        return 0.0, 0.0
    assert [d["class_id"] for d in got] == python.class_ids.tolist(), name
    assert [d["class_name"] for d in got] == list(python.class_names), name
    assert cpp["image_size"] == list(python.image_size), name
    box = float(np.abs(np.array([d["box_xyxy"] for d in got], np.float64) - python.xyxy).max())
    score = float(np.abs(np.array([d["score"] for d in got], np.float64) - python.scores).max())
    assert box <= BOX_TOLERANCE and score <= SCORE_TOLERANCE, f"{name}: box diff {box}, score diff {score}"
    return box, score


@pytest.mark.parametrize("settings_name", list(SETTINGS))
@pytest.mark.parametrize("case", list(CASES))
def test_detections_equal_python(outputs, assets, case, settings_name):
    if case == "end-to-end" and settings_name != "defaults":
        pytest.skip("an end-to-end graph runs at its baked thresholds")
    model, backend = CASES[case]
    if SANITIZED and backend == "openvino":
        pytest.skip(OPENVINO_UNDER_SANITIZER)
    skip_unless_compiled(backend)
    detector = python_detector(model_path(model, assets), backend, SETTINGS[settings_name])
    for set_name, (images, _) in image_sets(assets).items():
        cpp = outputs[(case, settings_name, set_name)]
        worst_box = worst_score = 0.0
        count = 0
        for key, record_ in cpp.items():
            box, score = compare(record_, detector(key), f"{case}/{settings_name}/{Path(key).name}")
            worst_box, worst_score, count = max(worst_box, box), max(worst_score, score), count + len(record_["detections"])
        assert len(cpp) == len(list(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")))
        record(f"detections/{set_name}/{case}/{settings_name}",
               {"images": len(cpp), "detections": count, "max_box_diff_px": worst_box, "max_score_diff": worst_score})


def coco_map(records: dict[str, dict[str, Any]], ann: Path) -> tuple[float, int]:
    """mAP50:95 over the images the annotations name (as yolox-eval scores a folder), and how many
    images were left out for having no annotation entry."""
    from yolox_deploy.coco import default_class_names
    from yolox_deploy.detections import Detections
    from yolox_deploy.evaluation import coco_box_stats, coco_from_dict

    dataset = json.loads(ann.read_text(encoding="utf-8"))
    coco = coco_from_dict(dataset)
    ids = {image["file_name"]: image["id"] for image in dataset["images"]}
    categories = sorted(coco.getCatIds())
    results = []
    annotated = {key: item for key, item in records.items() if Path(key).name in ids}
    assert annotated, f"none of the {len(records)} images is named in {ann}"
    for key, item in annotated.items():
        d = item["detections"]
        detections = Detections.from_arrays(np.array([x["box_xyxy"] for x in d], np.float32).reshape(-1, 4),
                                            np.array([x["score"] for x in d], np.float32),
                                            np.array([x["class_id"] for x in d], np.int64),
                                            default_class_names(80), tuple(item["image_size"]))
        results.extend(detections.to_coco(ids[Path(key).name], categories))
    return float(coco_box_stats(coco, results)["mAP50_95"]), len(records) - len(annotated)


@pytest.mark.parametrize("case", [c for c in CASES if c != "end-to-end"] + ["end-to-end"])
def test_coco_map_equals_python(outputs, assets, case):
    settings_name = "defaults" if case == "end-to-end" else "evaluation"
    model, backend = CASES[case]
    if SANITIZED and backend == "openvino":
        pytest.skip(OPENVINO_UNDER_SANITIZER)
    skip_unless_compiled(backend)
    detector = python_detector(model_path(model, assets), backend, SETTINGS[settings_name])
    for set_name, (images, ann) in image_sets(assets).items():
        if ann is None:
            continue
        cpp = outputs[(case, settings_name, set_name)]
        python = {key: {**detector(key).to_dict()} for key in cpp}
        (cpp_map, left_out), (python_map, _) = coco_map(cpp, ann), coco_map(python, ann)
        assert abs(cpp_map - python_map) <= MAP_TOLERANCE, f"{case}: C++ mAP {cpp_map}, Python {python_map}"
        record(f"map/{set_name}/{case}", {"cpp": cpp_map, "python": python_map, "images_scored": len(cpp) - left_out,
                                          "images_without_annotations": left_out})


def write_deployment(folder: Path, model: Path, **fields: Any) -> Path:
    folder.mkdir()
    shutil.copy(model, folder / model.name)
    record_ = {"format": "yolox_deploy.deployment/1", "model_file": model.name, "backend": "onnxruntime",
               "precision": "fp32", "arithmetic": "fp32", "threads": 1, "batch": 1,
               "detector": {"conf": 0.3, "iou": 0.5, "max_det": 50, "class_agnostic": True},
               "machine": {"cpu": "a tuned machine"}, "model": {"name": "yolox-nano", "input_size": [416, 416]}}
    record_.update(fields)
    (folder / "deploy.json").write_text(json.dumps(record_))
    return folder


@pytest.mark.parametrize("model", ["nano.onnx", "nano_openvino.xml"])
def test_the_runtime_converts_the_pixels_as_in_python(tmp_path, assets, model):
    """Both runtimes take uint8 pixels and cast them in the graph, as the Python backends do."""
    skip_unless_compiled("openvino" if model.endswith(".xml") else "onnxruntime")
    if SANITIZED and model.endswith(".xml"):
        pytest.skip(OPENVINO_UNDER_SANITIZER)
    image = sorted(image_sets(assets)["shared"][0].glob("*.jpg"))[0]
    run_tool("--model", model_path(model, assets), "--json", tmp_path / "d.json", "--timings", tmp_path / "t.json",
             image)
    assert json.loads((tmp_path / "t.json").read_text())["pixel_input"] is True


def test_a_deployment_folder_runs_with_its_settings(tmp_path, assets):
    from yolox_deploy import Detector

    folder = write_deployment(tmp_path / "deployed", model_path("nano.onnx", assets))
    images = image_sets(assets)["shared"][0]
    out = tmp_path / "d.json"
    run_tool("--model", folder, "--json", out, images)
    cpp = json.loads(out.read_text())
    with warnings.catch_warnings():  # tuned on "another machine": Python warns, and runs
        warnings.simplefilter("ignore")
        detector = Detector(folder)
    assert (detector.conf, detector.iou, detector.max_det, detector.class_agnostic) == (0.3, 0.5, 50, True)
    for key, item in cpp.items():
        compare(item, detector(key), f"deployment/{Path(key).name}")
        assert all(d["score"] >= 0.3 for d in item["detections"]) and len(item["detections"]) <= 50


@pytest.mark.parametrize("problem", ["model_file outside", "symlink outside", "corrupted json", "bad threads",
                                     "unknown detector key"])
def test_a_bad_deployment_folder_is_refused(tmp_path, assets, problem):
    model = model_path("nano.onnx", assets)
    outside = tmp_path / "outside.onnx"
    shutil.copy(model, outside)
    folder = write_deployment(tmp_path / "deployed", model)
    if problem == "model_file outside":
        write_deployment(tmp_path / "d2", model, model_file="../outside.onnx")
        folder = tmp_path / "d2"
    elif problem == "symlink outside":
        (folder / model.name).unlink()
        (folder / model.name).symlink_to(outside)
    elif problem == "corrupted json":
        (folder / "deploy.json").write_text('{"format": "yolox_deploy.deployment/1", "model_file": ')
    elif problem == "bad threads":
        write_deployment(tmp_path / "d3", model, threads="four")
        folder = tmp_path / "d3"
    else:
        write_deployment(tmp_path / "d4", model, detector={"conf": 0.3, "nms": "fast"})
        folder = tmp_path / "d4"
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    out = tmp_path / "never.json"
    run_tool("--model", folder, "--json", out, image, expect=2)
    assert not out.exists()


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, assets):
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    model = model_path("nano.onnx", assets)
    out = tmp_path / "d.json"
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8 this is not a JPEG \xff\xd9")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(image.read_bytes()[:len(image.read_bytes()) * 2 // 3])
    not_onnx = tmp_path / "weights.onnx"
    not_onnx.write_text("this is not an ONNX model")
    cases = {
        "missing image": (["--model", model, tmp_path / "missing.jpg"], "no such file or folder"),
        "undecodable image": (["--model", model, garbage], "cannot decode"),
        "truncated image": (["--model", model, truncated], "truncated"),
        "wrong kind of model": (["--model", not_onnx, image], "not a loadable ONNX model"),
        "checkpoint": (["--model", assets / "models" / "yolox_nano.pth", image], "PyTorch checkpoint"),
        "backend not compiled": (["--model", model, "--backend", "ncnn", image], "no C++ implementation"),
        "unknown backend": (["--model", model, "--backend", "tflite", image], "unknown backend"),
        "input size": (["--model", model_path("nano_dynamic.onnx", assets), "--input-size", "415,416", image],
                       "is not a positive multiple of 32"),
        "conf out of range": (["--model", model, "--conf", "2", image], "conf and iou must be in [0, 1]"),
        "unknown option": (["--model", model, "--frobnicate", image], "unknown option"),
    }
    for name, (args, message) in cases.items():
        try:
            done = run_tool(*args, "--json", out, expect=2)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
        assert message in done.stderr, f"{name}: {done.stderr}"
        assert not out.exists(), name
    from yolox_deploy.errors import InvalidInputError
    from yolox_deploy.processing.images import read_image

    for bad in (garbage, truncated):  # Python refuses the same files
        with pytest.raises(InvalidInputError):
            read_image(bad)


@pytest.mark.skipif(not os.environ.get("YOLOX_DEPLOY_CPP_BUILD_WITHOUT_OPENVINO"),
                    reason="needs the build without OpenVINO (.ci/cpp makes it)")
def test_a_backend_not_compiled_in_is_one_line(tmp_path, assets):
    tool_without = Path(os.environ["YOLOX_DEPLOY_CPP_BUILD_WITHOUT_OPENVINO"]) / "yolox-detect-cpp"
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    done = subprocess.run([str(tool_without), "--model", str(model_path("nano_openvino.xml", assets)), "--json",
                           str(tmp_path / "d.json"), str(image)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "backend 'openvino' is not compiled into this build" in done.stderr
    assert "-DYOLOX_DEPLOY_WITH_OPENVINO=ON" in done.stderr
    version = subprocess.run([str(tool_without), "--version"], capture_output=True, text=True).stdout
    assert "backends=onnxruntime " in version


def test_one_bad_image_among_several_is_skipped_with_exit_code_1(tmp_path, assets):
    images = sorted(image_sets(assets)["shared"][0].glob("*.jpg"))[:2]
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8 not a JPEG \xff\xd9")
    out = tmp_path / "d.json"
    done = run_tool("--model", model_path("nano.onnx", assets), "--json", out, *images, garbage, expect=1)
    assert "cannot decode" in done.stderr
    assert len(json.loads(out.read_text())) == 2


@pytest.mark.parametrize("model", ["nano.onnx", "nano_openvino.xml", "nano_dynamic.onnx"])
def test_the_library_promises_hold(assets, model):
    """Threads on one Detector, the batch overload, gray/BGRA/ROI inputs, one-line errors (C++ side)."""
    skip_unless_compiled("openvino" if model.endswith(".xml") else "onnxruntime")
    if SANITIZED and model.endswith(".xml"):
        pytest.skip(OPENVINO_UNDER_SANITIZER)
    done = subprocess.run([str(tool("yolox_deploy_tests")), str(model_path(model, assets)),
                           str(image_sets(assets)["shared"][0])], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0 and "Sanitizer" not in done.stderr, done.stdout[-3000:] + done.stderr[-3000:]
    assert "passed (0 failures)" in done.stdout


def installs() -> list[Path]:
    """The installed builds: the shared library (with OpenVINO) and, where .ci/cpp made it, the
    static one (ONNX Runtime only)."""
    found = [BUILD / "install"]
    if os.environ.get("YOLOX_DEPLOY_CPP_BUILD_WITHOUT_OPENVINO"):
        found.append(Path(os.environ["YOLOX_DEPLOY_CPP_BUILD_WITHOUT_OPENVINO"]) / "install")
    return found


def loader_path() -> str:
    """The folders an application needs on LD_LIBRARY_PATH: the runtimes of a Python environment,
    which the installed RUNPATH leaves out on purpose (pip install -U may replace them)."""
    import onnxruntime
    import openvino

    return ":".join([str(Path(onnxruntime.__file__).parent / "capi"), str(Path(openvino.__file__).parent / "libs")])


@pytest.mark.skipif(SANITIZED, reason="the sanitizer build checks the library, not the packaging")
@pytest.mark.parametrize("kind", ["shared", "static"])
def test_an_application_builds_against_the_installed_package(tmp_path, assets, kind):
    prefixes = installs()
    if kind == "static" and len(prefixes) < 2:
        pytest.skip("needs the static build (.ci/cpp makes it)")
    prefix = prefixes[0 if kind == "shared" else 1]
    build = tmp_path / "app"
    configure = subprocess.run(["cmake", "-S", str(REPO / "cpp" / "examples" / "app"), "-B", str(build),
                                f"-DCMAKE_PREFIX_PATH={prefix}"], capture_output=True, text=True)
    assert configure.returncode == 0, configure.stdout[-2000:] + configure.stderr[-2000:]
    compiled = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stdout[-3000:] + compiled.stderr[-2000:]
    image = sorted(image_sets(assets)["shared"][0].glob("*.jpg"))[0]
    ran = subprocess.run([str(build / "app"), str(model_path("nano.onnx", assets)), str(image)],
                         capture_output=True, text=True, env={**os.environ, "LD_LIBRARY_PATH": loader_path()})
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    out = tmp_path / "d.json"
    run_tool("--model", model_path("nano.onnx", assets), "--json", out, image)
    detections = next(iter(json.loads(out.read_text()).values()))["detections"]
    assert [line.split()[0] for line in ran.stdout.splitlines()] == [d["class_name"].split()[0] for d in detections]
    if kind == "static":  # the application carries the library: no libyolox_deploy.so to find
        needed = subprocess.run(["readelf", "-d", str(build / "app")], capture_output=True, text=True).stdout
        assert "libyolox_deploy" not in needed


def dynamic_section(path: Path) -> str:
    return subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(SANITIZED, reason="the sanitizer build checks the library, not the packaging")
def test_the_installed_library_exports_its_api_only_with_a_stated_soname(tmp_path):
    """Hidden visibility (only yolox_deploy:: API symbols, no core::/detail::), the soname of the
    ABI policy (docs/cpp.md: 0.MINOR while 0.x), the new libstdc++ ABI in the API whatever
    OpenVINO's config asks, a RUNPATH without Python environments, and a pkg-config file."""
    lib = next((BUILD / "install").glob("lib*/libyolox_deploy.so"))
    symbols = subprocess.run(["nm", "-DC", "--defined-only", str(lib)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    ours = [s.split(" ", 2)[2] for s in symbols if "yolox_deploy::" in s and " V " not in s and "typeinfo" not in s
            and "vtable" not in s]
    assert ours and all(s.startswith("yolox_deploy::") for s in ours), ours
    leaked = [s for s in ours if "::core::" in s or "::detail::" in s or "::Impl" in s]
    assert not leaked, leaked[:5]
    assert any("read_image(std::__cxx11::basic_string" in s for s in ours), "the API is not on the cxx11 ABI"
    from yolox_deploy._version import __version__

    major, minor = __version__.split(".")[:2]
    section = dynamic_section(lib)
    soname = f"libyolox_deploy.so.{major}.{minor}" if major == "0" else f"libyolox_deploy.so.{major}"
    assert f"Library soname: [{soname}]" in section, section
    runpath = [line for line in section.splitlines() if "RUNPATH" in line]
    assert runpath and "$ORIGIN" in runpath[0]
    assert "site-packages" not in runpath[0] and "venv" not in runpath[0], runpath[0]
    pc = next((BUILD / "install").glob("lib*/pkgconfig/yolox_deploy.pc")).read_text()
    assert f"Version: {__version__}" in pc and "-lyolox_deploy" in pc and "Requires: opencv4" in pc


@pytest.mark.skipif(SANITIZED, reason="the sanitizer build checks the library, not the packaging")
def test_cpp_configures_on_its_own(tmp_path):
    """A copy of cpp/ alone (no Python package beside it) configures: what a C++ user vendors."""
    shutil.copytree(REPO / "cpp", tmp_path / "cpp")
    done = subprocess.run(["cmake", "-S", str(tmp_path / "cpp"), "-B", str(tmp_path / "build"),
                           "-DONNXRUNTIME_ROOT=/opt/onnxruntime", "-DYOLOX_DEPLOY_WITH_OPENVINO=OFF"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

def test_map_scores_only_the_annotated_images(tmp_path, assets):
    """A folder where some images have no annotation entry (a reviewer's 159 images, 79 annotated):
    the mAP is computed over the annotated ones and the others are counted, not a KeyError."""
    coco = assets / "data" / "coco-val-mini"
    dataset = json.loads((coco / "instances_val2017.json").read_text())
    kept = dataset["images"][: len(dataset["images"]) // 2]
    ids = {image["id"] for image in kept}
    partial = {**dataset, "images": kept, "annotations": [a for a in dataset["annotations"] if a["image_id"] in ids]}
    ann = tmp_path / "partial.json"
    ann.write_text(json.dumps(partial))
    out = tmp_path / "d.json"
    run_tool("--model", model_path("nano.onnx", assets), "--conf", "0.01", "--iou", "0.65", "--max-det", "-1",
             "--json", out, coco / "images")
    cpp = json.loads(out.read_text())
    score, left_out = coco_map(cpp, ann)
    assert left_out == len(cpp) - len(kept) > 0
    assert 0.0 < score <= 1.0


BATCH_IMAGES = 12  # with batches of 5 or 7 the last one is padded


def dynamic_model(assets: Path) -> tuple[Path, str]:
    """nano with a dynamic batch, for the backend compiled in (ONNX Runtime, else OpenVINO)."""
    if compiled("onnxruntime"):
        return model_path("nano_dynamic.onnx", assets), "onnxruntime"
    return model_path("nano_dynamic_openvino.xml", assets), "openvino"


def images_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


@pytest.mark.parametrize("batch", range(2, 9))
def test_batches_equal_python_batches(tmp_path, assets, batch):
    """Batches of 2..8 (the last one padded; each image its own letterbox offsets and sizes) give
    Python's answers for the same batches, on the shared images and a reviewer's."""
    from yolox_deploy import Detector

    model, backend = dynamic_model(assets)
    if SANITIZED and backend == "openvino":
        pytest.skip(OPENVINO_UNDER_SANITIZER)
    detector = Detector(model, backend=backend, threads=THREADS, batch_size=batch)
    for set_name, (folder, _) in image_sets(assets).items():
        images = images_of(folder)[:BATCH_IMAGES]
        out = tmp_path / f"{set_name}.json"
        run_tool("--model", model, "--backend", backend, "--batch-size", batch, "--threads", THREADS,
                 "--timings", tmp_path / "t.json", "--json", out, *images)
        timings = json.loads((tmp_path / "t.json").read_text())
        assert timings["runs"] == -(-len(images) // batch)  # one backend call per batch
        cpp = json.loads(out.read_text())
        python = detector([str(p) for p in images])
        assert list(cpp) == [str(p) for p in images]
        for (key, item), answer in zip(cpp.items(), python):
            compare(item, answer, f"{set_name}/batch {batch}/{Path(key).name}")


@pytest.mark.parametrize("case, change, message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_deploy_json_is_one_line_as_in_python(tmp_path, assets, case, change, message):
    """The Python reader's hostile corpus (tests/hostile_deploy_cases.py), case for case."""
    folder = hostile_folder(tmp_path, model_path("nano.onnx", assets), change)
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    done = run_tool("--model", folder, "--json", tmp_path / "never.json", image, expect=2)
    assert CPP_MESSAGES.get(case, message) in done.stderr, done.stderr
    assert not (tmp_path / "never.json").exists()


@pytest.mark.parametrize("model, message", [
    ("nano_strides0.onnx", "strides [0]; strides are integers in [1, 4096]"),
    ("sequence_input.onnx", "is not a YOLOX detector: expected one input [B, 3, H, W], found images (not a tensor)"),
    ("e2e_float_ids.onnx", "where an integer count or class id belongs"),
])
def test_a_hostile_model_is_one_line(tmp_path, assets, model, message):
    """Models that killed the process (SIGFPE on strides [0], SIGSEGV on a sequence input) or made
    an undefined float-to-int conversion: one line, exit code 2, under the sanitizers too."""
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    done = run_tool("--model", model_path(model, assets), "--json", tmp_path / "d.json", image, expect=2)
    assert message in done.stderr, done.stderr


def test_metadata_nested_too_deep_keeps_the_default_as_in_python(tmp_path, assets):
    from yolox_deploy import Detector

    model = model_path("nano_deep_names.onnx", assets)
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    out = tmp_path / "d.json"
    run_tool("--model", model, "--json", out, image)
    compare(json.loads(out.read_text())[str(image)], Detector(model, threads=THREADS)(image), "deep class_names")


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels: signature, IHDR and IEND (no pixel data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IEND", b"")


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path, assets):
    from yolox_deploy.errors import InvalidInputError
    from yolox_deploy.processing.images import read_image

    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header(32768, 32768))  # 2^30 pixels: 3 GB decoded, 60 bytes on disk
    done = run_tool("--model", model_path("nano.onnx", assets), "--json", tmp_path / "d.json", huge, expect=2)
    assert "huge.png declares 32768x32768 pixels, over the limit of 100,000,000" in done.stderr, done.stderr
    with pytest.raises(InvalidInputError, match="over the limit"):
        read_image(huge)


def test_an_input_size_over_the_largest_side_is_refused(tmp_path, assets):
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    done = run_tool("--model", model_path("nano_dynamic.onnx", assets), "--input-size", "65536,65536",
                    "--json", tmp_path / "d.json", image, expect=2)
    assert "is over the largest side of 16384" in done.stderr


@pytest.mark.parametrize("spinning", [True, False])
def test_a_deployment_runs_with_its_spinning_setting(tmp_path, assets, spinning):
    folder = write_deployment(tmp_path / "deployed", model_path("nano.onnx", assets), spinning=spinning)
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    run_tool("--model", folder, "--json", tmp_path / "d.json", image)


def test_fp16_arithmetic_is_refused_as_python_refuses_it(tmp_path, assets):
    """onnxruntime computes in fp32 on the CPU: a deployment asking fp16 arithmetic of it is
    refused when the Detector is made, in the category Python uses (BackendUnavailableError)."""
    from yolox_deploy import Detector
    from yolox_deploy.errors import BackendUnavailableError

    folder = write_deployment(tmp_path / "deployed", model_path("nano.onnx", assets), arithmetic="fp16")
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    done = run_tool("--model", folder, "--json", tmp_path / "d.json", image, expect=2)
    assert "onnxruntime computes in fp32 on the CPU (asked precision 'fp16')" in done.stderr, done.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(BackendUnavailableError):
            Detector(folder)


def test_a_file_that_is_not_a_model_is_one_line_without_runtime_internals(tmp_path, assets):
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    for name, content in (("text.onnx", b"this is not an ONNX model"), ("cut.onnx", model_path("nano.onnx", assets)
                                                                        .read_bytes()[:300])):
        (tmp_path / name).write_bytes(content)
        done = run_tool("--model", tmp_path / name, "--json", tmp_path / "d.json", image, expect=2)
        assert f"{name} is not a loadable ONNX model" in done.stderr
        assert ".cc:" not in done.stderr and "onnxruntime::" not in done.stderr and "Load model from" not in done.stderr


def test_a_file_name_that_is_not_utf8_keeps_every_result(tmp_path, assets):
    images = sorted(image_sets(assets)["shared"][0].glob("*.jpg"))[:2]
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(images[0], folder / "a.jpg")
    shutil.copy(images[1], os.fsencode(folder) + b"/b\xff.jpg")
    out = tmp_path / "d.json"
    run_tool("--model", model_path("nano.onnx", assets), "--json", out, folder)
    results = json.loads(out.read_text(encoding="utf-8"))
    assert len(results) == 2 and any("\ufffd" in key for key in results)


@pytest.mark.skipif(not SANITIZED, reason="the fuzz loop runs in the sanitizer build")
def test_the_readers_survive_a_fuzz_loop(assets):
    """A seeded mutation loop over deploy.json, ONNX metadata values and the ONNX protobuf, for a
    fixed time under ASan/UBSan (float-cast-overflow included): no crash, no other exception."""
    fuzz = BUILD / "yolox_deploy_fuzz"
    if not fuzz.is_file():
        pytest.fail(f"{fuzz} is missing: .ci/cpp builds it with -DYOLOX_DEPLOY_BUILD_FUZZ=ON")
    seeds = Path(os.environ.get("YOLOX_DEPLOY_CPP_WORK_DIR", "/tmp")) / "fuzz_seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    from hostile_deploy_cases import valid_record

    (seeds / "valid.json").write_text(json.dumps(valid_record(spinning=True)))
    (seeds / "metadata.json").write_text(json.dumps({"conf": 0.25, "iou": 0.45, "max_det": 300, "strides": [8, 16, 32],
                                                     "class_names": ["person", "bicycle"]}))
    seconds = int(os.environ.get("YOLOX_DEPLOY_FUZZ_SECONDS", "60"))
    done = subprocess.run([str(fuzz), str(seconds), "2026", str(seeds / "valid.json"), str(seeds / "metadata.json"),
                           str(model_path("nano.onnx", assets))], capture_output=True, text=True,
                          timeout=seconds + 300)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    record("fuzz", summary)
    assert done.returncode == 0 and "Sanitizer" not in done.stderr, done.stdout[-3000:] + done.stderr[-3000:]
    assert summary.startswith("fuzz: ") and summary.endswith(", 0 findings"), summary


SLICED_SETTINGS = {  # name -> (yolox-detect-cpp flags, Python SliceSettings fields, detector options)
    "greedy_nmm-ios": (["--slice", "416"], {"size": 416}, {}),
    "nms-iou-agnostic": (["--slice", "320,416", "--overlap", "0.25", "--merge", "nms", "--match", "iou",
                          "--no-full-image", "--agnostic"],
                         {"size": (320, 416), "overlap": 0.25, "merge": "nms", "match": "iou", "full_image": False,
                          "class_agnostic": True}, {"class_agnostic": True}),
    "low-conf": (["--slice", "416", "--conf", "0.05"], {"size": 416}, {"conf": 0.05}),
}


@pytest.fixture(scope="module")
def mosaics(tmp_path_factory, assets) -> list[Path]:
    """The 5 4x4 mosaics of the shared images (benchmarks/mosaic.py, 1920x2560 each)."""
    from yolox_deploy.benchmarks.mosaic import build_mosaics

    coco = assets / "data" / "coco-val-mini"
    out = tmp_path_factory.mktemp("mosaics")
    build_mosaics(coco / "images", coco / "instances_val2017.json", out, n=4, png=True, progress=False)
    return images_of(out / "images")


@pytest.mark.parametrize("name", list(SLICED_SETTINGS))
def test_sliced_inference_equals_python(tmp_path, assets, mosaics, name):
    """SliceSettings in C++ give the Python sliced Detector's answers. The default settings on the
    5 mosaics, all the shared images and a reviewer's; the others on 2 mosaics and 4 images."""
    from yolox_deploy import Detector
    from yolox_deploy.slicing import SliceSettings

    flags, fields, options = SLICED_SETTINGS[name]
    model, backend = default_model(assets)
    if name == "greedy_nmm-ios":
        images = mosaics + [p for folder, _ in image_sets(assets).values() for p in images_of(folder)]
    else:
        images = mosaics[:2] + images_of(image_sets(assets)["shared"][0])[:4]
    out = tmp_path / "d.json"
    run_tool("--model", model, "--threads", THREADS, *flags, "--json", out, *images)
    cpp = json.loads(out.read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = Detector(model, backend=backend, threads=THREADS, slices=SliceSettings(**fields), **options)
    count = 0
    for key, item in cpp.items():
        compare(item, detector(key), f"sliced {name}/{Path(key).name}")
        count += len(item["detections"])
    assert len(cpp) == len(images) and count > 0
    record(f"sliced/{name}", {"images": len(cpp), "detections": count})


def test_slice_settings_are_checked_in_one_line(tmp_path, assets):
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    model = model_path("nano.onnx", assets)
    for flags, message in ((["--slice", "100"], "is not a positive multiple of 32"),
                           (["--slice", "416", "--overlap", "1"], "slice overlap 1 is outside [0, 1)"),
                           (["--slice", "32", "--overlap", "0.99"], "windows (at most 4096)"),
                           (["--overlap", "0.3"], "--overlap applies only with --slice"),
                           (["--slice", "416", "--merge", "wbf"], "unknown merge 'wbf'")):
        done = run_tool("--model", model, *flags, "--json", tmp_path / "d.json", image, expect=2)
        assert message in done.stderr, (flags, done.stderr)


@pytest.mark.skipif(SANITIZED, reason=OPENVINO_UNDER_SANITIZER)
def test_openvino_fp16_arithmetic_runs_or_is_refused_as_in_python(tmp_path, assets):
    """OpenVINO fp16 arithmetic, which Python supports: where the CPU plugin lists FP16 both run it
    (and agree within fp16's tolerance), elsewhere both refuse it in one line (the same category).
    Which of the two happens is this machine's business; that C++ and Python agree is the test's."""
    skip_unless_compiled("openvino")
    from yolox_deploy import Detector
    from yolox_deploy.errors import BackendUnavailableError

    model = model_path("nano_openvino.xml", assets)
    image = next(image_sets(assets)["shared"][0].glob("*.jpg"))
    done = subprocess.run([str(tool()), "--model", str(model), "--precision", "fp16", "--threads", str(THREADS),
                           "--json", str(tmp_path / "d.json"), str(image)], capture_output=True, text=True,
                          timeout=300)
    try:
        python = Detector(model, backend="openvino", precision="fp16", threads=THREADS)
    except BackendUnavailableError as exc:
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "precision 'fp16' needs FP16 support" in done.stderr and "FP16" in str(exc)
        record("openvino_fp16", "refused by both (the CPU plugin lists no FP16)")
        return
    assert done.returncode == 0, done.stderr
    got = json.loads((tmp_path / "d.json").read_text())[str(image)]["detections"]
    want = python(image)
    assert abs(len(got) - len(want)) <= 2  # fp16 arithmetic: a box at the threshold may come and go
    record("openvino_fp16", f"ran on both: {len(got)} / {len(want)} detections")
