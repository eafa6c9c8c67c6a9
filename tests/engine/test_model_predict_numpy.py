import numpy as np
import torch

from keypointer.config import Config
from keypointer.engine.predict import predict_image
from keypointer.models.model import build_model
from keypointer.skeleton import Skeleton


def test_model_predict_accepts_plain_rgb_images_and_returns_their_pixels():
    cfg = Config()
    cfg.model.input_size = (64, 64)
    torch.manual_seed(0)
    model = build_model(cfg, 3)
    model.skeleton = Skeleton(("a", "left_x", "right_x"))
    image = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    kpts, scores = model.predict(image)
    ref_k, ref_s = predict_image(model, image)
    np.testing.assert_allclose(kpts, ref_k)
    np.testing.assert_allclose(scores, ref_s)
    kpts = np.asarray(kpts).reshape(-1, 3, 2)
    assert kpts.shape == (1, 3, 2)
    # letterboxed whole image: coordinates land inside the original 160x90 frame (+ a margin)
    assert (kpts[..., 0] > -40).all() and (kpts[..., 0] < 200).all()
    two = model.predict([image, image[:, ::-1].copy()])
    assert np.asarray(two[0]).reshape(-1, 3, 2).shape[0] == 2
    flipped = model.predict(torch.zeros(2, 3, 64, 64), flip=True)
    assert flipped[0].shape == (2, 3, 2)
