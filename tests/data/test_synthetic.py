from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from keypointer.data import synthetic
from keypointer.skeleton import guess_flip_pairs


@pytest.fixture(scope="module")
def renders():
    return [synthetic.render(np.random.default_rng([3, i]), 96) for i in range(80)]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = synthetic.generate(tmp_path / "a", num_images=6, seed=5, size=64)
    b = synthetic.generate(tmp_path / "b", num_images=6, seed=5, size=64)
    c = synthetic.generate(tmp_path / "c", num_images=6, seed=6, size=64)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    for i in range(6):
        name = f"images/{i:06d}.png"
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes()
    assert (a.parent / "images/000000.png").read_bytes() != (
        c.parent / "images/000000.png"
    ).read_bytes()


def test_coco_structure(tmp_path):
    path = synthetic.generate(tmp_path, num_images=5, seed=0, size=64)
    assert path == tmp_path / "annotations.json"
    coco = json.loads(path.read_text())
    assert [im["file_name"] for im in coco["images"]] == [f"images/{i:06d}.png" for i in range(5)]
    assert all((tmp_path / im["file_name"]).is_file() for im in coco["images"])
    (cat,) = coco["categories"]
    assert cat["name"] == "figure" and cat["keypoints"] == list(synthetic.NAMES)
    k = len(synthetic.NAMES)
    assert all(1 <= i <= k for edge in cat["skeleton"] for i in edge)
    assert len(guess_flip_pairs(cat["keypoints"])) == 4  # elbows, hands, knees, feet
    for ann in coco["annotations"]:
        kps = np.array(ann["keypoints"], dtype=float).reshape(k, 3)
        assert ann["num_keypoints"] == int((kps[:, 2] > 0).sum())
        assert ann["iscrowd"] == 0 and ann["area"] == pytest.approx(
            ann["bbox"][2] * ann["bbox"][3], abs=0.01
        )
        assert np.all(kps[kps[:, 2] == 0] == 0)  # COCO writes unlabelled points as 0, 0, 0
        image = cv2.imread(str(tmp_path / coco["images"][ann["image_id"] - 1]["file_name"]))
        assert image.shape == (64, 64, 3)


def test_visibility_statistics(renders):
    v = np.stack([kps[:, 2] for _, kps, _ in renders])
    assert 0.8 < (v == 2).mean() < 0.99
    assert (v == 1).sum() >= 3  # occluded but labelled
    assert (v == 0).sum() >= 3  # out of frame or left unlabelled


def test_bbox_contains_labelled_keypoints(renders):
    for image, kps, (x, y, w, h) in renders:
        size = image.shape[0]
        assert 0 <= x and 0 <= y and x + w <= size + 1e-6 and y + h <= size + 1e-6
        assert w > 10 and h > 10
        lab = kps[kps[:, 2] > 0]
        assert np.all((lab[:, 0] >= x) & (lab[:, 0] <= x + w))
        assert np.all((lab[:, 1] >= y) & (lab[:, 1] <= y + h))


def test_markers_sit_on_visible_keypoints(renders):
    """Every visible keypoint shows its joint type's marker colour, centred on the label."""
    colours = np.array(synthetic.MARKER_COLOURS, dtype=float)
    errors = []
    for image, kps, _ in renders[:30]:
        for k in np.flatnonzero(kps[:, 2] == 2):
            x, y = kps[k, :2]
            pixel = image[int(round(y)), int(round(x))].astype(float)
            assert np.abs(pixel - colours[k]).max() < 30, (k, pixel)
            x0, y0 = int(x) - 5, int(y) - 5
            win = image[max(y0, 0) : y0 + 12, max(x0, 0) : x0 + 12].astype(float)
            if win.shape[:2] != (12, 12):
                continue
            ys, xs = np.nonzero(np.abs(win - colours[k]).max(axis=2) < 40)
            errors.append([xs.mean() + x0 - x, ys.mean() + y0 - y])
    errors = np.abs(np.array(errors))
    assert len(errors) > 100
    assert np.median(errors) < 0.25 and np.percentile(errors, 90) < 0.6


def test_left_and_right_sides_follow_the_body(renders):
    """Left limbs are on the figure's left (our right when it is upright): learnable, flip-safe."""
    names = synthetic.NAMES
    for _, kps, _ in renders:
        p = kps[:, :2]
        up = p[names.index("neck")] - p[names.index("pelvis")]
        left = np.array([-up[1], up[0]]) / np.linalg.norm(up)  # y points down
        for part, root in (("elbow", "neck"), ("hand", "neck"), ("knee", "pelvis")):
            r = p[names.index(root)]
            assert (p[names.index(f"left_{part}")] - r) @ left > 0
            assert (p[names.index(f"right_{part}")] - r) @ left < 0


def test_variety_of_scale_and_rotation(renders):
    names = synthetic.NAMES
    heights, angles = [], []
    for _, kps, _ in renders:
        axis = kps[names.index("head"), :2] - kps[names.index("pelvis"), :2]
        heights.append(np.linalg.norm(axis))
        angles.append(np.degrees(np.arctan2(axis[0], -axis[1])))
    assert max(heights) > 1.6 * min(heights)
    assert min(angles) < -30 and max(angles) > 30


def test_generate_is_fast(tmp_path):
    import time

    start = time.perf_counter()
    synthetic.generate(tmp_path, num_images=50, seed=1, size=128)
    assert time.perf_counter() - start < 3.0  # 500 images take a couple of seconds


def test_loads_with_the_coco_reader(tmp_path):
    formats = pytest.importorskip("keypointer.data.formats")
    path = synthetic.generate(tmp_path, num_images=4, seed=0, size=64)
    kset = formats.load_dataset(path)
    assert len(kset) == 4 and kset.skeleton.names == synthetic.NAMES
    assert len(kset.skeleton.flip_pairs) == 4
    coco = json.loads(path.read_text())
    got = kset.samples[0].instances[0].keypoints
    want = np.array(coco["annotations"][0]["keypoints"], dtype=float).reshape(-1, 3)
    np.testing.assert_allclose(got, want)
