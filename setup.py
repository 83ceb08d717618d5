"""Build of yolox-deploy: the Python packages plus the C++ postprocess kernel.

``exporters/``, ``runtimes/`` and ``benchmarks/`` live at the top of the repository and
install as ``yolox_deploy.exporters``, ``yolox_deploy.runtimes`` and ``yolox_deploy.benchmarks``.
"""
import hashlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import find_packages, setup

HERE = Path(__file__).parent
# Each import package and the folder it comes from: the top-level exporters/, runtimes/ and benchmarks/
# install inside yolox_deploy. Every subpackage below them is discovered, never listed by hand.
PACKAGE_ROOTS = {"yolox_deploy": "yolox_deploy", "yolox_deploy.exporters": "exporters",
                 "yolox_deploy.runtimes": "runtimes", "yolox_deploy.benchmarks": "benchmarks"}
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "yolox_deploy" / "_version.py").read_text()).group(1)

CORE = HERE / "cpp" / "core"  # the shared C++ core: this module and the C++ library (cpp/CMakeLists.txt) compile it


def core_sources_sha256() -> str:
    """SHA-256 over cpp/core: each file's name and SHA-256, in name order (CMake computes the same)."""
    listing = "".join(f"{f.name}\n{hashlib.sha256(f.read_bytes()).hexdigest()}\n"
                      for f in sorted(CORE.iterdir(), key=lambda f: f.name) if f.is_file())
    return hashlib.sha256(listing.encode()).hexdigest()


kernel = Pybind11Extension(
    "yolox_deploy.processing._kernel",
    sorted(str(f.relative_to(HERE)) for f in CORE.glob("*.cpp")) + ["cpp/python/kernel.cpp"],
    cxx_std=17,
    define_macros=[("YOLOX_DEPLOY_CORE_SHA256", f'"{core_sources_sha256()}"')],
    # -O3 but no -march=native (wheels must run on any x86-64/aarch64); no FMA contraction so
    # the kernel rounds exactly like the NumPy reference; hidden visibility: the module exports
    # PyInit__kernel only, not the core's symbols (which another copy of the core could clash with).
    extra_compile_args=["-O3", "-ffp-contract=off", "-pthread", "-fvisibility=hidden", "-fvisibility-inlines-hidden"],
    extra_link_args=["-pthread"],  # the letterbox runs bands of rows on std::threads
)



def discover_packages() -> list:
    """Every package under PACKAGE_ROOTS. A folder with .py files but no __init__.py would be left out
    of the wheel silently (a namespace package imports from a checkout, not once installed): that fails
    the build instead."""
    packages = []
    for name, folder in PACKAGE_ROOTS.items():
        packages += [name] + [f"{name}.{sub}" for sub in find_packages(str(HERE / folder))]
        for directory in sorted({f.parent for f in (HERE / folder).rglob("*.py")}):
            package = ".".join((name, *directory.relative_to(HERE / folder).parts))
            if package not in packages:
                raise SystemExit(f"error: {directory.relative_to(HERE)}/ holds .py files but no __init__.py, "
                                 "so the wheel would leave it out: add an __init__.py")
    return packages


class OptionalKernelBuild(build_ext):
    """Builds the C++ kernel. Only when no working C++ compiler exists (no g++, ``CXX=false``:
    a trivial C++17 file does not compile) does the install go on without it, saying once
    that the NumPy reference will run (same results, slower); ``YOLOX_DEPLOY_REQUIRE_KERNEL=1``
    makes that an install error too. With a working compiler, an error in our own source
    fails the install with the compiler's message."""

    def build_extension(self, ext):
        problem = self._compiler_problem()
        if problem is None:
            super().build_extension(ext)  # a compile error in cpp/ is a real error: let it fail the install
            return
        message = (f"yolox-deploy: no working C++17 compiler ({problem}), so the C++ postprocess kernel was "
                   "not built. Install a C++ compiler (g++) and python3-dev, then reinstall to build it")
        if os.environ.get("YOLOX_DEPLOY_REQUIRE_KERNEL", "") == "1":
            raise SystemExit(f"error: {message} (YOLOX_DEPLOY_REQUIRE_KERNEL=1 requires the kernel)")
        print(f"WARNING: {message}; the NumPy reference postprocess will be used (same results, slower).",
              file=sys.stderr)

    def _compiler_problem(self):
        """None when the configured compiler builds a trivial C++17 translation unit, else why not."""
        from setuptools.errors import CCompilerError, CompileError, PlatformError
        probe_dir = tempfile.mkdtemp(prefix="yolox-deploy-probe-")
        try:
            source = os.path.join(probe_dir, "probe.cpp")
            with open(source, "w") as f:
                f.write("#include <vector>\nint probe() { std::vector<int> v{1}; auto [a, b] = "
                        "std::pair<int, int>{v[0], 2}; return a + b; }\n")
            self.compiler.compile([source], output_dir=probe_dir, extra_postargs=["-std=c++17"])
            return None
        except (CompileError, CCompilerError, PlatformError, OSError) as exc:
            compiler = (getattr(self.compiler, "compiler_so", None) or ["the C++ compiler"])[0]
            return f"{compiler!r}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}"
        finally:
            shutil.rmtree(probe_dir, ignore_errors=True)


TORCH = ["torch>=2.1"]
EXPORT = TORCH + ["onnx>=1.15", "onnxslim>=0.1.30"]
EVAL = ["pycocotools>=2.0.7"]
OPENVINO = ["openvino>=2024.0"]
OPENVINO_INT8 = OPENVINO + ["nncf>=2.10"]
NCNN = ["ncnn>=1.0.20240410"]
NCNN_EXPORT = TORCH + NCNN + ["pnnx>=20240410"]
# needs an NVIDIA GPU and a CUDA build of torch; 10.x and 11.x share one strongly typed build path. The
# export extra comes along: --half/--int8 make the FP16 / Q/DQ ONNX that TensorRT then builds.
TENSORRT = EXPORT + ["tensorrt>=10.0"]
RAY = ["ray[data]>=2.40"]
SUPERVISION = ["supervision>=0.26.1"]
# trackers' own dependencies but opencv-python (it would put a second, GUI cv2 over opencv-python-headless);
# trackers itself then goes in with: pip install --no-deps "trackers==2.6.1" (see yolox_deploy/video/tracking.py)
TRACKING = SUPERVISION + ["scipy>=1.13.1", "rich>=13.0.0", "requests>=2.28.0", "pydeprecate>=0.8.0"]
TRITON = ["tritonclient[http,grpc]>=2.40"]
# sahi's own dependencies but opencv-python (a second, GUI cv2 over opencv-python-headless), for
# yolox_deploy.integrations.sahi; sahi itself then goes in with: pip install --no-deps "sahi==0.12.8"
SAHI = ["shapely>=2.0.0", "fire", "click", "pyyaml", "pillow>=8.2.0", "requests", "matplotlib>=3.5"]
# yolox-tune: exports (torch, onnx), COCO mAP, the Pareto plot; add openvino-int8 / ncnn-export for their candidates
SERVE = ["prometheus_client>=0.17", "paho-mqtt>=2.0"]  # yolox-serve's /metrics and MQTT output
TUNE = EXPORT + EVAL + ["matplotlib>=3.5"]

setup(
    name="yolox-deploy",
    version=VERSION,
    description="Deploy YOLOX detectors: one preprocessing/decoding/NMS layer, exporters and runtimes",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=discover_packages(),
    package_dir=PACKAGE_ROOTS,
    ext_modules=[kernel],
    cmdclass={"build_ext": OptionalKernelBuild},
    install_requires=["numpy>=1.24", "opencv-python-headless>=4.8", "onnxruntime>=1.16", "tqdm>=4.60"],
    extras_require={
        "torch": TORCH,
        "export": EXPORT,
        "eval": EVAL,
        "openvino": OPENVINO,
        "openvino-int8": OPENVINO_INT8,
        "ncnn": NCNN,
        "ncnn-export": NCNN_EXPORT,
        "tensorrt": TENSORRT,
        "ray": RAY,
        "triton": TRITON,
        "supervision": SUPERVISION,
        "tracking": TRACKING,
        "sahi": SAHI,
        "bench": ["matplotlib>=3.5"],
        "tune": TUNE,
        "serve": SERVE,
        "all": EXPORT + EVAL + OPENVINO_INT8 + NCNN_EXPORT + RAY + TRITON + TRACKING + SERVE,
        "test": EXPORT + EVAL + OPENVINO_INT8 + NCNN_EXPORT + RAY + TRITON + TRACKING + SAHI + SERVE
        + ["matplotlib>=3.5", "pytest>=7", "pytest-timeout>=2.1", "hypothesis>=6", "pillow>=9",
           # tests/test_build.py builds the package without a compiler, without build isolation
           "pybind11>=2.12", "setuptools>=68", "wheel"],
    },
    entry_points={"console_scripts": [
        "yolox-export=yolox_deploy.cli.export:main",
        "yolox-detect=yolox_deploy.cli.detect:main",
        "yolox-eval=yolox_deploy.cli.eval:main",
        "yolox-bench=yolox_deploy.cli.bench:main",
        "yolox-tune=yolox_deploy.cli.tune:main",
        "yolox-serve=yolox_deploy.cli.serve:main",
    ]},
    zip_safe=False,
)
