from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from helpers import cli_captured

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


# Hashes of what generate() wrote before crowds existed (computed from that version of the
# file): one figure per image must stay byte for byte what the demo and its figures measured.
# Pixels, not PNG bytes, so a different zlib cannot fail it; the JSON's bytes exactly.
REFERENCE = {
    (0, 4, 128): (
        "e8ac1ead303fcbd3b4ee18e362a78c24d4f29ff830f6aa869a904be714d896df",
        "ce0159a841d695a31163a5d35068809ed519d61f48d42250cb65e325831df8f8",
    ),
    (7, 3, 64): (
        "b8c82804c354d0ecce0b06336a08c58cbee3eaa8813486120f78fa21bb931f90",
        "32842f42e3f9a42fc21aa0970f00fa4f1628215f383df6b885bcea6d2c4616ce",
    ),
}


@pytest.mark.parametrize("seed, num, size", sorted(REFERENCE))
def test_one_figure_per_image_is_unchanged(tmp_path, seed, num, size):
    import hashlib

    kwargs = {} if size == 128 else {"size": size}  # 128 stays the default for single figures
    path = synthetic.generate(tmp_path, num_images=num, seed=seed, **kwargs)
    pixels = hashlib.sha256()
    for i in range(num):
        image = cv2.imread(str(tmp_path / f"images/{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        pixels.update(image.tobytes())
    got = (hashlib.sha256(path.read_bytes()).hexdigest(), pixels.hexdigest())
    assert got == REFERENCE[(seed, num, size)]


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    out = tmp_path_factory.mktemp("crowd")
    path = synthetic.generate(out, num_images=24, seed=2, instances=(1, 4))
    return out, json.loads(path.read_text())


def test_crowd_counts_sizes_and_ids(crowd, tmp_path):
    out, coco = crowd
    counts = np.bincount([a["image_id"] for a in coco["annotations"]], minlength=25)[1:]
    assert counts.min() >= 1 and counts.max() <= 4 and len(set(counts)) == 4
    assert [a["id"] for a in coco["annotations"]] == list(range(1, counts.sum() + 1))
    assert all(im["width"] == im["height"] == 256 for im in coco["images"])  # the crowd default
    assert coco["info"]["instances"] == [1, 4]
    three = json.loads(synthetic.generate(tmp_path, 5, seed=1, instances=3).read_text())
    assert np.bincount([a["image_id"] for a in three["annotations"]])[1:].tolist() == [3] * 5
    with pytest.raises(ValueError):
        synthetic.generate(tmp_path, 1, instances=(3, 2))


def test_crowd_boxes_contain_their_figures_keypoints(crowd):
    _, coco = crowd
    k = len(synthetic.NAMES)
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        kps = np.array(ann["keypoints"], float).reshape(k, 3)
        lab = kps[kps[:, 2] > 0]
        assert len(lab) > 0 and w > 5 and h > 5
        assert np.all((lab[:, 0] >= x) & (lab[:, 0] <= x + w))
        assert np.all((lab[:, 1] >= y) & (lab[:, 1] <= y + h))
        assert ann["num_keypoints"] == len(lab)


def test_crowd_visible_keypoints_show_their_marker_and_overlaps_hide_some(crowd):
    out, coco = crowd
    colours = np.array(synthetic.MARKER_COLOURS, dtype=float)
    images = {im["id"]: cv2.imread(str(out / im["file_name"]))[..., ::-1] for im in coco["images"]}
    k = len(synthetic.NAMES)
    errors, hidden = [], 0
    for ann in coco["annotations"]:
        kps = np.array(ann["keypoints"], float).reshape(k, 3)
        hidden += int((kps[:, 2] == 1).sum())
        for j in np.flatnonzero(kps[:, 2] == 2):
            pixel = images[ann["image_id"]][int(round(kps[j, 1])), int(round(kps[j, 0]))]
            errors.append(np.abs(pixel.astype(float) - colours[j]).max())
    assert len(errors) > 300 and np.percentile(errors, 99) < 40  # front figures hide no v=2
    assert hidden > 0.05 * len(errors)  # figures do overlap (occluders alone hide ~2%)


def test_keypoints_under_a_front_figure_are_the_hidden_ones():
    """A constructed case: one figure drawn over another. The pixel of every point the cover test
    calls free still shows the back figure; points well inside the front figure lost theirs."""
    rng = np.random.default_rng(0)
    spoilt_free, covered, covered_changed = 0, 0, 0
    for _ in range(60):
        image = np.full((160, 160, 3), 128, np.uint8)
        back, height = synthetic._pose(rng, 120)
        back = back + 20  # inside the image, whatever the pose
        synthetic.draw_figure(image, back, height, synthetic.figure_colours(rng))
        turn = rng.uniform(0, 2 * np.pi)  # the same pose moved 8-16 px: overlaps, but no
        front = back + rng.uniform(8, 16) * np.array([np.cos(turn), np.sin(turn)])  # marker
        before = image.copy()  # lands on its own twin (same colour, no visible change)
        synthetic.draw_figure(image, front, height, synthetic.figure_colours(rng))
        ij = np.round(back).astype(int)
        change = np.abs(image[ij[:, 1], ij[:, 0]].astype(int) - before[ij[:, 1], ij[:, 0]])
        changed = change.max(axis=1) > 40
        free = ~synthetic.covered_by_figure(back, front, height)
        deep = synthetic.covered_by_figure(back, front, height, margin=-1.0)
        spoilt_free += int((changed & free).sum())
        covered += int(deep.sum())
        covered_changed += int((changed & deep).sum())
    assert spoilt_free == 0
    assert covered > 60 and covered_changed > 0.9 * covered


def test_a_figure_in_front_makes_the_points_it_covers_v1(monkeypatch):
    """A constructed crowd: the same pose twice, the second 10 px lower (nearer, so in front)."""
    back, height = synthetic._pose(np.random.default_rng(4), 100)
    back = back + 40
    poses = iter([(back + (6.0, 10.0), height), (back, height)])  # given front first
    monkeypatch.setattr(synthetic, "_pose", lambda rng, size, shrink: next(poses))
    monkeypatch.setattr(synthetic, "UNLABELLED_P", 0.0)
    monkeypatch.setattr(synthetic, "OCCLUDER_P", 0.0)
    image, keypoints, boxes = synthetic.render_crowd(np.random.default_rng(0), 192, 2)
    np.testing.assert_allclose(keypoints[0, :, :2], back)  # drawn first: the back figure
    covered = synthetic.covered_by_figure(back, back + (6.0, 10.0), height)
    assert 2 <= covered.sum() < len(covered)
    np.testing.assert_array_equal(keypoints[0, :, 2], np.where(covered, 1, 2))
    assert (keypoints[1, :, 2] == 2).all()  # nothing covers the front figure
    colours = np.array(synthetic.MARKER_COLOURS, dtype=float)
    for k in np.flatnonzero(~covered):
        x, y = np.round(back[k]).astype(int)
        assert np.abs(image[y, x] - colours[k]).max() < 40


def test_crowd_loads_with_the_coco_reader(crowd):
    formats = pytest.importorskip("keypointer.data.formats")
    out, coco = crowd
    kset = formats.load_dataset(out / "annotations.json")
    assert sum(len(s.instances) for s in kset.samples) == len(coco["annotations"])


def _cli(args, capsys):
    result = cli_captured(capsys, *args)
    return result.code, result


def test_cli_crowds_video_and_bad_instances(tmp_path, capsys):
    code, out = _cli(
        ["synth", str(tmp_path / "c"), "--num-images", "3", "--instances", "2"], capsys
    )
    assert code == 0 and "wrote 3 images" in out.out
    coco = json.loads((tmp_path / "c" / "annotations.json").read_text())
    assert len(coco["annotations"]) == 6 and coco["images"][0]["width"] == 256
    args = ["synth", str(tmp_path / "v"), "--video", "--frames", "12", "--instances", "2"]
    code, out = _cli(args + ["--size", "64", "--fps", "24"], capsys)
    assert code == 0 and (tmp_path / "v" / "video.mp4").is_file()
    truth = json.loads((tmp_path / "v" / "truth.json").read_text())
    assert len(truth["frames"]) == 12 and truth["fps"] == 24.0 and truth["width"] == 64
    for bad in ("0-2", "3-1", "two", "1-"):
        code, out = _cli(["synth", str(tmp_path / "x"), "--instances", bad], capsys)
        assert code == 2 and out.err.startswith("error:") and "--instances" in out.err
    code, out = _cli(["synth", str(tmp_path / "y"), "--video", "--instances", "1-3"], capsys)
    assert code == 2 and "one number" in out.err and not (tmp_path / "y").exists()
