"""Build of yolox-deploy: the Python packages plus the C++ postprocess kernel.

``exporters/``, ``runtimes/`` and ``benchmarks/`` live at the top of the repository and
install as ``yolox_deploy.exporters``, ``yolox_deploy.runtimes`` and ``yolox_deploy.benchmarks``.
"""
import re
import sys
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "yolox_deploy" / "_version.py").read_text()).group(1)

kernel = Pybind11Extension(
    "yolox_deploy.processing._kernel",
    ["cpp/postprocess.cpp"],
    cxx_std=17,
    # -O3 but no -march=native (wheels must run on any x86-64/aarch64); no FMA contraction so
    # the kernel rounds exactly like the NumPy reference.
    extra_compile_args=["-O3", "-ffp-contract=off"],
)



class OptionalKernelBuild(build_ext):
    """Builds the C++ kernel when a compiler works; without one (no g++, ``CXX=false``) the
    install still succeeds, says once that the NumPy reference will run (same results,
    slower), and ``postprocess_impl="auto"`` falls back to it."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError, LinkError, a missing compiler: all mean "no kernel"
            compiler = (getattr(self.compiler, "compiler_so", None) or ["the C++ compiler"])[0]
            print(f"WARNING: yolox-deploy: the C++ postprocess kernel was not built ({type(exc).__name__}: "
                  f"{compiler!r} failed on {ext.sources[0]}); the NumPy "
                  "reference postprocess will be used (same results, slower). Install a C++ compiler "
                  "(g++) and python3-dev, then reinstall to build it.", file=sys.stderr)


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
# yolox-tune: exports (torch, onnx), COCO mAP, the Pareto plot; add openvino-int8 / ncnn-export for their candidates
TUNE = EXPORT + EVAL + ["matplotlib>=3.5"]

setup(
    name="yolox-deploy",
    version=VERSION,
    description="Deploy YOLOX detectors: one preprocessing/decoding/NMS layer, exporters and runtimes",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=["yolox_deploy", "yolox_deploy.processing", "yolox_deploy.artifacts", "yolox_deploy.video",
              "yolox_deploy.models", "yolox_deploy.cli", "yolox_deploy.integrations", "yolox_deploy.tune",
              "yolox_deploy.exporters", "yolox_deploy.runtimes", "yolox_deploy.benchmarks"],
    package_dir={"yolox_deploy": "yolox_deploy",
                 "yolox_deploy.exporters": "exporters",
                 "yolox_deploy.runtimes": "runtimes",
                 "yolox_deploy.benchmarks": "benchmarks"},
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
        "bench": ["matplotlib>=3.5"],
        "tune": TUNE,
        "all": EXPORT + EVAL + OPENVINO_INT8 + NCNN_EXPORT + RAY + TRITON + TRACKING,
        "test": EXPORT + EVAL + OPENVINO_INT8 + NCNN_EXPORT + RAY + TRITON + TRACKING
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
    ]},
    zip_safe=False,
)
