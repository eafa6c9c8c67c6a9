"""``keypointer.load(path)`` -> Predictor: plain RGB images in, keypoints in their own pixels."""

import numpy as np
import torch
from helpers import KP_ATOL_PX

import keypointer
from keypointer.config import Config
from keypointer.data import transforms as T
from keypointer.inference import Predictor
from keypointer.inference.crops import crop_matrix
from keypointer.models.model import build_model
from keypointer.skeleton import Skeleton


def _model():
    cfg = Config()
    cfg.model.input_size = (64, 64)
    torch.manual_seed(0)
    model = build_model(cfg, 3)
    model.skeleton = Skeleton(("a", "left_x", "right_x"))
    return model.eval()


def test_predictor_maps_the_models_own_output_back_to_image_pixels():
    model = _model()
    image = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    kpts, scores = Predictor(model).predict(image)
    assert kpts.shape == (3, 2) and scores.shape == (3,)
    # The same thing by hand: letterbox, normalise, model.predict, map back.
    mat = crop_matrix((160, 90), (64, 64))
    crop = T.warp_image(image, mat, (64, 64))
    x = torch.from_numpy(T.to_chw_normalized(crop))[None]
    ref_k, ref_s = model.predict(x)
    np.testing.assert_allclose(kpts, T.apply_affine(ref_k[0].numpy(), mat), atol=1e-3)
    np.testing.assert_allclose(scores, ref_s[0].numpy(), atol=1e-4)


def test_predictor_takes_lists_and_flip():
    model = _model()
    image = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    predictor = Predictor(model)
    kp, sc = predictor.predict([image, image[:, ::-1].copy()])
    assert kp.shape == (2, 3, 2) and sc.shape == (2, 3)
    np.testing.assert_allclose(kp[0], predictor.predict(image)[0], atol=KP_ATOL_PX)
    kp_f, _ = predictor.predict(image, flip=True)
    assert kp_f.shape == (3, 2) and np.isfinite(kp_f).all()
    assert predictor.skeleton.names == ("a", "left_x", "right_x")
    assert predictor.model is model


def test_keypoint_model_predict_is_tensors_only():
    model = _model()
    kp, scores = model.predict(torch.zeros(2, 3, 64, 64), flip=True)
    assert isinstance(kp, torch.Tensor) and kp.shape == (2, 3, 2) and scores.shape == (2, 3)
    one, _ = model.predict(torch.zeros(3, 64, 64))
    assert one.shape == (1, 3, 2)


def test_keypointer_load_returns_a_predictor(checkpoint, synth):
    predictor = keypointer.load(checkpoint)
    assert isinstance(predictor, Predictor)
    assert predictor.config.model.input_size == tuple(predictor.model.codec.input_size)
    image = np.zeros((50, 70, 3), np.uint8)
    kp, scores = predictor.predict(image)
    assert kp.shape == (predictor.skeleton.num_keypoints, 2)
