from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from keypointer.config import Config
from keypointer.errors import ConfigError
from keypointer.models import KeypointModel, build_model

W, H, K, N = 96, 64, 3, 4
TINY = "mobilenetv3_small_050"
HEADS = ["heatmap", "regression", "simcc", "integral"]


class StandInCodec:
    """Minimal decoders with the codec protocol, so these tests need no codec module."""

    def __init__(self, head: str, split_ratio: float = 2.0):
        self.head, self.split_ratio = head, split_ratio

    def decode(self, out):
        size = torch.tensor([W, H], dtype=torch.float32)
        if self.head == "heatmap":
            n, k, h, w = out.shape
            score, idx = out.reshape(n, k, -1).max(-1)
            xy = torch.stack(((idx % w).float(), (idx // w).float()), -1)
            return xy * (size - 1) / torch.tensor([w - 1.0, h - 1.0]), score
        if self.head == "simcc":
            sx, ix = out[0].max(-1)
            sy, iy = out[1].max(-1)
            return torch.stack((ix, iy), -1).float() / self.split_ratio, torch.minimum(sx, sy)
        return out * size, torch.ones(out.shape[:2])


def make_cfg(head: str = "heatmap", **model) -> Config:
    cfg = Config()
    cfg.model.backbone = TINY
    cfg.model.head = head
    cfg.model.input_size = (W, H)
    cfg.model.head_channels = 16
    for k, v in model.items():
        setattr(cfg.model, k, v)
    return cfg


def make(head: str = "heatmap", **model) -> KeypointModel:
    torch.manual_seed(0)
    return build_model(make_cfg(head, **model), K, codec=StandInCodec(head))


def targets(head: str, model: KeypointModel, images: torch.Tensor):
    """Fixed random targets shaped like the head's output, and the matching simple loss."""
    g = torch.Generator().manual_seed(1)
    if head == "heatmap":
        return torch.rand(N, K, H // 4, W // 4, generator=g), F.mse_loss
    if head == "simcc":
        x = torch.randint(0, 2 * W, (N, K), generator=g)
        y = torch.randint(0, 2 * H, (N, K), generator=g)

        def ce(out, t):
            return F.cross_entropy(out[0].transpose(1, 2), t[0]) + F.cross_entropy(
                out[1].transpose(1, 2), t[1]
            )

        return (x, y), ce
    return torch.rand(N, K, 2, generator=g) * 0.8 + 0.1, F.l1_loss


@pytest.mark.parametrize("head", HEADS)
def test_output_shapes_for_a_non_square_input(head):
    model = make(head)
    out = model(torch.randn(2, 3, H, W))
    if head == "heatmap":
        assert out.shape == (2, K, H // 4, W // 4)
    elif head == "simcc":
        assert out[0].shape == (2, K, 2 * W) and out[1].shape == (2, K, 2 * H)
    else:
        assert out.shape == (2, K, 2)
        assert ((out >= 0) & (out <= 1)).all()


@pytest.mark.parametrize("head", HEADS)
def test_predict_gives_pixels_inside_the_image_and_restores_mode(head):
    model = make(head).train()
    kpts, scores = model.predict(torch.randn(2, 3, H, W))
    assert kpts.shape == (2, K, 2) and scores.shape == (2, K)
    assert kpts.dtype == torch.float32
    assert (kpts[..., 0] >= 0).all() and (kpts[..., 0] <= W).all()
    assert (kpts[..., 1] >= 0).all() and (kpts[..., 1] <= H).all()
    assert model.training
    model.eval()
    kpts1, _ = model.predict(torch.randn(3, H, W))  # a single image is a batch of one
    assert kpts1.shape == (1, K, 2) and not model.training


@pytest.mark.parametrize("head", HEADS)
def test_each_head_trains_and_gradients_reach_the_backbone(head):
    model = make(head).train()
    images = torch.randn(N, 3, H, W, generator=torch.Generator().manual_seed(2))
    target, loss_fn = targets(head, model, images)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(6):
        loss = loss_fn(model(images), target)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            first_conv = next(p for p in model.backbone.parameters() if p.dim() == 4)
            assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
            head_grads = [p.grad for p in model.head.parameters() if p.requires_grad]
            assert head_grads and all(g is not None for g in head_grads)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_eval_turns_dropout_off():
    model = make("regression", dropout=0.5)
    images = torch.randn(2, 3, H, W)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images), model(images))
        model.train()
        assert not torch.equal(model(images), model(images))


def test_heatmap_head_defaults_to_fpn_lite_from_stride_8():
    model = make("heatmap")
    assert len(model.head.laterals) == 3 and len(model.head.upsample) == 1
    single = make("heatmap", out_indices=(-1,))
    assert len(single.head.laterals) == 0 and len(single.head.upsample) == 3


def test_unknown_backbone_is_a_config_error():
    cfg = make_cfg()
    cfg.model.backbone = "resnet_nonexistent"
    with pytest.raises(ConfigError, match="unknown timm model 'resnet_nonexistent'"):
        build_model(cfg, K, codec=StandInCodec("heatmap"))


@pytest.mark.parametrize("head", HEADS)
def test_config_rebuilds_a_model_the_state_dict_fits(head):
    model = make(head).eval()
    assert model.build_info == {"num_keypoints": K}
    cfg = Config.model_validate(make_cfg(head).to_dict())  # as a checkpoint stores it
    cfg.model.pretrained = True  # the override keeps a rebuild from downloading anything
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = build_model(cfg, K, codec=StandInCodec(head), pretrained=False).eval()
    again.load_state_dict(model.state_dict())
    images = torch.randn(1, 3, H, W)
    with torch.no_grad():
        a, b = model(images), again(images)
    torch.testing.assert_close(a, b)  # tensors or tuples of tensors


def test_predict_decodes_bf16_outputs_in_float32():
    model = make("regression")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kpts, _ = model.predict(torch.randn(2, 3, H, W))
    assert kpts.dtype == torch.float32


@pytest.mark.parametrize("head", HEADS)
def test_trains_with_the_real_codec_and_loss(head):
    from keypointer.codecs import HeatmapCodec, RegressionCodec, SimCCCodec
    from keypointer.models import make_loss

    cfg = make_cfg(head)
    torch.manual_seed(0)
    model = build_model(cfg, K)  # codec from make_codec(cfg)
    kind = {"heatmap": HeatmapCodec, "simcc": SimCCCodec}.get(head, RegressionCodec)
    assert isinstance(model.codec, kind)
    g = torch.Generator().manual_seed(3)
    keypoints = torch.rand(N, K, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    target, weights = model.codec.encode(keypoints, torch.ones(N, K, dtype=torch.bool))
    images = torch.randn(N, 3, H, W, generator=g)
    loss_fn, opt = make_loss(cfg), torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = loss_fn(model(images), target, weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    kpts, scores = model.predict(images)
    assert kpts.shape == (N, K, 2) and scores.shape == (N, K)
    assert (
        (kpts >= -0.5).all() and (kpts[..., 0] <= W - 0.5).all() and (kpts[..., 1] <= H - 0.5).all()
    )
