"""One inference pipeline: every door (predict on images, folders and videos, eval, suggest,
the Python API) runs the same :class:`~keypointer.inference.pipeline.Pipeline` and gives the
same answer for the same frames, with PyTorch and with an ONNX export, one or several
animals, with and without flip test-time augmentation."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import cli, decoded_frames

import keypointer
from keypointer.commands.predict import predict_command
from keypointer.commands.suggest import suggest_command
from keypointer.data.formats import load_dataset
from keypointer.data.images import read_image
from keypointer.errors import CheckpointError
from keypointer.inference.pipeline import load_pipeline

# Doors of one backend run one computation; float32 batch compositions (1 crop against 16)
# differ in the last bits, which a barely trained model's flat heatmaps turn into up to
# hundredths of a pixel (tests/inference/test_predict.py: KP_ATOL_PX).
SAME_BACKEND_MEDIAN_PX = 1e-3
SAME_BACKEND_MAX_PX = 0.05


@pytest.fixture(scope="module")
def crowd_clip(tmp_path_factory) -> Path:
    from keypointer.data.synthetic_video import generate_video

    return generate_video(tmp_path_factory.mktemp("clip"), 8, instances=2, seed=2, size=96)


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    if diff.size:
        assert np.median(diff) <= SAME_BACKEND_MEDIAN_PX and diff.max() <= SAME_BACKEND_MAX_PX


def _sorted(kp: np.ndarray) -> np.ndarray:
    """Instances (M, K, 2) in a fixed order (by their first coordinates)."""
    kp = np.asarray(kp, np.float64).reshape(len(kp), -1, 2)
    return kp[np.lexsort(kp.reshape(len(kp), -1).T[::-1])] if len(kp) else kp


def _results(out: Path) -> dict:
    """predictions.json grouped by (file, frame): (M, K, 2) arrays."""
    images = {i["id"]: i for i in json.loads((out / "images.json").read_text())}
    found: dict = defaultdict(list)
    for r in json.loads((out / "predictions.json").read_text()):
        image = images[r["image_id"]]
        found[(Path(image["file_name"]).name, image.get("frame"))].append(
            np.array(r["keypoints"]).reshape(-1, 3)[:, :2]
        )
    return {key: np.stack(v) for key, v in found.items()}


# --------------------------------------------------------------------------- the matrix


@pytest.fixture(scope="module")
def models(two_stage, checkpoint, tmp_path_factory) -> dict:
    """{(backend, kind, flip): path}: PyTorch checkpoints and ONNX exports (flip in the graph
    for the flip cases), of a single-instance and a two-stage model. Exported as ``export``
    does, with the TorchScript exporter (20x faster than dynamo, the same graph's results)."""
    pytest.importorskip("onnxruntime")
    from keypointer.checkpoint import load_models
    from keypointer.export.locator_onnx import export_locator, locator_path
    from keypointer.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("exports")
    found = {}
    for kind, best in (("single", checkpoint), ("two", two_stage[0])):
        model, locator = load_models(best)
        for flip in (False, True):
            found[("pt", kind, flip)] = best
            path = out / f"{kind}-{int(flip)}.onnx"
            partner = locator_path(path) if locator is not None else None
            export_onnx(model, path, flip=flip, exporter="torchscript", check=False,
                        locator_file=None if partner is None else partner.name)  # fmt: skip
            if partner is not None:
                export_locator(locator, partner)
            found[("onnx", kind, flip)] = path
    return found


CASES = [(b, k, f) for b in ("pt", "onnx") for k in ("single", "two") for f in (False, True)]


@pytest.mark.slow
@pytest.mark.parametrize("backend,kind,flip", CASES)
def test_every_door_gives_the_same_answer(
    backend, kind, flip, models, synth, two_stage, crowd_clip, tmp_path
):
    path = models[(backend, kind, flip)]
    ask_flip = flip and backend == "pt"  # an ONNX export flips in its graph (or not at all)
    data = synth if kind == "single" else two_stage[1]
    folder = tmp_path / "images"
    shutil.copytree(data.parent / "images", folder)
    names = sorted(p.name for p in folder.iterdir())[:3]
    for extra in sorted(folder.iterdir())[3:]:
        extra.unlink()
    images = [read_image(folder / n) for n in names]
    predictor = keypointer.load(path)
    pipe = load_pipeline(path, flip=ask_flip)
    assert pipe.flips == flip and pipe.two_stage == (kind == "two")

    # The Python API: one image, then a list.
    one = [predictor.predict(im, flip=ask_flip)[0] for im in images]
    many = predictor.predict(images, flip=ask_flip)[0]
    if kind == "single":
        one = [kp[None] for kp in one]
        many = list(many[:, None])
    assert [len(kp) for kp in one] == [len(kp) for kp in many]
    for a, b in zip(one, many, strict=True):
        _close(_sorted(a), _sorted(b))

    # predict on a folder: the same instances as the API.
    out = tmp_path / "folder"
    args = ["predict", path, folder, "--out", out, "--no-draw", "--quiet"]
    assert cli(*args, *(["--flip"] if ask_flip else [])) == 0
    written = _results(out)
    for name, kp in zip(names, one, strict=True):
        got = written.get((name, None), np.zeros((0, *kp.shape[1:])))
        assert len(got) == len(kp), name
        _close(_sorted(got), _sorted(kp))

    # predict on a video, and suggest on it: the same instances as the API on its frames.
    video = crowd_clip
    out = tmp_path / "video"
    predict_command(path, [video], out, flip=ask_flip, draw=False, quiet=True)
    frames = decoded_frames(video)
    api = [np.asarray(predictor.predict(f, flip=ask_flip)[0]) for f in frames]
    api = [kp[None] if kind == "single" else kp for kp in api]
    on_video = _results(out)
    for n, kp in enumerate(api):
        got = on_video.get((video.name, n), np.zeros((0, *kp.shape[1:])))
        assert len(got) == len(kp), n
        _close(_sorted(got), _sorted(kp))
    result = suggest_command(
        path, [video], tmp_path / "suggested", num=3, format="coco", flip=ask_flip, min_gap=1,
        threshold=0.0, quiet=True,
    )  # fmt: skip
    assert cli("check", result["labels"]) == 0
    size = frames[0].shape[1::-1]
    for sample in load_dataset(result["labels"]).samples:
        number = int(sample.image.stem.rsplit("img", 1)[1])
        assert len(sample.instances) == _in_frame(api[number], size)
        for inst in sample.instances:  # each labelled point is the API's, of one instance
            on = inst.keypoints[:, 2] > 0
            gaps = [np.abs(inst.keypoints[on, :2] - kp[on]).max() for kp in api[number]]
            assert min(gaps) <= SAME_BACKEND_MAX_PX


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pt", "onnx"])
def test_eval_scores_what_predict_writes(backend, models, two_stage, tmp_path):
    path, data = models[(backend, "two", False)], two_stage[1]
    assert cli("eval", path, "--data", data, "--out", tmp_path / "eval") == 0
    located = json.loads((tmp_path / "eval" / "eval.json").read_text())["located"]
    assert cli("predict", path, data.parent / "images", "--out", tmp_path / "p", "--no-draw") == 0
    written = sum(len(v) for v in _results(tmp_path / "p").values())
    assert located["oks"]["predicted"] == written


# --------------------------------------------------------------------------- the findings


def test_single_stage_pipeline_poses_the_whole_image(checkpoint, synth):
    pipe = load_pipeline(checkpoint)
    assert not pipe.two_stage and "single-instance" in pipe.describe()
    image = read_image(synth.parent / "images" / "000000.png")
    pred = pipe.run_image(image)
    k = pipe.skeleton.num_keypoints
    assert pred.keypoints.shape == (1, k, 2) and pred.located is None
    kp, _ = pipe.predict(image)
    np.testing.assert_array_equal(kp, pred.keypoints[0])
    many, _ = pipe.predict([image, image])
    assert many.shape == (2, k, 2)


def test_two_stage_onnx_without_its_locator_stops_and_names_it(models, two_stage, tmp_path, capsys):
    onnx = models[("onnx", "two", False)]
    alone = tmp_path / "copied"
    alone.mkdir()
    shutil.copy(onnx, alone / onnx.name)  # the pose file alone, as a user might copy it
    image = sorted((two_stage[1].parent / "images").iterdir())[0]
    capsys.readouterr()
    assert cli("predict", alone / onnx.name, image, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"{onnx.stem}.locator.onnx" in err and err.count("error") == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(CheckpointError, match="locator"):
        keypointer.load(alone / onnx.name)


def test_the_api_locates_in_lists_too(two_stage):
    best, data = two_stage
    images = [read_image(p) for p in sorted((data.parent / "images").iterdir())[:2]]
    predictor = keypointer.load(best)
    one = [predictor.predict(im)[0] for im in images]
    listed, scores = predictor.predict(images)
    assert isinstance(listed, list) and len(listed) == 2
    for a, b, s in zip(one, listed, scores, strict=True):
        assert a.shape == b.shape and a.ndim == 3 and s.shape == b.shape[:2]
        _close(_sorted(a), _sorted(b))
    assert predictor.predict([]) == ([], [])


def test_max_instances_keeps_n_found_animals_that_pass_the_pose_check(
    two_stage, crowd_clip, tmp_path
):
    best, _ = two_stage
    every = [p for p in load_pipeline(best).run(_frames(crowd_clip))]
    capped = [p for p in load_pipeline(best, max_instances=1).run(_frames(crowd_clip))]
    assert max(len(p.keypoints) for p in every) >= 2  # the cap has something to do
    floor = load_pipeline(best).locator.min_pose_score
    for a, b in zip(every, capped, strict=True):
        assert len(b.keypoints) == min(1, len(a.keypoints))
        if len(a.keypoints):  # one of the animals found uncapped (posed in a smaller batch)
            gap = np.linalg.norm(a.keypoints - b.keypoints[0], axis=-1).mean(-1)
            assert gap.min() < 1.0 and b.scores[0].mean() >= floor
    # predict writes exactly that, and tracks at most one identity
    predict_command(best, [crowd_clip], tmp_path / "p", max_instances=1, draw=False, quiet=True)
    written = _results(tmp_path / "p")
    assert sum(len(v) for v in written.values()) == sum(len(p.keypoints) for p in capped)


def _in_frame(kp: np.ndarray, size: tuple[int, int]) -> int:
    """How many instances (M, K, 2) have a point inside a frame of ``size`` (w, h): those
    suggest writes (a point off the frame is written unlabelled)."""
    w, h = size
    x, y = kp[..., 0], kp[..., 1]
    inside = (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)
    return int(inside.any(-1).sum())


def _frames(video: Path):
    from keypointer.inference.sources import Source, iter_frames

    return iter_frames([Source(video, "video")])


def test_suggest_writes_every_instance_of_a_two_stage_model(two_stage, crowd_clip, tmp_path):
    best, _ = two_stage
    every = {
        p.frame.number: _in_frame(p.keypoints, p.frame.image.shape[1::-1])
        for p in load_pipeline(best).run(_frames(crowd_clip))
    }
    for fmt in ("coco", "dlc", "csv", "yolo"):
        out = tmp_path / fmt
        result = suggest_command(
            best, [crowd_clip], out, num=3, format=fmt, flip=False, min_gap=1, threshold=0.0,
            quiet=True,
        )  # fmt: skip
        assert cli("check", result["labels"]) == 0
        kset = load_dataset(result["labels"])
        counts = sorted(len(s.instances) for s in kset.samples)
        picked = sorted(every[n] for _, n in result["frames"])
        assert counts == picked and max(counts) >= 2, fmt
        if fmt != "yolo":  # YOLO has no identities; the others name each animal
            assert all(i.track for s in kset.samples for i in s.instances)
    config = (tmp_path / "dlc" / "config.yaml").read_text()
    assert "multianimalproject: true" in config


def test_each_command_reads_the_checkpoint_once(two_stage, tmp_path, monkeypatch):
    best, data = two_stage
    image = sorted((data.parent / "images").iterdir())[0]
    calls = []
    real = torch.load

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counted)
    for args in (
        ["predict", best, image, "--out", tmp_path / "p", "--no-draw", "--quiet"],
        ["eval", best, "--data", data, "--out", tmp_path / "e"],
    ):
        calls.clear()
        assert cli(*args) == 0
        assert len(calls) == 1, (args[0], calls)


def test_every_locator_threshold_default_is_the_configs():
    import inspect

    from keypointer.codecs.centers import CenterCodec
    from keypointer.config import Config
    from keypointer.inference.locate import find_boxes
    from keypointer.models.locator import LocatorModel
    from keypointer.training.locator import evaluate_locator

    want = Config().locator.score_threshold
    for fn in (find_boxes, CenterCodec.decode, LocatorModel.locate, evaluate_locator):
        assert inspect.signature(fn).parameters["threshold"].default == want, fn
    root = Path(keypointer.__file__).parent
    for path in root.rglob("*.py"):  # the old fallback, read from a dict, anywhere
        assert '"score_threshold", 0.' not in path.read_text(), path


def test_validation_during_training_crops_as_the_pipeline_does(checkpoint, synth):
    """Training validates with batched tensors straight through the model (autocast, channels
    last); its crops and keypoints are the pipeline's, as eval runs it."""
    from keypointer.checkpoint import load_model
    from keypointer.data.dataset import KeypointDataset, make_loader
    from keypointer.inference.labelled import predict_batches, predict_instances

    model = load_model(checkpoint)
    kset = load_dataset(synth)
    cfg = model.config
    ds = KeypointDataset(kset, model.codec, cfg.model.input_size, None, train=False,
                         box_margin=cfg.augment.box_margin)  # fmt: skip
    loader = make_loader(ds, cfg.loader, train=False, device="cpu")
    validation = predict_batches(model, loader, torch.device("cpu"))
    evaluation = predict_instances(load_pipeline(checkpoint), ds)
    np.testing.assert_array_equal(validation.index, evaluation.index)
    np.testing.assert_array_equal(validation.visible, evaluation.visible)
    np.testing.assert_allclose(validation.gt[validation.visible],
                               evaluation.gt[evaluation.visible], atol=1e-6)  # fmt: skip
    _close(validation.keypoints, evaluation.keypoints)
