"""Was yolox-tune's choice the fastest? An independent ``yolox-bench`` run says.

Every candidate of a deployment that was within the accuracy bound (and sure of it) gets a
deployment folder of its own (the same record with that candidate's backend, precision,
threads and spinning, and its model file), and one ``yolox-bench --model DIR ...`` run
times them all, interleaved, in the same window. The choice holds when its p50 (batch 1;
images/s at its batch otherwise) is within 5% of the fastest.

    python benchmarks/tune_evidence.py --deploy DEPLOY_DIR --data IMAGES --seconds 20 \
        --json benchmarks/results/tune_evidence.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from yolox_deploy.measure.config import ARTIFACT_AND_ARITHMETIC
from yolox_deploy.tune.choice import TuneRow
from yolox_deploy.tune.deploy_dir import copy_model

HOLDS_WITHIN = 0.05


def candidate_folder(record: dict[str, Any], row: TuneRow, folder: Path) -> Path:
    """A deployment folder running ``row`` (its model file copied in)."""
    content = {k: v for k, v in record.items() if k not in ("verify", "spinning", "float_convs")}
    content.update(model_file=copy_model(Path(row.model_file), folder), backend=row.backend, precision=row.precision,
                   arithmetic=ARTIFACT_AND_ARITHMETIC[row.precision][1], threads=row.threads, batch=row.batch)
    if row.spinning is not None:
        content["spinning"] = row.spinning
    (folder / "deploy.json").write_text(json.dumps(content, indent=1), encoding="utf-8")
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--deploy", required=True)
    p.add_argument("--data", required=True, help="images yolox-bench times on")
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per candidate")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    record = json.loads((Path(args.deploy) / "deploy.json").read_text())
    bound = record["accuracy"]["max_ap_drop"]
    rows = [TuneRow(**r) for r in record["candidates"]]
    within = [r for r in rows if r.choosable and r.within(bound)]
    with tempfile.TemporaryDirectory() as tmp:
        folders = {r.label: candidate_folder(record, r, Path(tmp) / f"c{i}") for i, r in enumerate(within)}
        out = Path(tmp) / "bench.json"
        command = [sys.executable, "-m", "yolox_deploy.cli.bench", "--model", *map(str, folders.values()),
                   "--data", args.data, "--seconds", str(args.seconds), "--no-baseline", "--batch",
                   str(record["batch"]), "--json", str(out)]
        subprocess.run(command, check=True)
        bench = json.loads(out.read_text())
    by_folder = {Path(r["model_file"]).parent.name if Path(r["model_file"]).is_file() else Path(r["model_file"]).name:
                 r for r in bench["rows"]}
    measured = []
    for (label, folder), row in zip(folders.items(), within):
        b = by_folder[folder.name]
        e2e = b["ms"]["end_to_end"]
        measured.append({"candidate": label, "chosen": row.chosen, "p50_ms": e2e["p50"], "p99_ms": e2e["p99"],
                         "images_per_s": b["images_per_s"], "cpu_ms_per_image": b.get("cpu_ms_per_image"),
                         "tune_speedup": row.speedup, "delta_mAP50_95": row.delta_mAP50_95})
    key = "p50_ms" if record["batch"] == 1 else "images_per_s"
    best = min(m[key] for m in measured) if key == "p50_ms" else max(m[key] for m in measured)
    chosen = next(m for m in measured if m["chosen"])
    ratio = chosen[key] / best if key == "p50_ms" else best / chosen[key]
    holds = ratio <= 1 + HOLDS_WITHIN
    print("| candidate | chosen | bench p50 ms | p99 ms | img/s | CPU ms/img | tune x FP32 | ΔmAP |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in sorted(measured, key=lambda m: m["p50_ms"]):
        print(f"| {m['candidate']} | {'->' if m['chosen'] else ''} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
              f"{m['images_per_s']:.1f} | {m['cpu_ms_per_image'] or 0:.2f} | {m['tune_speedup']:.2f} | "
              f"{m['delta_mAP50_95']:+.4f} |")
    print(f"\nchosen {chosen['candidate']}: {ratio:.3f}x the fastest's {key} -> "
          f"{'holds' if holds else 'does not hold'} (within {HOLDS_WITHIN:.0%})")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": bench["machine"], "deploy": str(args.deploy),
                                               "accuracy_mode": record["accuracy"]["mode"], "rows": measured,
                                               "ratio_to_fastest": ratio, "holds": holds}, indent=1) + "\n")


if __name__ == "__main__":
    main()
