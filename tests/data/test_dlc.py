from __future__ import annotations

import numpy as np
import pytest
import yaml

from keypointer.data.dlc import read_dlc, write_dlc
from keypointer.data.formats import convert, detect_format, load_dataset
from keypointer.errors import DataError

CONFIG = """\
scorer: Ann
bodyparts:
- zeta
- alpha
- mid
skeleton: [['zeta', 'alpha']]
"""
# The CSV lists the body parts in another order than config.yaml: config.yaml's wins.
CSV = """\
scorer,Ann,Ann,Ann,Ann,Ann,Ann
bodyparts,alpha,alpha,zeta,zeta,mid,mid
coords,x,y,x,y,x,y
labeled-data/v1/img1.png,1.5,2.5,10,20,,
labeled-data/v1/img2.png,,,11,21,5,6
"""


def project(tmp_path, config=CONFIG, csv=CSV, video="v1"):
    (tmp_path / "config.yaml").write_text(config)
    folder = tmp_path / "labeled-data" / video
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "CollectedData_Ann.csv").write_text(csv)
    return tmp_path


def test_reads_project_in_config_order_with_unlabelled_cells(tmp_path):
    kset = read_dlc(project(tmp_path))
    assert kset.skeleton.names == ("zeta", "alpha", "mid")
    assert kset.skeleton.edges == ((0, 1),)
    assert [s.id for s in kset.samples] == ["labeled-data/v1/img1.png", "labeled-data/v1/img2.png"]
    assert kset.samples[0].image == tmp_path / "labeled-data/v1/img1.png"
    np.testing.assert_array_equal(
        kset.samples[0].instances[0].keypoints, [[10, 20, 2], [1.5, 2.5, 2], [0, 0, 0]]
    )
    np.testing.assert_array_equal(
        kset.samples[1].instances[0].keypoints, [[11, 21, 2], [0, 0, 0], [5, 6, 2]]
    )
    assert kset.samples[1].record == "labeled-data/v1/CollectedData_Ann.csv line 5"
    assert kset.samples[0].instances[0].bbox is None
    assert detect_format(tmp_path) == "dlc"
    assert detect_format(tmp_path / "config.yaml") == "dlc"


def test_single_csv_without_config_keeps_file_order_and_reads_three_index_columns(tmp_path):
    csv = (
        "scorer,,,Ann,Ann,Ann,Ann\n"
        "bodyparts,,,zz,zz,aa,aa\n"
        "coords,,,x,y,x,y\n"
        "labeled-data,v2,f.png,1,2,3,4\n"
    )
    path = tmp_path / "CollectedData_Ann.csv"
    path.write_text(csv)
    assert detect_format(path) == "dlc"
    kset = load_dataset(path)
    assert kset.skeleton.names == ("zz", "aa")
    assert kset.samples[0].id == "labeled-data/v2/f.png"
    np.testing.assert_array_equal(kset.samples[0].instances[0].keypoints[:, :2], [[1, 2], [3, 4]])


def test_single_csv_inside_a_project_uses_its_config(tmp_path):
    root = project(tmp_path)
    kset = load_dataset(root / "labeled-data/v1/CollectedData_Ann.csv")
    assert kset.skeleton.names == ("zeta", "alpha", "mid")
    assert kset.samples[0].image == root / "labeled-data/v1/img1.png"


def test_lightning_pose_folder_is_read_from_its_root_csv(tmp_path):
    """Lightning Pose: DeepLabCut-style CollectedData.csv at the root, no config.yaml."""
    (tmp_path / "labeled-data" / "v1").mkdir(parents=True)
    (tmp_path / "videos").mkdir()
    (tmp_path / "CollectedData.csv").write_text(CSV)
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")  # not DeepLabCut-style: not counted
    assert detect_format(tmp_path) == "dlc"
    kset = load_dataset(tmp_path)
    assert kset.skeleton.names == ("alpha", "zeta", "mid")  # the CSV's order
    assert kset.samples[0].image == tmp_path / "labeled-data/v1/img1.png"
    assert kset.samples[1].record == "CollectedData.csv line 5"
    assert kset.source == tmp_path
    (tmp_path / "CollectedData_new.csv").write_text(CSV)
    with pytest.raises(DataError, match="several DeepLabCut-style CSVs") as err:
        detect_format(tmp_path)
    assert "CollectedData.csv, CollectedData_new.csv" in err.value.message


def test_trailing_empty_columns_are_ignored(tmp_path):
    ragged = "\n".join(line + "," * (i % 3) for i, line in enumerate(CSV.splitlines())) + "\n"
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = read_dlc(project(tmp_path / "a")), read_dlc(project(tmp_path / "b", csv=ragged))
    for sa, sb in zip(a.samples, b.samples, strict=True):
        np.testing.assert_array_equal(sa.instances[0].keypoints, sb.instances[0].keypoints)


def test_several_videos(tmp_path):
    root = project(tmp_path)
    project(tmp_path, csv=CSV.replace("v1", "v2"), video="v2")
    kset = read_dlc(root)
    assert len(kset) == 4
    assert kset.samples[2].id == "labeled-data/v2/img1.png"


@pytest.mark.parametrize(
    "csv, record, message",
    [
        (CSV.replace("bodyparts", "individuals"), None, "four: scorer, individuals"),
        (CSV.replace("coords", "coordinates"), None, "three header rows"),
        (CSV.replace("11,21", "11,abc"), "line 5", "'zeta y'"),
        (CSV.replace("11,21", "11,"), "line 5", "only one of x and y"),
        (CSV.replace("alpha,alpha", "beta,beta"), "line 2", "'beta' is not in config.yaml"),
        (CSV + "labeled-data/v1/x.png,1,2,3,4,5,6,7\n", "line 6", "8 cells"),
    ],
)
def test_bad_csv_names_file_and_line(tmp_path, csv, record, message):
    root = project(tmp_path, csv=csv)
    with pytest.raises(DataError, match=message) as err:
        read_dlc(root)
    assert err.value.file.endswith("CollectedData_Ann.csv")
    assert err.value.record == record


@pytest.mark.parametrize(
    "config, message",
    [
        (CONFIG + "multianimalproject: true\n", "'multianimalbodyparts' must be a list"),
        (CONFIG.replace("'alpha'", "'nope'"), "skeleton edge"),
        ("bodyparts: Hand\n", "bodyparts"),
        ("bodyparts: [a, b\n", "invalid YAML"),
    ],
)
def test_bad_config(tmp_path, config, message):
    root = project(tmp_path, config=config)
    with pytest.raises(DataError, match=message) as err:
        read_dlc(root)
    assert err.value.file == str(root / "config.yaml")


def test_h5_without_csv_is_explained(tmp_path):
    root = project(tmp_path)
    (root / "labeled-data" / "v1" / "CollectedData_Ann.csv").unlink()
    (root / "labeled-data" / "v1" / "CollectedData_Ann.h5").write_bytes(b"\x89HDF")
    with pytest.raises(DataError, match=r"\.h5 but no \.csv"):
        read_dlc(root)


def test_round_trip_and_convert(tmp_path, toy_kset, same_points):
    out = write_dlc(toy_kset, tmp_path / "dlc")
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["bodyparts"] == list(toy_kset.skeleton.names)
    assert cfg["skeleton"] == [["nose", "left_eye"], ["nose", "right_eye"], ["nose", "tail"]]
    assert sorted(p.name for p in (out / "labeled-data").iterdir()) == ["cam1", "cam2"]
    back = read_dlc(out)
    # DeepLabCut has no occlusion flag: occluded points come back as visible.
    same_points(toy_kset, back, atol=0, occluded_as=2)
    assert back.skeleton.names == toy_kset.skeleton.names
    assert back.skeleton.edges == toy_kset.skeleton.edges
    for sa, sb in zip(toy_kset.samples, back.samples, strict=True):
        assert sb.image.read_bytes() == sa.image.read_bytes()
        assert sb.image.parent.parent == out / "labeled-data"
        va, kb = sa.instances[0].keypoints, sb.instances[0].keypoints
        np.testing.assert_array_equal(kb[:, 2], np.where(va[:, 2] > 0, 2, 0))
        lab = va[:, 2] > 0
        np.testing.assert_array_equal(kb[lab, :2], va[lab, :2])
    # convert goes through load_dataset (here from COCO written by the COCO writer).
    from keypointer.data.coco import write_coco

    src = write_coco(toy_kset, tmp_path / "src" / "c.json")
    path = convert(src, tmp_path / "dlc2", to="dlc")
    assert read_dlc(path).skeleton.names == toy_kset.skeleton.names
    with pytest.raises(DataError, match="not empty"):
        convert(src, tmp_path / "dlc2", to="dlc")
