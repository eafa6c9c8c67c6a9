"""Multi-animal DeepLabCut projects: individuals as instances with tracks, unique body parts
counted and left out, the multi-animal writer and its round trip."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keypointer.data.check import validate
from keypointer.data.dlc import UNIQUE, read_dlc, write_dlc
from keypointer.data.formats import detect_format, load_dataset
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.errors import DataError
from keypointer.skeleton import Skeleton

SHARED_DLC = Path(__file__).resolve().parents[3] / "shared" / "data" / "sleap-samples" / "dlc"


def write_png(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width, 3), 90, np.uint8))
    return path


CONFIG = """\
scorer: Ann
multianimalproject: true
bodyparts: MULTI!
multianimalbodyparts: [nose, left_ear, right_ear]
uniquebodyparts: [feeder]
individuals: [mouse1, mouse2, mouse3]
skeleton: [[nose, left_ear], [nose, right_ear], [nose, feeder]]
"""
# Individuals listed in another order than config.yaml's body parts; one empty individual.
CSV = """\
scorer,,,Ann,Ann,Ann,Ann,Ann,Ann,Ann,Ann,Ann,Ann,Ann,Ann,Ann,Ann
individuals,,,mouse1,mouse1,mouse1,mouse1,mouse1,mouse1,mouse2,mouse2,mouse2,mouse2,mouse2,mouse2,single,single
bodyparts,,,right_ear,right_ear,nose,nose,left_ear,left_ear,right_ear,right_ear,nose,nose,left_ear,left_ear,feeder,feeder
coords,,,x,y,x,y,x,y,x,y,x,y,x,y,x,y
labeled-data,v1,a.png,1,2,3,4,5,6,,,,,,,7.5,8.5
labeled-data,v1,b.png,,,,,,,10,11,12,13,,,,
labeled-data,v1,c.png,1,1,2,2,3,3,4,4,5,5,6,6,9,9
labeled-data,v1,d.png,,,,,,,,,,,,,1,1
"""


def project(root: Path, config: str = CONFIG, csv_text: str = CSV) -> Path:
    (root / "config.yaml").write_text(config)
    folder = root / "labeled-data" / "v1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "CollectedData_Ann.csv").write_text(csv_text)
    for name in "abcd":
        write_png(folder / f"{name}.png", 32, 24)
    return root


def tracks(kset: KeypointSet) -> list[list[str | None]]:
    return [[i.track for i in s.instances] for s in kset.samples]


def test_individuals_become_instances_with_tracks_in_config_order(tmp_path):
    kset = read_dlc(project(tmp_path))
    assert kset.skeleton.names == ("nose", "left_ear", "right_ear")
    assert kset.skeleton.edges == ((0, 1), (0, 2))  # the edge to the feeder is dropped
    assert kset.skeleton.flip_pairs == ((1, 2),)
    assert tracks(kset) == [["mouse1"], ["mouse2"], ["mouse1", "mouse2"], []]
    np.testing.assert_array_equal(
        kset.samples[0].instances[0].keypoints, [[3, 4, 2], [5, 6, 2], [1, 2, 2]]
    )
    np.testing.assert_array_equal(
        kset.samples[1].instances[0].keypoints, [[12, 13, 2], [0, 0, 0], [10, 11, 2]]
    )
    inst = kset.samples[1].instances[0]
    assert inst.record == "labeled-data/v1/CollectedData_Ann.csv line 6, individual mouse2"
    assert kset.samples[1].record == "labeled-data/v1/CollectedData_Ann.csv line 6"
    # Unique body parts: counted (points) and named, never silently gone.
    assert kset.dropped == {UNIQUE: 3}
    assert any("[nose, feeder]" in w for w in kset.warnings)
    assert any("unique body parts feeder (3 labelled points" in w for w in kset.warnings)
    assert detect_format(tmp_path) == "dlc"


def test_check_reports_instances_per_image_and_tracks(tmp_path):
    report = validate(read_dlc(project(tmp_path)))
    assert report.per_image == {0: 1, 1: 2, 2: 1}
    assert report.tracks == {"mouse1": 2, "mouse2": 2}
    assert report.counts[UNIQUE] == 3


def test_csv_individuals_missing_from_config_are_a_warning(tmp_path):
    kset = read_dlc(project(tmp_path, CONFIG.replace("mouse2", "rat")))
    assert any("individuals mouse2 of the CSVs are not in config.yaml" in w for w in kset.warnings)


def test_project_with_only_unique_body_parts_reads_single_as_the_animal(tmp_path):
    config = CONFIG.replace("[nose, left_ear, right_ear]", "[]").replace(
        "[feeder]", "[nose, left_ear, right_ear]"
    )
    config = config.replace(", [nose, feeder]", "")
    text = CSV.replace("mouse1", "single").replace("mouse2", "single").replace(",feeder,feeder", "")
    rows = [",".join(line.split(",")[:9] if i < 4 else line.split(",")[:9]) for i, line in
            enumerate(text.splitlines())]  # fmt: skip
    kset = read_dlc(project(tmp_path, config, "\n".join(rows) + "\n"))
    assert kset.skeleton.names == ("nose", "left_ear", "right_ear")
    assert tracks(kset) == [[None], [], [None], []]
    assert kset.dropped == {}


@pytest.mark.parametrize(
    "config, message",
    [
        (CONFIG.replace("multianimalbodyparts: [nose, left_ear, right_ear]\n", ""),
         "'multianimalbodyparts' must be a list"),
        (CONFIG.replace("[feeder]", "[nose]"), "both unique and every animal's"),
        (CONFIG.replace("individuals: [mouse1, mouse2, mouse3]", "individuals: 3"),
         "'individuals' must be a list"),
        (CONFIG.replace("[nose, feeder]", "[nose, tail]"), "does not name two body parts"),
    ],
)  # fmt: skip
def test_bad_multi_animal_config(tmp_path, config, message):
    root = project(tmp_path, config)
    with pytest.raises(DataError, match=message) as err:
        read_dlc(root)
    assert err.value.file == str(root / "config.yaml")


@pytest.mark.parametrize(
    "edit, record, message",
    [
        (lambda t: t.replace(",mouse1,mouse1,mouse2", ",mouse1,mouse2,mouse2"), "line 4",
         "needs a name, an x and a y"),
        (lambda t: t.replace("individuals,,,", "individuals,,"), "line 4", "do not match"),
        (lambda t: t.replace("12,13", "12,"), "line 6", "'mouse2 nose' has only one of x and y"),
        (lambda t: t.replace("right_ear,right_ear,nose", "tail,tail,nose", 1), "line 2",
         "'tail' is not in config.yaml"),
    ],
)  # fmt: skip
def test_bad_multi_animal_csv_names_file_and_line(tmp_path, edit, record, message):
    root = project(tmp_path, csv_text=edit(CSV))
    with pytest.raises(DataError, match=message) as err:
        read_dlc(root)
    assert err.value.file.endswith("CollectedData_Ann.csv")
    assert err.value.record == record


# --------------------------------------------------------------------------- shared samples


def _expected(csv_path: Path) -> tuple[list[list[str | None]], int]:
    """Per data row, the individuals with a non-empty cell (None per row in single-animal
    files), and the number of labelled unique ('single') points, from the CSV's cells."""
    rows = list(csv.reader(csv_path.read_text().splitlines()))
    multi = rows[1][0] == "individuals"
    coords = rows[3 if multi else 2]
    first = coords.index("x")
    expected, unique = [], 0
    for row in rows[4 if multi else 3 :]:
        row = row + [""] * (len(coords) - len(row))
        if not multi:
            expected.append([None])
            continue
        cells: dict[str, list[str]] = {}
        for i in range(first, len(coords)):
            cells.setdefault(rows[1][i], []).append(row[i])
        expected.append([n for n, c in cells.items() if n != "single" and any(c)])
        unique += sum(1 for c in cells.get("single", [])[::2] if c)
    return expected, unique


def _sample_csvs() -> list[str]:
    folder = SHARED_DLC / "labeled-data" / "video"
    return sorted(p.name for p in folder.glob("*.csv")) or ["(absent)"]


@pytest.mark.parametrize("name", _sample_csvs())
def test_shared_dlc_samples_give_one_instance_per_labelled_individual(shared_data, name):
    path = shared_data / "sleap-samples" / "dlc" / "labeled-data" / "video" / name
    expected, unique = _expected(path)
    kset = load_dataset(path)
    assert tracks(kset) == expected
    assert kset.dropped.get(UNIQUE, 0) == unique
    assert kset.skeleton.names == ("A", "B", "C")
    assert all(s.image.is_file() for s in kset.samples)
    assert all(i.labelled.any() for s in kset.samples for i in s.instances if i.track)


def test_shared_multi_animal_config_project(shared_data):
    root = shared_data / "sleap-samples" / "dlc"
    kset = load_dataset(root / "madlc_230_config.yaml")
    expected, unique = _expected(root / "labeled-data" / "video" / "CollectedData_LM.csv")
    assert tracks(kset) == expected == [["Animal1", "Animal2"]] * 2 + [[], ["Animal1"]]
    assert kset.dropped == {UNIQUE: unique} == {UNIQUE: 4}
    assert kset.skeleton.edges == ((0, 1), (1, 2), (0, 2))
    np.testing.assert_array_equal(
        kset.samples[1].instances[1].keypoints, [[17, 18, 2], [0, 0, 0], [20, 21, 2]]
    )
    report = validate(kset)
    assert report.tracks == {"Animal1": 3, "Animal2": 2}


# --------------------------------------------------------------------------- writer


def _kset(root: Path, per_image: list[list[tuple[str | None, np.ndarray]]]) -> KeypointSet:
    samples = []
    for n, insts in enumerate(per_image):
        image = write_png(root / "src" / f"cam{n % 2}" / f"f{n}.png", 40, 30)
        samples.append(
            Sample(image, 40, 30, [Instance(kp, None, f"r{n}", t) for t, kp in insts], n + 1)
        )
    return KeypointSet(Skeleton(("a", "b", "c"), ((0, 1),)), samples, root / "src" / "x.json")


def test_writer_uses_the_multi_animal_layout_for_tracks(tmp_path):
    kp = np.array([[1.5, 2, 2], [3, 4, 1], [0, 0, 0]])
    other = np.array([[7.25, 8, 2], [0, 0, 0], [9, 10, 2]])
    kset = _kset(tmp_path, [[("b", kp), (None, other), ("a", kp + 2)], [(None, kp)]])
    out = write_dlc(kset, tmp_path / "dlc")
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["multianimalproject"] is True and cfg["bodyparts"] == "MULTI!"
    assert cfg["individuals"] == ["b", "a", "individual1"]
    assert cfg["multianimalbodyparts"] == ["a", "b", "c"] and cfg["uniquebodyparts"] == []
    back = read_dlc(out)
    assert tracks(back) == [["b", "a", "individual1"], ["individual1"]]
    np.testing.assert_array_equal(back.samples[0].instances[2].keypoints, other)
    np.testing.assert_array_equal(
        back.samples[0].instances[1].keypoints[:2], [[3.5, 4, 2], [5, 6, 2]]
    )
    assert back.samples[0].instances[1].track == "a"


def test_writer_keeps_the_single_animal_layout_without_tracks(tmp_path, toy_kset):
    out = write_dlc(toy_kset, tmp_path / "dlc")
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["multianimalproject"] is False and "individuals" not in cfg
    assert tracks(read_dlc(out)) == [[None]] * 3


@pytest.mark.parametrize("name, message", [("x", "names 2 instances"), ("single", "rename it")])
def test_writer_refuses_what_deeplabcut_cannot_hold(tmp_path, name, message):
    kp = np.array([[1.0, 2, 2], [3, 4, 2], [5, 6, 2]])
    kset = _kset(tmp_path, [[(name, kp), ("x", kp)]])
    with pytest.raises(DataError, match=message):
        write_dlc(kset, tmp_path / "dlc")


COORD = st.floats(0, 39, allow_nan=False).map(lambda v: round(v, 3))
POINT = st.tuples(COORD, COORD, st.sampled_from([0, 1, 2]))
INSTANCE = st.lists(POINT, min_size=3, max_size=3).filter(lambda p: any(v for *_, v in p))
IMAGE = st.lists(st.tuples(st.sampled_from(["m1", "m2", "m3", None]), INSTANCE), max_size=3)
SLOW_IO = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@SLOW_IO
@given(images=st.lists(IMAGE, min_size=1, max_size=4))
def test_round_trip_keeps_every_instance_and_track(images):
    images = [list({t if t else object(): (t, p) for t, p in img}.values()) for img in images]
    with tempfile.TemporaryDirectory() as tmp:
        kset = _kset(Path(tmp), [[(t, np.array(p, float)) for t, p in img] for img in images])
        back = read_dlc(write_dlc(kset, Path(tmp) / "dlc"))
    assert len(back) == len(kset)
    by_name = {s.image.name: s for s in back.samples}  # grouped by folder ("video") now
    for sa in kset.samples:
        sb = by_name[sa.image.name]
        want = {i.track for i in sa.instances if i.track}
        got = {i.track: i for i in sb.instances if i.labelled.any()}  # see the writer
        assert want <= set(got) and len(got) == len(sa.instances)
        spare = iter(sorted(set(got) - want))  # untracked ones: individual1, individual2, ...
        for inst in sa.instances:
            other = got[inst.track] if inst.track else got[next(spare)]
            lab = inst.keypoints[:, 2] > 0
            np.testing.assert_array_equal(other.keypoints[:, 2], np.where(lab, 2, 0))
            np.testing.assert_array_equal(other.keypoints[lab, :2], inst.keypoints[lab, :2])
