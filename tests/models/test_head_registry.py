"""The head registry: a head kind registered from outside the package (its network module, codec
and loss defined here) trains with the real loop, exports to ONNX and predicts from the
checkpoint and the ONNX file alike; ``model.head`` and ``train.loss`` are looked up in it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from helpers import KP_ATOL_PX, SCORE_ATOL, tiny_config
from torch import nn

from keypointer.codecs import HeatmapCodec, RegressionCodec, SimCCCodec
from keypointer.config import Config, load_config
from keypointer.errors import ConfigError
from keypointer.losses import (
    AdaptiveWingLoss,
    KeypointL1Loss,
    KeypointMSELoss,
    KeypointSmoothL1Loss,
    SimCCLoss,
    weighted_reduce,
)
from keypointer.models import (
    FeatureSpec,
    HeadSpec,
    build_model,
    make_codec,
    make_loss,
    register_head,
    registered_heads,
    unregister_head,
)

BUILT_IN = ("heatmap", "integral", "regression", "simcc")

# --------------------------------------------------------------------------- a new head kind


@dataclass(frozen=True)
class CentredCodec:
    """Keypoints (N, K, 2) input px <-> offsets from the image centre in half-sizes, [-1, 1]."""

    input_size: tuple[int, int]

    def _half(self) -> torch.Tensor:
        return (torch.tensor(self.input_size, dtype=torch.float32) - 1) / 2

    def encode(self, keypoints, visible=None):
        kp = torch.as_tensor(np.asarray(keypoints), dtype=torch.float32)
        vis = torch.ones(kp.shape[:-1], dtype=torch.bool) if visible is None else visible
        valid = torch.as_tensor(np.asarray(vis)).bool() & torch.isfinite(kp).all(-1)
        target = torch.where(valid.unsqueeze(-1), kp / self._half() - 1, torch.zeros(()))
        return target, valid.float()

    def decode(self, output):
        out = output.float()
        return (out + 1) * self._half().to(out.device), torch.ones_like(out[..., 0])

    def average_flipped(self, output, flip_index: Sequence[int]) -> None:
        return None  # flip TTA averages the mirrored-back coordinates

    def near_ties(self, output, rel: float) -> torch.Tensor:
        return torch.zeros(output.shape[:2], dtype=torch.bool)


class CentredHead(nn.Module):
    """Deepest feature -> pool -> linear -> tanh: (N, K, 2) in [-1, 1]."""

    def __init__(self, channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.k = num_keypoints
        self.fc = nn.Linear(channels, 2 * num_keypoints)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        pooled = features[-1].mean(dim=(2, 3))
        return torch.tanh(self.fc(pooled)).view(-1, self.k, 2)


class CentredLoss(nn.Module):
    """Mean squared offset per keypoint, reduced as every keypointer loss."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, output, target, weights=None):
        per_keypoint = (output.float() - target.float()).square().mean(-1)
        return weighted_reduce(per_keypoint, weights, self.reduction)


def build_centred(specs: Sequence[FeatureSpec], num_keypoints: int, cfg: Config) -> nn.Module:
    return CentredHead(specs[-1].channels, num_keypoints)


CENTRED = HeadSpec(
    name="centred",
    build=build_centred,
    make_codec=lambda cfg: CentredCodec(tuple(cfg.model.input_size)),
    losses={"auto": CentredLoss},
)


@pytest.fixture
def centred():
    """The "centred" head registered for one test; the registry is left as it was found."""
    before = registered_heads()
    register_head(CENTRED)
    yield CENTRED
    unregister_head(CENTRED.name)
    assert registered_heads() == before


# --------------------------------------------------------------------------- the tests


@pytest.mark.slow
def test_a_registered_head_trains_exports_and_predicts(centred, synth, tmp_path):
    pytest.importorskip("onnxruntime")
    from keypointer.checkpoint import load_model
    from keypointer.data.images import read_image
    from keypointer.export import export_onnx
    from keypointer.inference.pipeline import load_pipeline
    from keypointer.training.loop import train

    best = train(tiny_config(synth, tmp_path, "model.head=centred", epochs=2, amp="off")).best
    model = load_model(best)
    assert isinstance(model.head, CentredHead) and isinstance(model.codec, CentredCodec)
    k = model.skeleton.num_keypoints

    images = [read_image(p) for p in sorted((synth.parent / "images").iterdir())[:2]]
    for flip in (False, True):
        path = tmp_path / f"centred-{int(flip)}.onnx"
        report = export_onnx(model, path, flip=flip, exporter="torchscript")
        assert report["compared"] == report["total"]  # coordinates never tie
        on_pt = load_pipeline(best, flip=flip).predict(images)
        on_onnx = load_pipeline(path).predict(images)
        assert on_pt[0].shape == on_onnx[0].shape == (2, k, 2)
        np.testing.assert_allclose(on_onnx[0], on_pt[0], atol=KP_ATOL_PX)
        np.testing.assert_allclose(on_onnx[1], on_pt[1], atol=SCORE_ATOL)
    plain, flipped = (load_pipeline(best, flip=f).predict(images)[0] for f in (False, True))
    assert not np.allclose(plain, flipped)  # flip TTA did average the mirror images' keypoints


def test_a_registered_head_is_built_with_its_codec_and_loss(centred):
    cfg = load_config(None, ["model.head=centred", "model.input_size=[64,48]"])
    model = build_model(cfg, 3, pretrained=False)
    assert isinstance(model.head, CentredHead) and model.codec == CentredCodec((64, 48))
    assert isinstance(make_loss(cfg), CentredLoss)
    kp = torch.tensor([[[0.0, 0.0], [63.0, 47.0], [20.0, 30.0]]])
    target, weights = make_codec(cfg).encode(kp)
    torch.testing.assert_close(make_codec(cfg).decode(target)[0], kp)
    wrong = load_config(None, ["model.head=centred", "train.loss=l1"])
    with pytest.raises(ConfigError, match="train.loss: 'l1' does not fit a centred head; use auto"):
        make_loss(wrong)


def test_a_name_is_registered_once(centred):
    with pytest.raises(ValueError, match="'centred' is registered already"):
        register_head(CENTRED)
    with pytest.raises(ValueError, match="'auto'"):
        HeadSpec(name="x", build=build_centred, make_codec=CENTRED.make_codec, losses={})


def test_an_unknown_head_is_a_config_error_naming_the_registered_heads():
    cfg = load_config(None, ["model.head=nope"])
    for make in (make_codec, make_loss, lambda c: build_model(c, 3, pretrained=False)):
        with pytest.raises(ConfigError, match="unknown head 'nope'; registered heads: ") as err:
            make(cfg)
        assert all(name in str(err.value) for name in BUILT_IN)


def test_an_unknown_head_stops_training_before_it_starts(synth, tmp_path):
    from keypointer.training.loop import train

    cfg = load_config(
        None, [f"data.path={synth}", "model.head=nope", f"run.root={tmp_path}", "run.quiet=true"]
    )
    with pytest.raises(ConfigError, match="model.head: unknown head 'nope'"):
        train(cfg)
    assert not list(tmp_path.rglob("*.pt"))


# --------------------------------------------------------------------------- the built-in kinds


CODECS = {
    "heatmap": HeatmapCodec,
    "regression": RegressionCodec,
    "integral": RegressionCodec,
    "simcc": SimCCCodec,
}


@pytest.mark.parametrize("head,cls", CODECS.items())
def test_make_codec(head, cls):
    cfg = Config.model_validate(
        {
            "model": {"head": head, "input_size": (96, 128)},
            "codec": {"sigma": 3.0, "refine": "none"},
        }
    )
    codec = make_codec(cfg)
    assert type(codec) is cls and codec.input_size == (96, 128)
    if head == "heatmap":
        assert codec.heatmap_size == (24, 32) and codec.sigma == 3.0 and codec.refine == "none"
    if head == "simcc":
        assert codec.bins == (192, 256) and codec.sigma == (4.9, 5.66)


@pytest.mark.parametrize(
    "head, loss, cls",
    [
        ("heatmap", "auto", KeypointMSELoss),
        ("heatmap", "awing", AdaptiveWingLoss),
        ("regression", "auto", KeypointL1Loss),
        ("regression", "smooth_l1", KeypointSmoothL1Loss),
        ("integral", "auto", KeypointL1Loss),
        ("integral", "l1", KeypointL1Loss),
        ("simcc", "auto", SimCCLoss),
    ],
)
def test_train_loss_picks_the_loss_for_the_head(head, loss, cls):
    cfg = load_config(None, [f"model.head={head}", f"train.loss={loss}"])
    assert type(make_loss(cfg)) is cls
    assert make_loss(cfg, reduction="keypoint_sum").reduction == "keypoint_sum"


def test_train_loss_that_does_not_fit_the_head_is_refused():
    cfg = load_config(None, ["model.head=simcc", "train.loss=awing"])
    with pytest.raises(
        ConfigError, match="train.loss: 'awing' does not fit a simcc head; use auto"
    ):
        make_loss(cfg)


def test_the_built_in_heads_are_registered():
    assert set(BUILT_IN) <= set(registered_heads())
