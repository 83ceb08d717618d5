"""Small objects from real photographs: N x N images of a COCO folder scaled into one large
mosaic, with their annotations transformed into it.

    python benchmarks/mosaic.py --images ../shared/data/coco-val-mini/images \
        --ann ../shared/data/coco-val-mini/annotations/instances_val2017_mini.json --n 4 -o mosaics/

writes ``mosaics/images/mosaic_000.jpg`` ... and ``mosaics/instances.json`` (COCO format: the
source categories; boxes, and areas, scaled with their image). Images go in file-name order,
``n * n`` per mosaic, row by row; each is scaled to fit its cell (``--cell H W``, default
480 640) keeping its aspect, centred, on grey 114. A last, incomplete mosaic keeps its
empty cells grey. Mosaics are JPEG at quality 95 unless ``--png``.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

GREY = 114


def _load(ann_file: Path) -> dict[str, Any]:
    return json.loads(Path(ann_file).read_text())


def _placement(hw: tuple[int, int], cell: tuple[int, int]) -> tuple[float, int, int, int, int]:
    """(scale, new height, new width, x offset, y offset) of an image of ``hw`` in a cell."""
    scale = min(cell[0] / hw[0], cell[1] / hw[1])
    new_h, new_w = max(1, round(hw[0] * scale)), max(1, round(hw[1] * scale))
    return scale, new_h, new_w, (cell[1] - new_w) // 2, (cell[0] - new_h) // 2


def build_mosaics(images_dir: Path, ann_file: Path, out_dir: Path, n: int = 4, cell: tuple[int, int] = (480, 640),
                  png: bool = False, progress: bool = True) -> Path:
    """Write the mosaics of ``images_dir`` (annotated in ``ann_file``) to ``out_dir``; returns
    the path of their COCO annotation file."""
    if n < 1 or min(cell) < 1:
        raise ValueError(f"n and the cell size must be >= 1, got n={n}, cell={cell}")
    dataset = _load(ann_file)
    images = sorted(dataset["images"], key=lambda image: image["file_name"])
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in dataset["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    out_images, out_anns = [], []
    per_mosaic = n * n
    groups = [images[i:i + per_mosaic] for i in range(0, len(images), per_mosaic)]
    for index, group in enumerate(tqdm(groups, desc="mosaics", unit="mosaic", disable=not progress)):
        canvas = np.full((n * cell[0], n * cell[1], 3), GREY, dtype=np.uint8)
        for slot, info in enumerate(group):
            image = cv2.imread(str(images_dir / info["file_name"]), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"cannot read {images_dir / info['file_name']}")
            scale, new_h, new_w, dx, dy = _placement(image.shape[:2], cell)
            x0, y0 = (slot % n) * cell[1] + dx, (slot // n) * cell[0] + dy
            resized = image if (new_h, new_w) == image.shape[:2] else \
                cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
            canvas[y0:y0 + new_h, x0:x0 + new_w] = resized
            sx, sy = new_w / image.shape[1], new_h / image.shape[0]
            for ann in by_image.get(info["id"], []):
                x, y, w, h = ann["bbox"]
                out_anns.append({**{k: v for k, v in ann.items() if k != "segmentation"},
                                 "id": len(out_anns) + 1, "image_id": index + 1,
                                 "bbox": [x * sx + x0, y * sy + y0, w * sx, h * sy], "area": ann["area"] * sx * sy})
        name = f"mosaic_{index:03d}.{'png' if png else 'jpg'}"
        params = [] if png else [cv2.IMWRITE_JPEG_QUALITY, 95]
        cv2.imwrite(str(out_dir / "images" / name), canvas, params)
        out_images.append({"id": index + 1, "file_name": name, "height": canvas.shape[0], "width": canvas.shape[1],
                           "sources": [info["file_name"] for info in group]})
    ann_out = out_dir / "instances.json"
    ann_out.write_text(json.dumps({"images": out_images, "annotations": out_anns,
                                   "categories": dataset["categories"]}))
    return ann_out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mosaic.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", required=True, type=Path, help="folder of the COCO images")
    p.add_argument("--ann", required=True, type=Path, help="their COCO instances JSON")
    p.add_argument("--n", type=int, default=4, help="images per row and column (default 4)")
    p.add_argument("--cell", type=int, nargs=2, metavar=("H", "W"), default=(480, 640), help="cell size in pixels")
    p.add_argument("--png", action="store_true", help="write lossless PNG instead of JPEG 95")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    args = p.parse_args(argv)
    ann = build_mosaics(args.images, args.ann, args.out, args.n, tuple(args.cell), args.png)
    print(f"wrote {ann} and its mosaics in {args.out / 'images'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
