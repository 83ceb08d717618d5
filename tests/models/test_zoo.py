"""Model definition: official module tree and names, architecture inference, checkpoint loading."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from yolox_deploy.errors import CheckpointError  # noqa: E402
from yolox_deploy.models import MODEL_ZOO, build_model, get_spec, infer_spec, load_model, read_state_dict  # noqa: E402

# Official parameter counts (millions) from the YOLOX model zoo table.
OFFICIAL_PARAMS_M = {"yolox-nano": 0.91, "yolox-tiny": 5.06, "yolox-s": 9.0, "yolox-m": 25.3,
                     "yolox-l": 54.2, "yolox-x": 99.1, "yolox-darknet53": 63.7}


@pytest.mark.parametrize("name", list(MODEL_ZOO))
def test_every_variant_builds_with_official_size_and_output_layout(name):
    model = build_model(name)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(OFFICIAL_PARAMS_M[name], rel=0.01)
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 8 * 12 + 4 * 6 + 2 * 3, 85)
    assert float(out[..., 4:].min()) >= 0 and float(out[..., 4:].max()) <= 1  # sigmoid obj and classes


@pytest.mark.parametrize("name", list(MODEL_ZOO))
def test_architecture_is_inferred_back_from_a_state_dict(name):
    spec = get_spec(name)
    state = build_model(spec, num_classes=7).state_dict()
    assert infer_spec(state) == (spec, 7)


def test_model_names_accept_aliases_and_reject_unknown():
    assert get_spec("yolox_s") is MODEL_ZOO["yolox-s"]
    assert get_spec("yolov3") is MODEL_ZOO["yolox-darknet53"]
    with pytest.raises(ValueError, match="unknown model name 'yolox-q'"):
        get_spec("yolox-q")


def test_official_nano_checkpoint_loads_strict_with_official_keys(nano_pth):
    model, spec = load_model(nano_pth)
    assert spec.name == "yolox-nano" and model.head.num_classes == 80
    keys = set(model.state_dict())
    assert {"backbone.backbone.stem.conv.conv.weight", "head.cls_preds.0.bias",
            "backbone.C3_n4.m.0.conv2.dconv.bn.running_var"} <= keys
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_checkpoint_of_another_architecture_names_the_mismatching_keys(nano_pth):
    with pytest.raises(CheckpointError, match=r"does not match yolox-s: .*wrong shape \(e\.g\. backbone"):
        load_model(nano_pth, model_name="yolox-s")


def test_bare_state_dict_and_ddp_prefix_are_accepted(tmp_path, tiny_checkpoint):
    state = read_state_dict(tiny_checkpoint)
    path = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    model, _ = load_model(path)
    assert model.head.num_classes == 3


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"

    class Payload:  # any non-tensor object needs pickle's code execution to load
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"model": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*\(print\) that weights_only=True"):
        read_state_dict(path)


def test_non_checkpoint_files_give_one_line_errors(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_state_dict(junk)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_state_dict(tmp_path / "missing.pth")
    other = tmp_path / "other.pth"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(CheckpointError, match="not a YOLOX model state_dict"):
        load_model(other)
