from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypointer.data.csv_format import read_csv, write_csv
from keypointer.data.formats import convert, detect_format, load_dataset
from keypointer.errors import DataError

CSV = """\
image,head_x,head_y,left_paw_x,left_paw_y,right_paw_x,right_paw_y,right_paw_v
frames/1.png,10,20,30,40,,,
frames/2.png,11,21,,,50,60,1
frames/1.png,12.5,22.5,1,2,3,4,2
"""


def write(tmp_path, text=CSV, name="labels.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_rows_as_instances_grouped_by_image(tmp_path):
    path = write(tmp_path)
    assert detect_format(path) == "csv"
    kset = load_dataset(path)
    assert kset.skeleton.names == ("head", "left_paw", "right_paw")
    assert kset.skeleton.flip_pairs == ((1, 2),)
    assert kset.skeleton.edges == ()
    assert [s.id for s in kset.samples] == ["frames/1.png", "frames/2.png"]
    assert kset.samples[0].image == tmp_path / "frames/1.png"
    first, third = kset.samples[0].instances
    np.testing.assert_array_equal(first.keypoints, [[10, 20, 2], [30, 40, 2], [0, 0, 0]])
    np.testing.assert_array_equal(third.keypoints[0], [12.5, 22.5, 2])
    assert (first.record, third.record) == ("line 2", "line 4")
    assert first.bbox is None
    np.testing.assert_array_equal(kset.samples[1].instances[0].keypoints[2], [50, 60, 1])
    assert load_dataset(path, images=tmp_path / "x").samples[0].image == tmp_path / "x/frames/1.png"


def test_bom_and_crlf_are_fine(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CSV.replace("\n", "\r\n").encode())
    assert read_csv(path).skeleton.names == ("head", "left_paw", "right_paw")


@pytest.mark.parametrize(
    "text, record, message",
    [
        ("img,a_x,a_y\nf.png,1,2\n", "line 1", "first column must be 'image'"),
        ("image,a_x,a_y,notes\nf.png,1,2,hi\n", "line 1", "'notes'"),
        ("image,a_x\nf.png,1\n", "line 1", "needs both a_x and a_y"),
        ("image,a_x,a_y\nf.png,1,\n", "line 2", "only one of x and y"),
        ("image,a_x,a_y\nf.png,1,2\ng.png,1,two\n", "line 3", "'a_y'"),
        ("image,a_x,a_y\n,1,2\n", "line 2", "image cell is empty"),
        ("image,a_x,a_y\nf.png,1,2,3\n", "line 2", "4 cells"),
        ("image,a_x,a_y,,\nf.png,1,2,,3\n", "line 2", "5 cells; the header has 3"),
        ("image,,a_x,a_y\nf.png,,1,2\n", "line 1", "column ''"),
        ("image;a_x;a_y\nf.png;1,5;2\n", "line 2", "'1,5' is not a number \\(write decimals"),
        ("image,a_x,a_y,a_v\nf.png,,,2\n", "line 2", "no x, y"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, text, record, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as err:
        read_csv(path)
    assert err.value.file == str(path)
    assert err.value.record == record


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("image,t\xeate_x,t\xeate_y\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8") as err:
        read_csv(path)
    assert err.value.record == "line 1"


def test_round_trip(tmp_path, toy_kset, same_points):
    path = write_csv(toy_kset, tmp_path / "src" / "out.csv")
    assert (
        path.read_text()
        .splitlines()[1]
        .startswith("cam1/a.png,10.25,12.5,2,14.0,10.0,2,6.0,10.0,1,,,0")
    )
    back = read_csv(path)
    same_points(toy_kset, back, atol=0)
    assert back.skeleton.names == toy_kset.skeleton.names
    assert convert(path, tmp_path / "c", to="csv") == tmp_path / "c" / "labels.csv"
    with pytest.raises(DataError, match="overwrite"):
        convert(path, path, to="csv")


@settings(max_examples=25, deadline=None)
@given(
    sep=st.sampled_from([",", ";", "\t"]),
    trailing=st.integers(0, 3),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_separators_and_trailing_empty_columns_read_alike(tmp_path_factory, sep, trailing, newline):
    """Spreadsheets write ';' (decimal-comma locales) or tabs, and empty columns at the end."""
    tmp = tmp_path_factory.mktemp("dialect")
    want = read_csv(write(tmp))
    lines = [line.replace(",", sep) + sep * trailing for line in CSV.splitlines()]
    got = read_csv(write(tmp, newline.join(lines) + newline, "dialect.csv"))
    assert got.skeleton == want.skeleton
    assert [s.id for s in got.samples] == [s.id for s in want.samples]
    for a, b in zip(got.samples, want.samples, strict=True):
        for ia, ib in zip(a.instances, b.instances, strict=True):
            np.testing.assert_array_equal(ia.keypoints, ib.keypoints)
            assert ia.record == ib.record


def test_convert_refuses_an_existing_output_file_unless_told(tmp_path, toy_kset):
    src = write_csv(toy_kset, tmp_path / "src" / "in.csv")
    for name in ("mine.json", "mine.csv"):
        dst = tmp_path / name
        dst.write_text("my own labels")
        with pytest.raises(DataError, match="exists; pass --overwrite") as err:
            convert(src, dst, to="coco" if name.endswith("json") else "csv")
        assert err.value.file == str(dst)
        assert dst.read_text() == "my own labels"
        convert(src, dst, to="coco" if name.endswith("json") else "csv", overwrite=True)
        assert load_dataset(dst).num_instances == toy_kset.num_instances
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.csv", "mine.json", "src"]
    with pytest.raises(DataError, match="refusing to overwrite an input"):
        convert(src, src, to="csv", overwrite=True)
