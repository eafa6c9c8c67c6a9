"""``keypointer predict`` writes over no input (whatever the spelling), no file of an earlier
run without ``--overwrite``, takes no earlier output as an input, and refuses a folder in an
output file's place, all before the model loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import cli, frame_count, numbered_video

import keypointer.commands.predict as predict_module
from keypointer.errors import DataError
from keypointer.inference.runners import FramePrediction
from keypointer.inference.sources import Frame, Source
from keypointer.inference.writers import Outputs
from keypointer.skeleton import Skeleton

FRAMES = 6


def predict(checkpoint, *args) -> int:
    return cli("predict", checkpoint, *args, "--device", "cpu", "--quiet")


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if the model is loaded: the refusal must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr(predict_module, "load_pipeline", refuse)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- inputs


def test_video_predicted_into_its_own_folder_is_kept(checkpoint, tmp_path):
    """The issue's case: ``predict model.pt clip/video.mp4 --out clip`` replaced the video."""
    clip = tmp_path / "clip"
    video = numbered_video(clip / "video.mp4", FRAMES)
    before = video.read_bytes()
    assert predict(checkpoint, video, "--out", clip) == 0
    assert video.read_bytes() == before
    assert frame_count(clip / "drawn" / "video.mp4") == FRAMES  # the drawn copy, beside it
    assert (clip / "video.csv").is_file()


def test_an_input_is_never_written_over_even_with_overwrite(checkpoint, tmp_path, capsys, no_model):
    """An image inside ``out/drawn/``, given by name: its drawn copy would be itself."""
    out = tmp_path / "out"
    image = out / "drawn" / "a.png"
    image.parent.mkdir(parents=True)
    cv2.imwrite(str(image), np.full((48, 64, 3), 80, np.uint8))
    before = image.read_bytes()
    assert predict(checkpoint, image, "--out", out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert f"{image}: refusing to overwrite an input file" in err and "Traceback" not in err
    assert image.read_bytes() == before
    assert sorted(p.name for p in out.rglob("*")) == ["a.png", "drawn"]


def test_an_input_under_another_spelling_is_never_written_over(
    checkpoint, tmp_path, capsys, no_model
):
    """``out/drawn`` a symlink to the video's folder: drawn/clip.mp4 *is* the input."""
    video = numbered_video(tmp_path / "videos" / "clip.mp4", FRAMES)
    before = video.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    (out / "drawn").symlink_to(tmp_path / "videos")
    assert predict(checkpoint, video, "--out", out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite an input file" in err and str(video) in err
    assert video.read_bytes() == before


def test_writing_refuses_the_input_it_was_made_from(tmp_path):
    """The safety net behind the plan: Outputs itself never writes a drawn video over its
    source, whatever planned (or did not plan) the names."""
    out = tmp_path / "out"
    video = numbered_video(out / "drawn" / "clip.mp4", FRAMES)
    before = video.read_bytes()
    skeleton = Skeleton(("a", "b"), ((0, 1),))
    outputs = Outputs(out, skeleton, draw=True)
    image = np.zeros((48, 64, 3), np.uint8)
    for n in range(FRAMES):
        frame = Frame(Source(video, "video"), image, number=n, fps=10.0, time=n / 10)
        kp, sc = np.full((1, 2, 2), 20.0), np.full((1, 2), 0.9)
        outputs.add(FramePrediction(frame, kp, sc, np.full(1, 0.9)))
    with pytest.raises(DataError, match="refusing to overwrite an input file"):
        outputs.close()
    assert video.read_bytes() == before


# --------------------------------------------------------------------------- earlier runs


def test_outputs_inside_the_input_folder_are_not_predicted_again(
    checkpoint, synth, tmp_path, caplog
):
    """``predict m.pt imgs/ --out imgs/out`` twice: the second run predicts the 3 images,
    not also the 3 drawn copies the first one wrote."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name in ("000000.png", "000001.png", "000002.png"):
        shutil.copy(synth.parent / "images" / name, imgs / name)
    out = imgs / "out"
    assert predict(checkpoint, imgs, "--out", out) == 0
    assert len(list((out / "drawn").iterdir())) == 3
    caplog.clear()
    assert predict(checkpoint, imgs, "--out", out, "--overwrite") == 0
    names = [Path(im["file_name"]).name for im in json.loads((out / "images.json").read_text())]
    assert names == ["000000.png", "000001.png", "000002.png"]
    assert sorted(p.name for p in (out / "drawn").iterdir()) == names  # no 000000-2.png
    lines = [r.getMessage() for r in caplog.records if "output folder" in r.getMessage()]
    assert lines == [f"{out}: 3 images/videos inside the output folder were skipped "
                     "(outputs are not inputs)"]  # fmt: skip


def test_a_second_run_refuses_to_replace_the_first_runs_files(checkpoint, tmp_path, capsys):
    """Two videos with one stem, in two runs: the second would have replaced same.csv."""
    first, second = (
        numbered_video(tmp_path / "a" / "same.mp4", FRAMES),
        numbered_video(tmp_path / "b" / "same.mp4", FRAMES),
    )
    out = tmp_path / "out"
    assert predict(checkpoint, first, "--out", out) == 0
    before = snapshot(out)
    assert "same.csv" in before and "drawn/same.mp4" in before
    capsys.readouterr()
    assert predict(checkpoint, second, "--out", out) == 2
    err = capsys.readouterr().err
    assert "the output file exists; pass --overwrite to replace it" in err
    assert str(out / "predictions.json") in err and "Traceback" not in err
    assert snapshot(out) == before
    assert predict(checkpoint, second, "--out", out, "--overwrite") == 0
    images = json.loads((out / "images.json").read_text())
    assert {im["file_name"] for im in images} == {str(second)}


def test_the_refusal_comes_before_the_model_loads(checkpoint, tmp_path, capsys, no_model):
    video = numbered_video(tmp_path / "clip.mp4", FRAMES)
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.frames.csv").write_text("mine")
    assert predict(checkpoint, video, "--out", out, "--no-draw") == 2
    assert f"{out / 'clip.frames.csv'}: the output file exists" in capsys.readouterr().err
    assert (out / "clip.frames.csv").read_text() == "mine"


def test_one_run_still_names_two_videos_with_one_stem_apart(checkpoint, tmp_path):
    first, second = (
        numbered_video(tmp_path / "a" / "same.mp4", FRAMES),
        numbered_video(tmp_path / "b" / "same.mp4", FRAMES),
    )
    out = tmp_path / "out"
    assert predict(checkpoint, first, second, "--out", out) == 0
    assert (out / "same.csv").is_file() and (out / "same-2.csv").is_file()
    assert frame_count(out / "drawn" / "same.mp4") == frame_count(out / "drawn" / "same-2.mp4")
    assert frame_count(out / "drawn" / "same.mp4") == FRAMES


# --------------------------------------------------------------------------- folders


@pytest.mark.parametrize(
    "taken, kind",
    [("predictions.json", "dir"), ("images.json", "dir"), ("clip.csv", "dir"),
     ("clip.frames.csv", "dir"), ("drawn", "file"), ("drawn/clip.mp4", "dir")],
)  # fmt: skip
def test_a_folder_in_an_output_files_place_is_refused_up_front(
    checkpoint, tmp_path, capsys, no_model, taken, kind
):
    video = numbered_video(tmp_path / "clip.mp4", FRAMES)
    out = tmp_path / "out"
    (out / taken).parent.mkdir(parents=True, exist_ok=True)
    if kind == "dir":
        (out / taken).mkdir()
    else:
        (out / taken).write_text("")
    assert predict(checkpoint, video, "--out", out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out / taken}") and "Traceback" not in err
    assert ("is a folder" if kind == "dir" else "it is a file") in err
