"""setup.py: the C++ kernel is optional at build time only where no C++ compiler works. Then the
package still builds and installs, says once that the NumPy reference will run, and detects the
same; YOLOX_DEPLOY_REQUIRE_KERNEL=1 makes it an error. With a working compiler, an error in our
own source fails the build with the compiler's message."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from yolox_deploy import Detector
from yolox_deploy.processing.images import read_image

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("setup.py", "pyproject.toml", "README.md", "yolox_deploy", "exporters", "runtimes", "benchmarks", "cpp")
# the import package each source folder installs as (setup.py's package_dir)
INSTALLED_AS = {"yolox_deploy": "yolox_deploy", "exporters": "yolox_deploy/exporters",
                "runtimes": "yolox_deploy/runtimes", "benchmarks": "yolox_deploy/benchmarks"}
NOT_BUILD_INPUTS = shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info", "build")

DETECT = """
import json, logging, sys
import numpy as np
logging.basicConfig(level=logging.WARNING, format="LOG %(message)s")
import yolox_deploy
from yolox_deploy import Detector
from yolox_deploy.processing.images import read_image
from yolox_deploy.processing.postprocess import kernel_available, postprocess
from yolox_deploy.measure.report import machine_info
model, image = sys.argv[1], np.load(sys.argv[2])
det = Detector(model, conf=0.01)
found = [det(image), det(image)]  # two calls: the fallback is announced once
try:
    postprocess(np.zeros((1, 126, 8), np.float32), (64, 96), [1.0], impl="cpp")
    cpp_error = None
except yolox_deploy.YoloxDeployError as exc:
    cpp_error = str(exc)
print(json.dumps({"file": yolox_deploy.__file__, "kernel": kernel_available(), "cpp_error": cpp_error,
                  "bench_header": machine_info()["postprocess_kernel"],
                  "xyxy": found[0].xyxy.tolist(), "scores": found[0].scores.tolist(),
                  "classes": found[0].class_ids.tolist()}))
"""


def copy_sources(dest: Path) -> Path:
    dest.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=NOT_BUILD_INPUTS)
        else:
            shutil.copy2(path, dest / name)
    return dest


def build_wheel(src: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "YOLOX_DEPLOY_REQUIRE_KERNEL"}
    return subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(src)], env={**environment, **env}, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def built_without_compiler(tmp_path_factory) -> tuple[Path, str]:
    """The package built with CC=false CXX=false and installed into a folder of its own."""
    root = tmp_path_factory.mktemp("nocompiler")
    src = copy_sources(root / "src")
    build = build_wheel(src, root / "wheel", CC="false", CXX="false")
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheel = next((root / "wheel").glob("*.whl"))
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--target",
                              str(root / "site"), str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    return root / "site", build.stdout + build.stderr


def test_a_compile_error_in_our_source_fails_the_build_with_the_compilers_message(tmp_path):
    if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
        pytest.skip("needs a C++ compiler")
    src = copy_sources(tmp_path / "src")
    kernel = src / "cpp" / "core" / "postprocess.cpp"
    kernel.write_text(kernel.read_text() + "\nthis_is_not_cpp planted_error;\n")
    build = build_wheel(src, tmp_path / "wheel")
    log = build.stdout + build.stderr
    assert build.returncode != 0, log[-3000:]
    assert "this_is_not_cpp" in log and "error" in log  # the compiler's own diagnostic, not our fallback
    assert "the NumPy reference postprocess will be used" not in log
    assert not list((tmp_path / "wheel").glob("*.whl"))


def test_require_kernel_makes_a_missing_compiler_an_install_error(tmp_path):
    src = copy_sources(tmp_path / "src")
    build = build_wheel(src, tmp_path / "wheel", CC="false", CXX="false", YOLOX_DEPLOY_REQUIRE_KERNEL="1")
    log = build.stdout + build.stderr
    assert build.returncode != 0
    assert "no working C++17 compiler" in log and "YOLOX_DEPLOY_REQUIRE_KERNEL=1 requires the kernel" in log
    assert not list((tmp_path / "wheel").glob("*.whl"))


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the x86 install's promise")
def test_the_x86_install_has_the_kernel():
    """CI installs with YOLOX_DEPLOY_REQUIRE_KERNEL=1 on x86; elsewhere a kernel-less install is
    allowed (no compiler) and this says nothing."""
    from yolox_deploy.artifacts.machine import machine_fingerprint
    from yolox_deploy.processing.postprocess import kernel_available

    if os.environ.get("YOLOX_DEPLOY_REQUIRE_KERNEL") != "1":
        pytest.skip("YOLOX_DEPLOY_REQUIRE_KERNEL is not 1 (CI sets it)")
    assert kernel_available()
    assert machine_fingerprint()["postprocess_kernel"] is True


def test_the_build_succeeds_without_a_compiler_and_says_so_once(built_without_compiler):
    site, log = built_without_compiler
    assert log.count("the C++ postprocess kernel was not built") == 1
    assert "the NumPy reference postprocess will be used" in log
    assert not list(site.glob("yolox_deploy/**/_kernel*"))


def test_auto_falls_back_to_numpy_with_the_kernels_answer(built_without_compiler, tiny_onnx, coco_images):
    site, _ = built_without_compiler
    image = read_image(coco_images[0])
    np.save(site.parent / "image.npy", image)
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", DETECT, str(tiny_onnx), str(site.parent / "image.npy")], env=env,
                         capture_output=True, text=True, timeout=300, cwd=site.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(site)) and out["kernel"] is False
    assert run.stderr.count("C++ postprocess kernel not built, using the NumPy reference") == 1
    assert "NOT built" in out["bench_header"] and "\n" not in out["cpp_error"]
    assert "impl='auto'" in out["cpp_error"]
    # this process has the kernel: both give the same detections
    with_kernel = Detector(tiny_onnx, conf=0.01, postprocess_impl="cpp")(image)
    assert len(with_kernel) == len(out["scores"]) > 0
    np.testing.assert_array_equal(with_kernel.class_ids, out["classes"])
    np.testing.assert_allclose(with_kernel.xyxy, np.asarray(out["xyxy"], np.float32), atol=1e-4)
    np.testing.assert_allclose(with_kernel.scores, np.asarray(out["scores"], np.float32), atol=1e-6)


def test_the_wheel_holds_every_module_of_the_source_tree(built_without_compiler):
    """What users get: every .py of yolox_deploy/, exporters/, runtimes/ and benchmarks/ is in the
    wheel, where setup.py's package_dir puts it, and nothing else (an editable install hides a
    module that the wheel leaves out: yolox_deploy.measure once was)."""
    site, _ = built_without_compiler
    wheel = next((site.parent / "wheel").glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.endswith(".py")}
    expected = {f"{installed}/{path.relative_to(REPO / folder).as_posix()}"
                for folder, installed in INSTALLED_AS.items() for path in (REPO / folder).rglob("*.py")
                if "__pycache__" not in path.parts}
    assert shipped == expected, (sorted(expected - shipped), sorted(shipped - expected))


def test_a_code_folder_without_init_fails_the_build_instead_of_leaving_the_wheel(tmp_path):
    src = copy_sources(tmp_path / "src")
    (src / "yolox_deploy" / "newpart").mkdir()
    (src / "yolox_deploy" / "newpart" / "module.py").write_text("VALUE = 1\n")
    build = build_wheel(src, tmp_path / "wheel", CC="false", CXX="false")
    assert build.returncode != 0
    assert "yolox_deploy/newpart/ holds .py files but no __init__.py" in build.stdout + build.stderr
    assert not list((tmp_path / "wheel").glob("*.whl"))
