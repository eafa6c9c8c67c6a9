"""model.pretrained as a local weights file: matching, mismatching, missing, and other layouts."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from keypointer.config import Config
from keypointer.errors import ConfigError
from keypointer.models import build_model, create_backbone


def _saved(tmp_path, name: str, suffix: str = ".safetensors", wrap=None):
    torch.manual_seed(1)
    sd = timm.create_model(name, pretrained=False).state_dict()
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".safetensors":
        save_file(sd, str(path))
    else:
        torch.save(wrap(sd) if wrap else sd, path)
    return path, sd


def test_matching_file_loads_every_backbone_tensor(tmp_path):
    path, sd = _saved(tmp_path, "resnet18")
    backbone = create_backbone("resnet18", str(path), multi_scale=True)
    loaded = backbone.state_dict()
    assert torch.equal(loaded["conv1.weight"], sd["conv1.weight"])
    assert torch.equal(loaded["layer4.1.bn2.running_var"], sd["layer4.1.bn2.running_var"])
    fresh = create_backbone("resnet18", False, multi_scale=True).state_dict()
    assert not torch.equal(fresh["conv1.weight"], sd["conv1.weight"])


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
    ],
    ids=["nested-state_dict", "ddp-prefix"],
)
def test_torch_state_dict_layouts_load(tmp_path, wrap):
    path, sd = _saved(tmp_path, "resnet18", ".pth", wrap)
    backbone = create_backbone("resnet18", str(path))
    assert torch.equal(backbone.state_dict()["layer1.0.conv1.weight"], sd["layer1.0.conv1.weight"])


def test_classifier_of_another_size_is_ignored(tmp_path):
    torch.manual_seed(0)
    sd = timm.create_model("resnet18", pretrained=False, num_classes=7).state_dict()
    save_file(sd, str(tmp_path / "w.safetensors"))
    backbone = create_backbone("resnet18", str(tmp_path / "w.safetensors"))
    assert torch.equal(backbone.state_dict()["conv1.weight"], sd["conv1.weight"])


def test_mismatching_file_names_the_first_tensor(tmp_path):
    path, _ = _saved(tmp_path, "regnetx_002")
    with pytest.raises(
        ConfigError, match=r"does not fit resnet18: it has no tensor 'conv1.weight'"
    ):
        create_backbone("resnet18", str(path))


def test_wrong_shape_names_the_tensor_and_both_shapes(tmp_path):
    path, sd = _saved(tmp_path, "resnet18")
    sd = dict(sd, **{"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)})
    save_file(sd, str(path))
    with pytest.raises(
        ConfigError,
        match=r"'layer1.0.conv1.weight' is \[64, 64, 1, 1\] in the file, \[64, 64, 3, 3\]",
    ):
        create_backbone("resnet18", str(path))


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="weights file not found"):
        create_backbone("resnet18", str(tmp_path / "nope.safetensors"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable weights file"):
        create_backbone("resnet18", str(bad))


def test_config_path_reaches_the_model(tmp_path):
    path, sd = _saved(tmp_path, "resnet18")
    cfg = Config()
    cfg.model.backbone = "resnet18"
    cfg.model.pretrained = str(path)
    model = build_model(cfg, 3)
    assert torch.equal(model.backbone.state_dict()["conv1.weight"], sd["conv1.weight"])
