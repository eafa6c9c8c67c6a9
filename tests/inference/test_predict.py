"""``keypointer predict``: crops, flip TTA, images/folders/videos/boxes, JSON/CSV/drawn outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import KP_ATOL_PX, SCORE_ATOL, cli, cli_captured, write_video

from keypointer.codecs import HeatmapCodec, flip_heatmaps_back
from keypointer.commands.predict import predict_command
from keypointer.config import load_config
from keypointer.data.images import read_image
from keypointer.errors import DataError
from keypointer.inference.crops import crop_matrix
from keypointer.inference.pipeline import Pipeline
from keypointer.inference.runners import as_runner
from keypointer.inference.sources import collect_sources, load_detections

K = 11  # synthetic skeleton
# Two forward passes that are not the very same computation (a batch of one vs of two, or one
# image in two batch slots) may run different convolution kernels or summation orders, so
# float32 outputs differ in their last bits; DARK decoding (a log and a Hessian of the heatmap)
# magnifies that to ~2e-4 px seen on a CPU without bf16. These bounds allow for it and still
# catch any real disagreement (a wrong crop or flip is off by a pixel or more).


@pytest.fixture(scope="module")
def video(synth, tmp_path_factory) -> Path:
    """Five 64x48 frames cut from the synthetic images."""
    images = sorted((synth.parent / "images").glob("*.png"))[:5]
    frames = [cv2.imread(str(image))[:48] for image in images]
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames)


def read_csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


# --------------------------------------------------------------------------- geometry


def test_crop_matrix_letterboxes_the_whole_image_centred():
    m = crop_matrix((200, 100), (64, 64))
    # Input pixel centre -> image centre; the input's width spans the image's width.
    np.testing.assert_allclose(m @ [31.5, 31.5, 1], [99.5, 49.5])
    np.testing.assert_allclose(m[:, :2], np.eye(2) * 200 / 64)


@pytest.mark.parametrize("refine", ["dark", "none"])
def test_flip_heatmaps_back_is_exact_with_udp(refine):
    codec = HeatmapCodec((64, 48), (16, 12), 2.0, unbiased=True, refine=refine)
    flip_index = [0, 2, 1, 4, 3]
    kp = torch.rand(16, 5, 2, generator=torch.Generator().manual_seed(0)) * 56 + 4
    kp[..., 1] *= 40 / 60
    mirrored = kp[:, flip_index].clone()
    mirrored[..., 0] = 63 - mirrored[..., 0]
    heatmaps, _ = codec.encode(mirrored)
    back = flip_heatmaps_back(heatmaps, flip_index)
    direct, _ = codec.encode(kp)
    torch.testing.assert_close(back, direct, atol=1e-6, rtol=0)


def _symmetric(image: np.ndarray) -> np.ndarray:
    half = image[:, : image.shape[1] // 2]
    return np.ascontiguousarray(np.concatenate([half, half[:, ::-1]], axis=1))


def _assert_mirrored(kp, scores, pairs, width):
    """The image and its mirror (the same pixels) run in two batch slots: see KP_ATOL_PX."""
    for a, b in pairs:
        np.testing.assert_allclose(kp[a, 0], (width - 1) - kp[b, 0], atol=KP_ATOL_PX)
        np.testing.assert_allclose(kp[a, 1], kp[b, 1], atol=KP_ATOL_PX)
        np.testing.assert_allclose(scores[a], scores[b], atol=SCORE_ATOL)


def test_flip_tta_on_a_symmetric_image_gives_mirrored_pairs(model, synth):
    image = _symmetric(read_image(synth.parent / "images" / "000000.png"))
    assert np.array_equal(image, image[:, ::-1])
    kp, scores = Pipeline(as_runner(model), flip=True).predict(image)
    assert kp.shape == (K, 2) and scores.shape == (K,)
    _assert_mirrored(kp, scores, model.skeleton.flip_pairs, image.shape[1])


def test_flip_tta_of_a_regression_head_centres_unpaired_keypoints(model, synth):
    from keypointer.models.model import build_model

    cfg = load_config(None, ["model.input_size=[64,64]", "model.head=regression"])
    reg = build_model(cfg, K).eval()
    reg.skeleton, reg.config = model.skeleton, cfg
    image = _symmetric(read_image(synth.parent / "images" / "000001.png"))
    kp, scores = Pipeline(as_runner(reg), flip=True).predict(image)
    _assert_mirrored(kp, scores, model.skeleton.flip_pairs, 64)
    paired = {i for p in model.skeleton.flip_pairs for i in p}
    for j in set(range(K)) - paired:  # its own mirror: exactly on the axis
        assert kp[j, 0] == pytest.approx(31.5, abs=KP_ATOL_PX)


def test_pipeline_single_and_list_agree(model, synth):
    a = read_image(synth.parent / "images" / "000002.png")
    b = cv2.resize(a, (96, 40))  # another size and aspect
    kp_a, sc_a = Pipeline(as_runner(model)).predict(a)
    kp, sc = Pipeline(as_runner(model)).predict([a, b])
    assert kp.shape == (2, K, 2) and sc.shape == (2, K)
    # A batch of one vs a batch of two: not bit-identical (see KP_ATOL_PX).
    np.testing.assert_allclose(kp[0], kp_a, atol=KP_ATOL_PX)
    np.testing.assert_allclose(sc[0], sc_a, atol=SCORE_ATOL)
    # Letterboxed: 96x40 -> the crop spans 96x96 centred on (47.5, 19.5), so x stays within
    # the image's width and y within the bars' span [-28.5, 67.5] (+ a pixel for decoding).
    assert np.all(np.isfinite(kp[1]))
    assert (kp[1, :, 0] >= -1.5).all() and (kp[1, :, 0] <= 96.5).all()
    assert (kp[1, :, 1] >= -29.5).all() and (kp[1, :, 1] <= 68.5).all()


# --------------------------------------------------------------------------- the command


def test_predict_folder_and_video_writes_json_csv_and_drawings(checkpoint, synth, video, tmp_path):
    images = synth.parent / "images"
    out = tmp_path / "out"
    summary = predict_command(checkpoint, [images, video], out, batch_size=3, quiet=True)
    assert summary == {"frames": 13, "instances": 13, "files": summary["files"]}
    results = json.loads((out / "predictions.json").read_text())
    assert len(results) == 13
    assert {r["image_id"] for r in results} == set(range(1, 14))
    assert all(len(r["keypoints"]) == 3 * K and r["category_id"] == 1 for r in results)
    mapping = json.loads((out / "images.json").read_text())
    assert [m.get("frame") for m in mapping[8:]] == [0, 1, 2, 3, 4]
    rows = read_csv_rows(out / "predictions.csv")
    assert [r[0] for r in rows[:3]] == ["scorer", "bodyparts", "coords"]
    assert rows[2][1:4] == ["x", "y", "likelihood"] and len(rows[0]) == 1 + 3 * K
    assert len(rows) == 3 + 8 and rows[3][0] == str(images / "000000.png")
    # The CSV holds what the JSON holds.
    np.testing.assert_allclose([float(v) for v in rows[3][1:]], results[0]["keypoints"], atol=1e-3)
    video_rows = read_csv_rows(out / "clip.csv")
    assert [r[0] for r in video_rows[3:]] == ["0", "1", "2", "3", "4"]
    assert len(list((out / "drawn").glob("*.png"))) == 8
    cap = cv2.VideoCapture(str(out / "drawn" / "clip.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (
        64,
        48,
    )
    cap.release()


def test_predict_batch_size_does_not_change_results(checkpoint, synth, tmp_path):
    images = synth.parent / "images"
    a = predict_command(checkpoint, [images], tmp_path / "a", batch_size=1, draw=False, quiet=True)
    b = predict_command(checkpoint, [images], tmp_path / "b", batch_size=8, draw=False, quiet=True)
    assert a["frames"] == b["frames"] == 8
    ra = json.loads((tmp_path / "a" / "predictions.json").read_text())
    rb = json.loads((tmp_path / "b" / "predictions.json").read_text())
    # Batches of 1 vs 8 (see KP_ATOL_PX), plus the JSON's 4-decimal rounding, with room.
    np.testing.assert_allclose(
        [r["keypoints"] for r in ra], [r["keypoints"] for r in rb], atol=KP_ATOL_PX
    )


def test_predict_with_boxes_gives_one_instance_per_box(checkpoint, synth, tmp_path):
    images = synth.parent / "images"
    dets = [
        {"image_id": 0, "category_id": 1, "bbox": [4, 4, 40, 50], "score": 0.5},
        {"image_id": 0, "category_id": 1, "bbox": [10, 2, 30, 60], "score": 0.9},
        {"image_id": "000003.png", "category_id": 1, "bbox": [0, 0, 64, 64], "score": 1.0},
        {"image_id": 999, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 1.0},
    ]
    boxes = tmp_path / "dets.json"
    boxes.write_text(json.dumps(dets))
    out = tmp_path / "out"
    summary = predict_command(checkpoint, [images], out, boxes=boxes, draw=False, quiet=True)
    assert summary["frames"] == 8 and summary["instances"] == 3
    results = json.loads((out / "predictions.json").read_text())
    assert [r["image_id"] for r in results] == [0, 0, "000003.png"]
    rows = read_csv_rows(out / "predictions.csv")
    assert [r[0] for r in rows[:4]] == ["scorer", "individuals", "bodyparts", "coords"]
    assert len(rows[0]) == 1 + 2 * 3 * K  # two individuals: the most boxes of any image
    assert rows[1][1] == "individual0" and rows[1][-1] == "individual1"
    first, fourth, second = rows[4], rows[7], rows[5]
    assert all(first[1:]) and all(fourth[1 : 1 + 3 * K]) and not any(fourth[1 + 3 * K :])
    assert not any(second[1:])  # no box: no prediction, empty cells
    # Box-score order: the 0.9 box first; instance score = box score x mean keypoint score.
    assert results[0]["score"] == pytest.approx(
        0.9 * np.mean(results[0]["keypoints"][2::3]), abs=1e-4
    )


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_data_error_naming_the_file(checkpoint, tmp_path):
    with pytest.raises(DataError, match="missing.png"):
        collect_sources([tmp_path / "missing.png"])
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(DataError, match="notes.txt.*not an image or a video"):
        collect_sources([notes])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images or videos"):
        collect_sources([empty])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="corrupt.png"):
        predict_command(checkpoint, [corrupt], tmp_path / "o1", quiet=True)
    fake_video = tmp_path / "fake.mp4"
    fake_video.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="fake.mp4"):
        predict_command(checkpoint, [fake_video], tmp_path / "o2", quiet=True)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not a readable JSON"),
        ('{"a": 1}', "expected a list of detections"),
        ('[{"image_id": 1}]', "detection 0.*image_id and bbox"),
        ('[{"image_id": 1, "bbox": [0, 0, 5]}]', "detection 0.*finite x, y, w, h"),
        ('[{"image_id": 1, "bbox": [0, 0, 5, -1]}]', "w, h > 0"),
        ('[{"image_id": 1, "bbox": "abc"}]', "4 numbers"),
    ],
)
def test_bad_boxes_file_raises_data_error(tmp_path, content, message):
    path = tmp_path / "boxes.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_detections(path, [])
    assert info.value.file == str(path)


def test_cli_bad_input_exits_2_without_traceback(checkpoint, tmp_path, capsys):
    missing = tmp_path / "nope.jpg"
    # in this process (a subprocess's own start-up is tested in test_cli.py and
    # tests/reliability): an exception escaping main() would fail the test as it is
    proc = cli_captured(capsys, "predict", checkpoint, missing, "--out", tmp_path / "o")
    assert proc.code == 2
    assert "nope.jpg" in proc.err and "Traceback" not in proc.err
    assert proc.err.startswith("error:")


def test_cli_start_stop_every_pick_video_frames(checkpoint, video, tmp_path, capsys):
    """Issue 12: frames 1 and 3 of the five (stop exclusive), then the rate line."""
    out = tmp_path / "out"
    frames = ["--start", "1", "--stop", "4", "--every", "2", "--device", "cpu"]
    assert cli("predict", checkpoint, video, "--out", out, "--no-draw", *frames) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("2 images/frames, 2 instances")
    assert lines[-1].startswith("2 frames in ") and lines[-1].endswith(" frames/s")
    frames = [im.get("frame") for im in json.loads((out / "images.json").read_text())]
    assert frames == [1, 3]
