"""Ray Data: a local 2-worker cluster gives exactly the single-process Detector's detections."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from yolox_deploy import Detector  # noqa: E402
from yolox_deploy.integrations.ray import detect_dataset, init_ray  # noqa: E402


@pytest.fixture(scope="module")
def local_cluster():
    init_ray(num_cpus=2)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def test_the_local_cluster_listens_on_loopback_only(local_cluster):
    """Every node, the GCS and every listening socket of the processes Ray started are on
    127.0.0.1 (Ray's default would be the machine's interface address)."""
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    psutil = pytest.importorskip("psutil")
    listening = set()
    for process in psutil.Process().children(recursive=True):
        try:
            listening |= {(process.name(), c.laddr.ip) for c in process.net_connections(kind="inet")
                          if c.status == psutil.CONN_LISTEN}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    assert {name for name, _ in listening} >= {"gcs_server", "raylet"}
    assert {ip for _, ip in listening} <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, listening


def test_a_cluster_address_is_used_as_given(monkeypatch):
    """--ray-address / $RAY_ADDRESS join a real cluster unchanged: no loopback switch is set."""
    import yolox_deploy.integrations.ray as ray_integration

    calls = []
    fake = type("FakeRay", (), {"is_initialized": staticmethod(lambda: False),
                                "init": staticmethod(lambda **kw: calls.append(kw))})
    monkeypatch.setattr(ray_integration, "require", lambda *a, **k: fake)
    monkeypatch.delenv(ray_integration.LOOPBACK_SWITCH, raising=False)
    ray_integration.init_ray(address="ray://head:10001")
    assert calls == [{"address": "ray://head:10001", "log_to_driver": False}]
    assert ray_integration.LOOPBACK_SWITCH not in os.environ


def test_two_workers_give_exactly_the_single_process_detections(local_cluster, coco_dir, nano_onnx):
    rows = detect_dataset(str(coco_dir / "images"), str(nano_onnx), num_workers=2, threads=1).take_all()
    assert len(rows) == 80
    det = Detector(nano_onnx, threads=1)
    for row in rows:
        want = det(row["path"])
        assert row["error"] == ""
        np.testing.assert_array_equal(np.asarray(row["boxes"], np.float32).reshape(-1, 4), want.xyxy)
        np.testing.assert_array_equal(np.asarray(row["scores"], np.float32), want.scores)
        assert list(row["class_ids"]) == want.class_ids.tolist()
        assert list(row["class_names"]) == list(want.class_names)
        assert (row["image_height"], row["image_width"]) == want.image_size


def test_cli_writes_one_row_per_image_and_reports_bad_files(local_cluster, coco_images, nano_onnx, tmp_path):
    from yolox_deploy.cli import detect

    folder = tmp_path / "in"
    folder.mkdir()
    for path in coco_images[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"")
    assert detect.main([str(folder), "--model", str(nano_onnx), "--ray", "--num-workers", "2",
                        "--output", str(tmp_path / "out.parquet")]) == 0
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    by_name = {row["path"].rsplit("/", 1)[-1]: row for row in table}
    assert set(by_name) == {p.name for p in coco_images[:3]} | {"broken.jpg"}
    assert "empty (0 bytes)" in by_name["broken.jpg"]["error"] and by_name["broken.jpg"]["boxes"] == []
    assert by_name[coco_images[0].name]["class_names"][0] == "person"
    assert detect.main([str(folder), "--model", str(nano_onnx), "--ray", "--format", "jsonl",
                        "--output", str(tmp_path / "out.jsonl")]) == 0
    lines = [json.loads(line) for f in sorted((tmp_path / "out.jsonl").iterdir()) for line in f.read_text().splitlines()]
    assert len(lines) == 4


def test_missing_source_is_a_one_line_error(local_cluster, tmp_path, nano_onnx):
    from yolox_deploy.errors import YoloxDeployError

    with pytest.raises(YoloxDeployError, match="source not found"):
        detect_dataset(str(tmp_path / "nope"), str(nano_onnx))
