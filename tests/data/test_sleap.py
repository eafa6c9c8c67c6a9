"""SLEAP .slp files through sleap-io: frames of videos as samples, tracks, user labels over
predictions, and conversion to the other formats (frames written as PNG files)."""

from __future__ import annotations

import logging
import sys
from collections import Counter

import cv2
import numpy as np
import pytest
from helpers import decoded_frames, numbered_video

from keypointer.data.check import NO_INSTANCES, validate
from keypointer.data.formats import convert, detect_format, load_dataset
from keypointer.data.images import read_image
from keypointer.data.sleap import PREDICTED, PREDICTED_FRAMES, read_sleap
from keypointer.errors import DataError

PREDICTIONS = "sleap-samples/hdf5_format_v1/centered_pair_predictions.slp"


@pytest.fixture(scope="module")
def sio():
    return pytest.importorskip("sleap_io")


@pytest.fixture
def slp(sio, tmp_path):
    """A labels file: frame 3 with a user instance (track mouse1) and a prediction, frame 5
    with a user instance without track, frame 7 predictions only, frame 9 empty."""
    clip = numbered_video(tmp_path / "videos" / "clip.mp4", frames=12)
    video = sio.Video.from_filename(str(clip))
    skeleton = sio.Skeleton(
        ["head", "earL", "earR"], edges=[("head", "earL")], symmetries=[("earL", "earR")]
    )

    def user(points, track=None):
        return sio.Instance.from_numpy(np.array(points, float), skeleton=skeleton, track=track)

    def predicted(points):
        points = np.array(points, float)
        return sio.PredictedInstance.from_numpy(
            points, skeleton=skeleton, point_scores=np.ones(len(points)), score=0.5
        )

    mouse = sio.Track("mouse1")
    frames = [
        sio.LabeledFrame(video=video, frame_idx=3, instances=[
            user([[10, 12], [14.5, 9], [np.nan, np.nan]], mouse), predicted([[1, 1]] * 3)]),
        sio.LabeledFrame(video=video, frame_idx=5, instances=[user([[30, 20], [33, 18], [27, 18]])]),
        sio.LabeledFrame(video=video, frame_idx=7, instances=[predicted([[2, 2]] * 3)]),
        sio.LabeledFrame(video=video, frame_idx=9, instances=[]),
    ]  # fmt: skip
    path = tmp_path / "labels" / "labels.slp"
    path.parent.mkdir()
    sio.save_slp(sio.Labels(frames), str(path))
    return path


def test_user_labels_with_tracks_and_frames(slp):
    kset = read_sleap(slp)
    assert detect_format(slp) == "sleap"
    assert kset.skeleton.names == ("head", "earL", "earR")
    assert kset.skeleton.edges == ((0, 1),) and kset.skeleton.flip_pairs == ((1, 2),)
    assert [s.frame for s in kset.samples] == [3, 5, 9]
    assert all(s.image == slp.parent.parent / "videos" / "clip.mp4" for s in kset.samples)
    assert (kset.samples[0].width, kset.samples[0].height) == (64, 48)
    assert [[i.track for i in s.instances] for s in kset.samples] == [["mouse1"], [None], []]
    np.testing.assert_array_equal(
        kset.samples[0].instances[0].keypoints, [[10, 12, 2], [14.5, 9, 2], [0, 0, 0]]
    )
    assert kset.dropped == {PREDICTED: 1, PREDICTED_FRAMES: 1}
    assert kset.samples[0].record == "video 0 (clip.mp4) frame 3"
    assert kset.warnings == []
    frames = decoded_frames(slp.parent.parent / "videos" / "clip.mp4")
    for sample in kset.samples[::-1]:  # backwards: every read seeks
        np.testing.assert_array_equal(sample.read(), frames[sample.frame])
    report = validate(kset)
    assert report.per_image == {0: 1, 1: 2} and report.tracks == {"mouse1": 1}
    assert report.counts[NO_INSTANCES] == 1


def test_a_moved_video_is_found_by_name_or_under_images(slp, tmp_path):
    moved = tmp_path / "elsewhere" / "clip.mp4"
    moved.parent.mkdir()
    (slp.parent.parent / "videos" / "clip.mp4").rename(moved)
    kset = read_sleap(slp)
    assert not kset.samples[0].image.exists() and kset.samples[0].width == 0
    with pytest.raises(DataError, match="not found"):
        validate(kset, check_images=False)
    assert read_sleap(slp, images=moved.parent).samples[0].image == moved


def test_image_sequence_videos_give_image_files(sio, tmp_path):
    files = [tmp_path / f"img{i}.png" for i in range(3)]
    for i, f in enumerate(files):
        cv2.imwrite(str(f), np.full((20, 30, 3), 40 * i, np.uint8))
    video = sio.Video.from_filename([str(f) for f in files])
    skeleton = sio.Skeleton(["a", "b"])
    inst = sio.Instance.from_numpy(np.array([[1.0, 2], [3, 4]]), skeleton=skeleton)
    path = tmp_path / "seq.slp"
    sio.save_slp(sio.Labels([sio.LabeledFrame(video=video, frame_idx=2, instances=[inst])]), path)
    sample = read_sleap(path).samples[0]
    assert (sample.image, sample.frame) == (files[2], None)
    np.testing.assert_array_equal(sample.read(), read_image(files[2]))


def test_frames_embedded_in_the_file_are_refused_with_a_reason(sio, slp, tmp_path):
    packed = tmp_path / "labels.pkg.slp"
    sio.save_slp(sio.load_slp(str(slp)), str(packed), embed="user")
    with pytest.raises(DataError, match="stored inside an HDF5 file"):
        read_sleap(packed)


def test_two_skeletons_are_refused(sio, slp):
    labels = sio.load_slp(str(slp))
    other = sio.Skeleton(["x", "y", "z"], name="other")
    labels.skeletons.append(other)
    lf = labels.labeled_frames[1]
    lf.instances.append(sio.Instance.from_numpy(np.ones((3, 2)), skeleton=other))
    sio.save_slp(labels, str(slp))
    with pytest.raises(DataError, match="2 skeletons"):
        read_sleap(slp)


def test_damaged_or_missing_files(sio, tmp_path):
    bad = tmp_path / "bad.slp"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(200)))
    with pytest.raises(DataError, match="not a readable SLEAP file"):
        load_dataset(bad)
    with pytest.raises(DataError, match="no such file"):
        read_sleap(tmp_path / "none.slp")


def test_a_missing_extra_is_named(tmp_path, monkeypatch):
    path = tmp_path / "labels.slp"
    path.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "sleap_io", None)  # as if not installed
    with pytest.raises(DataError, match=r"pip install 'keypointer\[sleap\]'") as err:
        load_dataset(path)
    assert err.value.file == str(path)


def test_frame_past_the_end_is_fatal_when_images_are_read(slp, sio):
    labels = sio.load_slp(str(slp))
    labels.labeled_frames[1].frame_idx = 40  # the video has 12
    sio.save_slp(labels, str(slp))
    kset = read_sleap(slp)
    with pytest.raises(DataError, match="cannot decode frame 40") as err:
        validate(kset)
    assert err.value.record == "video 0 (clip.mp4) frame 40"


@pytest.mark.parametrize("to, dst", [("coco", "out/a.json"), ("csv", "out/a.csv"), ("dlc", "d")])
def test_convert_writes_frames_and_keeps_tracks(slp, tmp_path, to, dst):
    out = convert(slp, tmp_path / dst, to=to)
    back = load_dataset(out)
    shown = [s for s in back.samples if any(i.labelled.any() for i in s.instances)]
    assert [[i.track for i in s.instances] for s in shown] == [
        ["mouse1"],
        ["individual1"] if to == "dlc" else [None],  # DeepLabCut names every individual
    ]
    frames = decoded_frames(slp.parent.parent / "videos" / "clip.mp4")
    for sample, index in zip(shown, (3, 5), strict=True):
        assert sample.frame is None and sample.image.name == f"img{index:06d}.png"
        np.testing.assert_array_equal(read_image(sample.image), frames[index])
    if to != "dlc":
        assert shown[0].image.parent == tmp_path / "out" / "a_frames" / "clip"
        with pytest.raises(DataError, match="folder for the video frames exists"):
            convert(slp, tmp_path / dst, to=to, overwrite=True)


def test_convert_to_yolo_warns_that_tracks_are_dropped(slp, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="keypointer"):
        out = convert(slp, tmp_path / "y", to="yolo")
    assert "no identity: the tracks of 1 instances (1 tracks) are not written" in caplog.text
    assert "left out 1 predicted instances beside user labels" in caplog.text
    assert load_dataset(out).num_instances == 2
    assert not list(tmp_path.glob("**/.frames-*"))  # the temporary frames are gone


def test_a_failed_convert_leaves_no_frames_folder(slp, tmp_path, monkeypatch):
    import keypointer.data.formats as formats

    def broken(*args, **kwargs):
        raise DataError("disk full")

    monkeypatch.setattr(formats, "write_coco", broken)
    with pytest.raises(DataError, match="disk full"):
        convert(slp, tmp_path / "out" / "a.json", to="coco")
    assert list((tmp_path / "out").iterdir()) == []


def test_shared_sleap_predictions(shared_data, sio):
    path = shared_data / PREDICTIONS
    kset = load_dataset(path)
    assert len(kset) == 1100 and kset.num_instances == 2274
    assert Counter(len(s.instances) for s in kset.samples) == {2: 1034, 3: 59, 4: 6, 5: 1}
    assert len(kset.tracks) == 27 and kset.tracks["1"] == kset.tracks["2"] == 1100
    assert kset.skeleton.num_keypoints == 24 and len(kset.skeleton.edges) == 23
    assert (4, 5) in kset.skeleton.flip_pairs  # wingL/wingR: no symmetries stored, guessed
    assert any("only predicted instances" in w for w in kset.warnings)
    first = kset.samples[0]
    assert first.image == shared_data / "sleap-samples/json_format_v1/centered_pair_low_quality.mp4"
    assert (first.frame, first.width, first.height) == (0, 384, 384)
    # The same numbers sleap-io reads, with NaN (not found) as unlabelled.
    labels = sio.load_slp(str(path), open_videos=False)
    for sample, lf in zip(kset.samples[::97], labels.labeled_frames[::97], strict=True):
        assert sample.frame == lf.frame_idx
        for inst, theirs in zip(sample.instances, lf.instances, strict=True):
            xy = theirs.numpy()
            seen = ~np.isnan(xy).any(1)
            np.testing.assert_array_equal(inst.keypoints[:, 2], np.where(seen, 2, 0))
            np.testing.assert_array_equal(inst.keypoints[seen, :2], xy[seen])
            assert inst.track == theirs.track.name
    frames = decoded_frames(first.image, limit=301)
    for i in (300, 3, 200, 4):
        np.testing.assert_array_equal(kset.samples[i].read(), frames[kset.samples[i].frame])


@pytest.mark.parametrize("writer", ["write_coco", "write_csv", "write_dlc", "write_yolo"])
def test_writers_refuse_video_frames_and_name_the_sample(slp, tmp_path, writer):
    import keypointer.data.formats as formats

    with pytest.raises(DataError, match="needs image files, and this is frame 3 of a video") as err:
        getattr(formats, writer)(read_sleap(slp), tmp_path / "out" / "x")
    assert err.value.record == "video 0 (clip.mp4) frame 3"
    assert not (tmp_path / "out").exists()
