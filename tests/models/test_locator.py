"""LocatorModel: shapes at stride 4 and 8, biases, rebuild from build_info, predict, ONNX."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch

from keypointer.config import Config
from keypointer.errors import ConfigError
from keypointer.models.locator import (
    CENTRE_PRIOR,
    LocatorModel,
    build_locator,
    locator_input_size,
)

TINY = "mobilenetv3_small_050"


def make_cfg(stride: int = 4, **locator) -> Config:
    cfg = Config()
    cfg.locator.backbone = TINY
    cfg.locator.stride = stride
    cfg.locator.channels = 16
    cfg.locator.max_instances = 5
    for k, v in locator.items():
        setattr(cfg.locator, k, v)
    return cfg


@pytest.mark.parametrize("stride", [4, 8])
def test_shapes_at_both_strides(stride):
    torch.manual_seed(0)
    model = build_locator(make_cfg(stride), (128, 96))
    assert isinstance(model, LocatorModel)
    assert model.input_size == (128, 96) and model.codec.stride == stride
    out = model(torch.randn(2, 3, 96, 128))
    assert out.shape == (2, 3, 96 // stride, 128 // stride)
    boxes, scores = model.predict(torch.randn(2, 3, 96, 128))
    assert boxes.shape == (2, 5, 4) and scores.shape == (2, 5)
    assert boxes.dtype == scores.dtype == torch.float32
    assert ((scores >= 0) & (scores <= 1)).all() and (boxes[..., 2:] > 0).all()


def test_biases_start_at_the_prior_and_the_mean_size():
    model = build_locator(make_cfg(), (64, 64))
    bias = model.head.final.bias.detach()
    assert float(bias[0]) == pytest.approx(math.log(CENTRE_PRIOR / (1 - CENTRE_PRIOR)))
    model.init_biases((1.5, 2.5))
    torch.testing.assert_close(model.head.final.bias.detach()[1:], torch.tensor([1.5, 2.5]))
    # with the backbone's features zeroed out, every centre scores the prior
    head = model.head
    torch.nn.init.zeros_(head.final.weight)
    out = model.eval()(torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(torch.sigmoid(out[:, 0]), torch.full_like(out[:, 0], 0.1))


def test_rebuilds_from_config_and_build_info():
    cfg = make_cfg()
    torch.manual_seed(0)
    model = build_locator(cfg, (96, 64)).eval()
    assert model.build_info == {"input_size": [96, 64]}
    rebuilt = build_locator(cfg, tuple(model.build_info["input_size"]), pretrained=False)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 64, 96)
    torch.testing.assert_close(rebuilt.eval()(x), model(x))
    default = build_locator(make_cfg(input_size=128))
    assert default.input_size == (128, 128)


def test_predict_restores_mode_and_locate_thresholds():
    model = build_locator(make_cfg(), (64, 64)).train()
    x = torch.randn(2, 3, 64, 64)
    boxes, scores = model.predict(x)
    assert model.training
    found = model.locate(x, threshold=float(scores[0, 2]))
    assert len(found) == 2 and len(found[0][0]) >= 3
    assert all(len(b) == 0 for b, _ in model.locate(x, threshold=1.01))


def test_input_size_follows_the_aspect_ratio():
    assert locator_input_size(256) == (256, 256)
    assert locator_input_size(256, 640 / 480) == (256, 192)
    assert locator_input_size(256, 480 / 640) == (192, 256)
    assert locator_input_size(256, 10.0) == (256, 32)  # never below one deepest stride
    assert locator_input_size(250, float("nan")) == (256, 256)
    for w, h in (locator_input_size(320, a) for a in np.linspace(0.3, 3, 12)):
        assert w % 32 == 0 and h % 32 == 0 and max(w, h) == 320


def test_bad_backbone_is_a_config_error():
    with pytest.raises(ConfigError):
        build_locator(make_cfg(backbone="no_such_net"), (64, 64))


class _Exported(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model.decode_topk(self.model(images))


def test_model_and_decode_export_to_onnx():
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_locator(make_cfg(), (64, 64)).eval()
    module = _Exported(model).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.randn(1, 3, 64, 64),),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["images"],
            dynamic_axes={"images": {0: "batch"}},
        )
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 64, 64)
    boxes, scores = session.run(None, {"images": x.numpy()})
    with torch.inference_mode():
        want_boxes, want_scores = module(x)
    assert boxes.shape == (3, 5, 4)
    np.testing.assert_allclose(scores, want_scores.numpy(), atol=1e-4)
    np.testing.assert_allclose(boxes, want_boxes.numpy(), atol=1e-2)
