from __future__ import annotations

import warnings

import pytest
import torch

from keypointer.errors import ConfigError
from keypointer.models import backbones
from keypointer.models.backbones import create_backbone, probe_features

TINY = "mobilenetv3_small_050"


def test_unknown_backbone_is_a_config_error():
    with pytest.raises(
        ConfigError, match=r"model.backbone: unknown timm model 'not_a_net'.*resnet18"
    ):
        create_backbone("not_a_net")


def test_default_level_is_the_deepest_with_stride_32():
    specs = probe_features(create_backbone(TINY), (96, 64))
    assert [s.stride for s in specs] == [32]
    assert specs[0].size == (3, 2)  # (w, h) = (96 / 32, 64 / 32)


def test_multi_scale_takes_strides_8_16_32():
    specs = probe_features(create_backbone(TINY, multi_scale=True), (96, 64))
    assert [s.stride for s in specs] == [8, 16, 32]
    assert [s.size for s in specs] == [(12, 8), (6, 4), (3, 2)]
    assert all(s.channels > 0 for s in specs)


def test_explicit_out_indices_negative_and_out_of_range():
    specs = probe_features(create_backbone(TINY, out_indices=(-2, -1)), (64, 64))
    assert [s.stride for s in specs] == [16, 32]
    with pytest.raises(ConfigError, match="model.out_indices: 7 is out of range"):
        create_backbone(TINY, out_indices=(7,))


def test_probe_keeps_training_mode_and_batchnorm_stats():
    bb = create_backbone(TINY).train()
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    probe_features(bb, (64, 64))
    assert bb.training
    for k, v in bb.state_dict().items():
        assert torch.equal(v, before[k]), k


def _offline(monkeypatch, tmp_path):
    """Make a hub download fail fast, as on a machine without network."""
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(backbones, "_warned_offline", set())


def test_pretrained_offline_warns_once_and_builds(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    with pytest.warns(UserWarning, match="could not fetch pretrained weights for resnet18"):
        bb = create_backbone("resnet18", pretrained=True)
    assert bb(torch.zeros(1, 3, 64, 64))[-1].shape == (1, 512, 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second build of the same net stays quiet
        create_backbone("resnet18", pretrained=True)


def test_not_pretrained_never_touches_the_hub(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bb = create_backbone("resnet18", pretrained=False)
    assert len(bb.eval()(torch.zeros(1, 3, 32, 32))) == 1
