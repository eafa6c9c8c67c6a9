from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.data.coco import CROWD, NO_KEYPOINTS, OTHER_CATEGORY, read_coco, write_coco
from keypointer.data.formats import detect_format, load_dataset
from keypointer.errors import DataError


def coco_doc(**over):
    doc = {
        "images": [
            {"id": 3, "file_name": "000001.jpg", "width": 64, "height": 48},
            {"id": 4, "file_name": "000002.jpg", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": 7, "image_id": 3, "category_id": 1, "bbox": [1, 2, 30, 40],
             "keypoints": [10, 11, 2, 12.5, 13, 1, 0, 0, 0], "num_keypoints": 2,
             "iscrowd": 0, "area": 1200, "center": [3, 4], "scale": 1.5,
             "segmentation": [[1, 2, 3, 4]]},
            {"id": 8, "image_id": 4, "category_id": 1, "keypoints": [5, 6, 2, 7, 8, 2, 9, 9, 2]},
        ],
        "categories": [
            {"id": 1, "name": "thing", "keypoints": ["a", "left_b", "right_b"],
             "skeleton": [[1, 2], [1, 3]]}
        ],
    }  # fmt: skip
    doc.update(over)
    return doc


def dump(tmp_path, doc, name="labels.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_reads_keypoints_boxes_names_and_one_based_skeleton(tmp_path):
    kset = read_coco(dump(tmp_path, coco_doc()))
    assert kset.skeleton.names == ("a", "left_b", "right_b")
    assert kset.skeleton.edges == ((0, 1), (0, 2))
    assert kset.skeleton.flip_pairs == ((1, 2),)
    assert [s.id for s in kset.samples] == [3, 4]
    s = kset.samples[0]
    assert (s.width, s.height) == (64, 48)
    assert s.image == tmp_path / "000001.jpg"
    assert s.record == "image id 3 (000001.jpg)"
    inst = s.instances[0]
    np.testing.assert_array_equal(inst.keypoints, [[10, 11, 2], [12.5, 13, 1], [0, 0, 0]])
    assert inst.bbox == (1.0, 2.0, 30.0, 40.0)
    assert inst.record == "annotation id 7"
    assert kset.samples[1].instances[0].bbox is None
    assert kset.dropped == {}
    assert detect_format(tmp_path / "labels.json") == "coco"


def test_images_folder_and_user_folder(tmp_path, png):
    png(tmp_path / "images" / "000001.jpg", 8, 8)
    kset = read_coco(dump(tmp_path, coco_doc()))
    assert kset.samples[0].image == tmp_path / "images" / "000001.jpg"
    # Not found anywhere: the path next to the JSON (check then reports it missing).
    assert kset.samples[1].image == tmp_path / "000002.jpg"
    other = tmp_path / "elsewhere"
    kset = load_dataset(tmp_path / "labels.json", images=other)
    assert kset.samples[0].image == other / "000001.jpg"


def test_crowd_and_keypointless_annotations_are_dropped_and_counted(tmp_path):
    doc = coco_doc()
    doc["annotations"] += [
        {"id": 9, "image_id": 3, "category_id": 1, "iscrowd": 1, "keypoints": [0] * 9},
        {"id": 10, "image_id": 3, "category_id": 1, "bbox": [0, 0, 1, 1]},
        {"id": 11, "image_id": 3, "category_id": 1, "keypoints": [0] * 9, "num_keypoints": 0},
    ]
    kset = read_coco(dump(tmp_path, doc))
    assert kset.dropped == {CROWD: 1, NO_KEYPOINTS: 1}
    # An annotation with nothing labelled stays (validate leaves it out of training).
    assert [i.record for i in kset.samples[0].instances] == ["annotation id 7", "annotation id 11"]


def test_categories_without_names_infer_k(tmp_path):
    doc = coco_doc(categories=[{"id": 1, "name": "face", "keypoints": [], "skeleton": []}])
    kset = read_coco(dump(tmp_path, doc))
    assert kset.skeleton.names == ("kp0", "kp1", "kp2")
    assert kset.skeleton.edges == ()
    doc = coco_doc()
    del doc["categories"]
    assert read_coco(dump(tmp_path, doc)).skeleton.names == ("kp0", "kp1", "kp2")


def test_several_categories_merge_or_ask(tmp_path):
    doc = coco_doc()
    doc["categories"].append(dict(doc["categories"][0], id=2, name="other"))
    doc["annotations"][1]["category_id"] = 2
    kset = read_coco(dump(tmp_path, doc))
    assert kset.num_instances == 2
    doc["categories"][1].update(keypoints=["p", "q"], skeleton=[[1, 2]])
    doc["annotations"][1]["keypoints"] = [1, 1, 2, 2, 2, 2]
    with pytest.raises(DataError, match="pick one with category") as err:
        read_coco(dump(tmp_path, doc))
    assert "id 2 'other' (2 keypoints)" in str(err.value)
    kset = read_coco(tmp_path / "labels.json", category="other")
    assert kset.skeleton.names == ("p", "q")
    assert kset.num_instances == 1
    assert kset.dropped == {OTHER_CATEGORY: 1}
    assert read_coco(tmp_path / "labels.json", category=1).skeleton.names[0] == "a"
    with pytest.raises(DataError, match="no keypoint category 'zzz'"):
        read_coco(tmp_path / "labels.json", category="zzz")


@pytest.mark.parametrize(
    "change, record, message",
    [
        (lambda d: d["annotations"][0].update(keypoints="1"), "annotation id 7", "list of num"),
        (lambda d: d["annotations"][0].update(keypoints=[1, 2]), "annotation id 7", "triplets"),
        (lambda d: d["annotations"][0].update(keypoints=[1, "2", 3]), "annotation id 7", "numbers"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotation id 7", "x, y, w, h"),
        (lambda d: d["annotations"][0].update(image_id=99), "annotation id 7", "not in 'images'"),
        (lambda d: d["annotations"][0].update(image_id=[1]), "annotation id 7", "image_id"),
        (lambda d: d["images"][1].update(id=3), "image id 3 (000002.jpg)", "duplicate image id"),
        (lambda d: d["images"][0].update(width="wide"), "image id 3 (000001.jpg)", "'width'"),
        (lambda d: d["images"][0].pop("file_name"), "image id 3", "file_name"),
        (lambda d: d["categories"][0].update(flip_pairs=[[0, 9]]), "category id 1", "outside"),
        (lambda d: d["categories"][0].update(flip_pairs=[[1, 1]]), "category id 1", "with itself"),
        (lambda d: d["annotations"][0].update(keypoints=[[1, 2], [3, 4], [5, 6]]),
         "annotation id 7", "list of numbers or of \\[x, y, v\\] triplets"),
        (lambda d: d["annotations"][0].update(keypoints=[[1, 2, 2], 3, 4, 5]),
         "annotation id 7", "list of numbers"),
        (lambda d: d["annotations"][0].update(keypoints=[[1, 2, "v"], [1, 2, 2], [0, 0, 0]]),
         "annotation id 7", "list of numbers"),
        (lambda d: d["categories"][0].update(keypoints="abc"), "category id 1", "list of names"),
    ],
)  # fmt: skip
def test_bad_records_name_file_and_record(tmp_path, change, record, message):
    doc = coco_doc()
    change(doc)
    path = dump(tmp_path, doc)
    with pytest.raises(DataError, match=message) as err:
        read_coco(path)
    assert err.value.file == str(path)
    assert err.value.record == record


TRIPLET = st.tuples(
    st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-1000, 1000),
    st.sampled_from([0, 1, 2]),
)


@settings(max_examples=30, deadline=None)
@given(st.lists(TRIPLET, min_size=1, max_size=6))
def test_nested_triplets_read_as_the_flat_list(tmp_path_factory, triplets):
    """MMPose's RHD hand set writes [[x, y, v], ...]: it reads exactly as the flat form."""
    tmp = tmp_path_factory.mktemp("nested")
    names = [f"p{i}" for i in range(len(triplets))]
    doc = coco_doc(categories=[{"id": 1, "name": "hand", "keypoints": names}])
    doc["annotations"] = [doc["annotations"][0]]
    doc["annotations"][0]["keypoints"] = [list(t) for t in triplets]
    nested = read_coco(dump(tmp, doc, "nested.json"))
    doc["annotations"][0]["keypoints"] = [v for t in triplets for v in t]
    flat = read_coco(dump(tmp, doc, "flat.json"))
    a, b = nested.samples[0].instances[0], flat.samples[0].instances[0]
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.keypoints, np.array(triplets, dtype=float))


def test_skeleton_edges_beyond_the_keypoints_are_dropped_with_one_warning(tmp_path):
    """A 14-keypoint CrowdPose file carrying COCO's 17-keypoint skeleton (1-based)."""
    names = [f"kp{i}" for i in range(14)]
    coco17 = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [1, 2]]
    cat = {"id": 1, "name": "person", "keypoints": names, "skeleton": coco17}
    doc = coco_doc(categories=[cat])
    for ann in doc["annotations"]:
        ann["keypoints"] = [5, 6, 2] * 14
    path = dump(tmp_path, doc)
    kset = read_coco(path)
    assert kset.skeleton.edges == ((13, 11), (11, 12), (5, 11), (0, 1))
    assert kset.warnings == [
        f"{path} (category id 1 'person'): dropped skeleton edges naming keypoints beyond "
        "its 14: [16, 14], [17, 15], [15, 13]"
    ]
    assert read_coco(dump(tmp_path, coco_doc())).warnings == []
    # Flip pairs change the training targets: one naming a missing keypoint stays fatal.
    cat["flip_pairs"] = [[1, 2], [13, 14]]
    with pytest.raises(DataError, match=r"flip pair \(13, 14\) names a keypoint outside 0..13"):
        read_coco(dump(tmp_path, doc))


def test_invalid_json_reports_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "images": [\n    {"id": 1,,}\n')
    with pytest.raises(DataError, match="invalid JSON") as err:
        read_coco(path)
    assert err.value.record == "line 3 column 14"
    path.write_bytes(b'{"images": "\xff\xfe"}')
    with pytest.raises(DataError, match="not UTF-8"):
        read_coco(path)
    path.write_text('[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 0.9}]')
    with pytest.raises(DataError, match="detection results"):
        read_coco(path)


def test_round_trip(tmp_path, toy_kset, same_points):
    out = write_coco(toy_kset, tmp_path / "src" / "out.json")
    doc = json.loads(out.read_text())
    assert [i["file_name"] for i in doc["images"]] == ["cam1/a.png", "cam1/b.png", "cam2/c.png"]
    assert doc["categories"][0]["skeleton"] == [[1, 2], [1, 3], [1, 4]]
    ann = doc["annotations"][0]
    assert ann["num_keypoints"] == 3 and ann["bbox"] == [4.0, 8.0, 12.0, 8.0]
    # No box in the set: the labelled keypoints' extent.
    assert doc["annotations"][1]["bbox"] == [27.0, 18.0, 23.0, 22.0]
    back = read_coco(out)
    same_points(toy_kset, back)
    assert back.skeleton == toy_kset.skeleton
    assert [s.id for s in back.samples] == [1, 2, 3]
    assert [(s.width, s.height) for s in back.samples] == [(64, 48), (64, 48), (40, 50)]
    assert back.samples[2].instances[0].bbox == (2.0, 2.0, 30.0, 45.0)


def test_writer_uses_absolute_paths_outside_its_folder_and_refuses_nan(tmp_path, toy_kset):
    out = write_coco(toy_kset, tmp_path / "other" / "out.json")
    names = [i["file_name"] for i in json.loads(out.read_text())["images"]]
    assert names[0] == (tmp_path / "src" / "cam1" / "a.png").resolve().as_posix()
    toy_kset.samples[0].instances[0].keypoints[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN") as err:
        write_coco(toy_kset, tmp_path / "x.json")
    assert err.value.record == "r1"
