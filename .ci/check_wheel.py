"""Checks an installed (non-editable) yolox-deploy from outside the checkout: every console script's
--help, every module of the package imported. Run by .ci/wheel with the wheel's virtualenv.

  python check_wheel.py --core     only the core install: a module may fail to import only for a
                                   third-party package that an extra brings (named in the report)
  python check_wheel.py            every extra installed: every module must import
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import shutil
import subprocess
import sys
import traceback
from pathlib import Path


def console_scripts() -> list[str]:
    return sorted(ep.name for ep in metadata.distribution("yolox-deploy").entry_points
                  if ep.group == "console_scripts")


def check_help(scripts: list[str]) -> list[str]:
    problems = []
    for name in scripts:
        exe = shutil.which(name)
        if exe is None:
            problems.append(f"{name}: not on PATH")
            continue
        done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or "usage:" not in done.stdout:
            problems.append(f"{name} --help: exit {done.returncode}: {(done.stderr or done.stdout).strip()[-400:]}")
    return problems


def all_modules() -> list[str]:
    """Every module the wheel installed, from its RECORD (not by walking packages, which skips
    what fails to import)."""
    names = []
    for file in metadata.distribution("yolox-deploy").files or ():
        if file.suffix == ".py" and file.parts[0] == "yolox_deploy":
            parts = file.with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def check_imports(modules: list[str], core_only: bool) -> tuple[list[str], list[str]]:
    """(problems, modules that need an extra's package) after importing each module."""
    from yolox_deploy.errors import BackendNotInstalledError

    problems, need_extra = [], []
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            if core_only and missing and missing != "yolox_deploy":
                need_extra.append(f"{name} (needs {missing})")
            else:
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
        except BackendNotInstalledError as exc:  # our one-line refusal, naming the extra to install
            if core_only:
                need_extra.append(f"{name} ({str(exc).rsplit(': ', 1)[-1]})")
            else:
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 -- any other failure is a packaging or code defect
            problems.append(f"{name}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
    return problems, need_extra


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", action="store_true", help="only the core dependencies are installed")
    args = parser.parse_args()
    import yolox_deploy

    location = Path(yolox_deploy.__file__).resolve()
    if "site-packages" not in location.parts:
        print(f"yolox_deploy imported from {location}, not from the installed wheel", file=sys.stderr)
        return 1
    scripts = console_scripts()
    modules = all_modules()
    problems = check_help(scripts)
    import_problems, need_extra = check_imports(modules, args.core)
    problems += import_problems
    print(f"[wheel] {len(scripts)} console scripts ({', '.join(scripts)}): --help "
          f"{'ok' if not problems else 'checked'}; {len(modules)} modules imported from {location.parent}"
          + (f", {len(need_extra)} need an extra: {', '.join(need_extra)}" if need_extra else ""))
    for problem in problems:
        print(f"[wheel] FAILED {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
