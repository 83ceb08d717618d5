"""One source of truth: the pybind11 module and the CMake library compile the same cpp/core, and
both embed the same digest of it (the C++ side is checked in .ci/cpp, test_cpp_parity.py)."""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "cpp" / "core"


def tree_digest() -> str:
    listing = "".join(f"{f.name}\n{hashlib.sha256(f.read_bytes()).hexdigest()}\n"
                      for f in sorted(CORE.iterdir(), key=lambda f: f.name) if f.is_file())
    return hashlib.sha256(listing.encode()).hexdigest()


def test_the_python_module_was_compiled_from_this_core():
    from yolox_deploy.processing import postprocess

    if not postprocess.kernel_available():
        pytest.skip("the C++ kernel is not built here (CI requires it)")
    assert postprocess._kernel.CORE_SOURCES_SHA256 == tree_digest(), "reinstall: the kernel predates cpp/core"


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_cmake_computes_the_digest_setup_py_computes():
    done = subprocess.run(["cmake", f"-DCORE_DIR={CORE}", "-P", str(REPO / "cpp" / "cmake" / "core_sources_sha256.cmake")],
                          capture_output=True, text=True, check=True)
    assert done.stderr.strip() == tree_digest()  # message() writes to stderr


def test_both_builds_list_every_core_source_and_nothing_else():
    setup = (REPO / "setup.py").read_text()
    cmake = (REPO / "cpp" / "CMakeLists.txt").read_text()
    assert 'CORE.glob("*.cpp")' in setup and '"cpp/python/kernel.cpp"' in setup
    assert 'file(GLOB CORE_SOURCES "${CORE_DIR}/*.cpp")' in cmake and "${CORE_SOURCES}" in cmake
    binding = (REPO / "cpp" / "python" / "kernel.cpp").read_text()
    # the binding converts arguments only: every computation is a call into the core
    assert set(re.findall(r'#include "(\.\./core/[a-z_]+\.hpp)"', binding)) == {
        "../core/letterbox.hpp", "../core/merge.hpp", "../core/postprocess.hpp", "../core/sources.hpp"}
    assert not re.search(r"\b(std::exp|std::stable_sort|std::floor)\b", binding)


def test_cpp_version_is_the_python_package_version():
    """cpp/ configures on its own (cpp/VERSION); the two version numbers are one."""
    from yolox_deploy._version import __version__

    assert (REPO / "cpp" / "VERSION").read_text().strip() == __version__


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs binutils' nm")
def test_the_python_module_exports_nothing_of_the_core():
    from yolox_deploy.processing import postprocess

    if not postprocess.kernel_available():
        pytest.skip("the C++ kernel is not built here (CI requires it)")
    symbols = subprocess.run(["nm", "-DC", "--defined-only", postprocess._kernel.__file__], capture_output=True,
                             text=True, check=True).stdout
    assert "PyInit__kernel" in symbols
    assert "yolox_deploy::" not in symbols, [line for line in symbols.splitlines() if "yolox_deploy::" in line][:5]
