"""Readers on the real files in ../shared/data (skipped when the folder is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from keypointer.data.check import NO_LABELS, validate
from keypointer.data.formats import convert, load_dataset
from keypointer.errors import DataError
from keypointer.skeleton import COCO_BODY_NAMES, COCO_BODY_SIGMAS

# set -> (json, images, instances, K, first names, edges, (annotation id, keypoint, x, y, v))
MMPOSE = {
    "coco": ("test_coco.json", 4, 14, 17, COCO_BODY_NAMES[:2], 19, (442619, 0, 367, 81, 2)),
    "300w": ("test_300w.json", 2, 2, 68, ("kp0", "kp1"), 0, (197, 0, 268.0, 398.882, 1)),
    "wflw": ("test_wflw.json", 2, 4, 98, ("kp0", "kp1"), 0, (2, 0, 440.696106, 132.732559, 1)),
    "horse10": ("test_horse10.json", 3, 3, 22, ("Nose", "Eye"), 0, (100, 0, 126.0, 71.1, 2)),
    "fly": ("test_fly.json", 2, 2, 32, ("head", "eyeL"), 25, (1400, 0, 146.0, 95.0, 2)),
    "locust": ("test_locust.json", 2, 2, 35, ("head", "neck"), 26, None),
    "zebra": ("test_zebra.json", 2, 2, 9, ("snout", "head"), 8, None),
    "ap10k": ("test_ap10k.json", 2, 2, 17, ("left_eye", "right_eye"), 17, (9284, 0, 134, 415, 2)),
    "onehand10k": ("test_onehand10k.json", 4, 4, 21, ("wrist", "thumb1"), 20, (9, 0, 0, 0, 0)),
}


def _instance(kset, ann_id):
    return next(
        i for s in kset.samples for i in s.instances if i.record == f"annotation id {ann_id}"
    )


@pytest.mark.parametrize("name", sorted(MMPOSE))
def test_mmpose_sample_sets(shared_data, name):
    file, n_images, n_inst, k, first, n_edges, point = MMPOSE[name]
    kset = load_dataset(shared_data / "mmpose-samples" / name / file)
    assert len(kset) == n_images
    assert kset.num_instances == n_inst
    assert kset.skeleton.num_keypoints == k
    assert kset.skeleton.names[:2] == first
    assert len(kset.skeleton.edges) == n_edges
    assert all(s.image.is_file() and s.width > 0 for s in kset.samples)
    if point is not None:
        ann, j, x, y, v = point
        np.testing.assert_allclose(_instance(kset, ann).keypoints[j], (x, y, v))
    report = validate(kset)
    assert report.num_images == n_images
    assert sum(report.labelled.values()) > 0


def test_mmpose_details(shared_data):
    root = shared_data / "mmpose-samples"
    coco = load_dataset(root / "coco" / "test_coco.json")
    assert coco.skeleton.names == COCO_BODY_NAMES
    assert coco.skeleton.oks_sigmas == COCO_BODY_SIGMAS
    assert coco.skeleton.edges[0] == (15, 13)  # [16, 14] 1-based
    assert (5, 6) in coco.skeleton.flip_pairs
    report = validate(coco)
    assert report.counts == {NO_LABELS: 2}  # two annotations with num_keypoints 0
    assert report.num_instances == 12
    zebra = load_dataset(root / "zebra" / "test_zebra.json")
    assert zebra.skeleton.edges[0] == (1, 0)
    wflw = load_dataset(root / "wflw" / "test_wflw.json")
    assert [len(s.instances) for s in wflw.samples] == [1, 3]
    assert wflw.samples[1].record == "image id 12 (7_Cheering_Cheering_7_16.jpg)"
    with pytest.raises(DataError, match="detection results"):
        load_dataset(root / "coco" / "test_coco_det_AP_H_56.json")


def test_dlc_reaching_project(shared_data):
    root = shared_data / "dlc-reaching"
    kset = load_dataset(root)
    assert kset.skeleton.names == ("Hand", "Finger1", "Tongue", "Joystick1", "Joystick2")
    assert kset.skeleton.edges == ((0, 1), (3, 4))
    assert len(kset) == 55
    assert kset.samples[0].id == "labeled-data/reachingvideo1/img005.png"
    kp = kset.samples[0].instances[0].keypoints
    np.testing.assert_allclose(kp[0], (185.25173502386923, 610.3622760638572, 2))
    np.testing.assert_array_equal(kp[2], (0, 0, 0))  # Tongue: empty cells
    v = np.stack([s.instances[0].keypoints[:, 2] for s in kset.samples])
    assert int((v == 0).sum()) == 42  # 84 empty cells
    report = validate(kset)
    assert report.labelled == {
        "Hand": 54,
        "Finger1": 54,
        "Tongue": 15,
        "Joystick1": 55,
        "Joystick2": 55,
    }
    assert report.image_sizes == (640, 470, 832, 747)
    single = load_dataset(root / "labeled-data/reachingvideo1/CollectedData_Mackenzie.csv")
    assert single.skeleton.names == kset.skeleton.names
    assert single.samples[-1].image == kset.samples[-1].image


def test_real_data_converts(shared_data, tmp_path, same_points):
    dlc = shared_data / "dlc-reaching"
    coco = convert(dlc, tmp_path / "dlc.json")
    same_points(load_dataset(dlc), load_dataset(coco))
    hand = shared_data / "mmpose-samples" / "onehand10k" / "test_onehand10k.json"
    yolo = convert(hand, tmp_path / "hand", to="yolo")
    a, b = load_dataset(hand), load_dataset(yolo)
    # A YOLO reader lists the image folder, in file-name order.
    by_name = sorted(range(len(a)), key=lambda i: a.samples[i].image.name)
    same_points(a.subset(by_name), b, atol=1e-3)


def test_lightning_pose_folder(shared_data):
    root = shared_data / "lp-mirror-mouse"
    kset = load_dataset(root)
    assert len(kset) == 90 and kset.skeleton.num_keypoints == 17
    assert kset.skeleton.names[:2] == ("paw1LH_top", "paw2LF_top")
    assert kset.samples[0].image == root / "labeled-data/img01.png"
    np.testing.assert_allclose(kset.samples[0].instances[0].keypoints[0], (77.25, 36.25, 2))
    report = validate(kset)
    assert report.image_sizes == (396, 406, 396, 406)
    single = load_dataset(root / "CollectedData.csv")
    assert [s.image for s in single.samples] == [s.image for s in kset.samples]
