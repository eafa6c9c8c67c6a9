"""Looking again when a frame holds fewer animals than ``max_instances``: the locator's next
peaks and, in a video, where an animal was in the frames before (stub locator and pose model)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from keypointer.config import BOX_MARGIN
from keypointer.inference import pipeline
from keypointer.inference.locate import new_poses
from keypointer.inference.pipeline import LocatorStage, Pipeline
from keypointer.inference.sources import Frame, Source
from keypointer.skeleton import Skeleton

SIZE = 128  # the images and the locator's input: no letterbox bars
A = (10, 10)  # top-left corners of the two bright 20 x 20 "animals"
B = (90, 80)
CA, CB = (A[0] + 9.5, A[1] + 9.5), (B[0] + 9.5, B[1] + 9.5)  # their centres (pixel centres)
SPREAD = np.array([[-1.5, -1.0], [0.0, 0.0], [1.5, 1.0]])  # a pose: x brightness spread


class Peaks(nn.Module):
    """A locator finding fixed boxes (input px) with fixed centre scores; ``frames``: one
    list of peaks per call instead, in order (a video whose animals it loses)."""

    input_size = (SIZE, SIZE)

    def __init__(self, *frames: list[tuple[list[float], float]]):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))
        self.frames = list(frames)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        peaks = self.frames.pop(0) if len(self.frames) > 1 else self.frames[0]
        boxes = torch.tensor([b for b, _ in peaks], dtype=torch.float32)
        scores = torch.tensor([s for _, s in peaks], dtype=torch.float32)
        return boxes.expand(len(x), -1, -1), scores.expand(len(x), -1)


class Centroid:
    """A pose model: three points about the centroid of a crop's brightness, as far apart as it
    spreads (an animal's pose whatever the crop's scale), sure (0.9) when it holds an animal's
    worth, unsure (0.05) about the crop's centre when it does not."""

    skeleton = Skeleton(("left", "centre", "right"), sigmas=(0.1, 0.1, 0.1))
    input_size = (32, 32)
    margin = BOX_MARGIN

    def __init__(self) -> None:
        self.crops = 0

    def __call__(self, crops: np.ndarray, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        self.crops += len(crops)
        kp, scores = [], []
        for crop in crops:
            weight = crop[..., 0].astype(np.float64)
            sure = weight.sum() > 20 * 255
            xy = np.stack(np.indices(weight.shape)[::-1], -1).reshape(-1, 2)  # (x, y) of pixels
            w = weight.reshape(-1, 1) / max(weight.sum(), 1.0)
            centre = (xy * w).sum(0) if sure else np.array([15.5, 15.5])
            spread = np.sqrt(((xy - centre) ** 2 * w).sum(0)) if sure else np.ones(2)
            kp.append(centre + SPREAD * spread)
            scores.append(np.full(3, 0.9 if sure else 0.05))
        return np.array(kp), np.array(scores)


def _image(*corners: tuple[int, int]) -> np.ndarray:
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    for x, y in corners:
        image[y : y + 20, x : x + 20] = 255
    return image


def _pipeline(*peaks, max_instances=None) -> Pipeline:
    stage = LocatorStage(Peaks(*peaks), threshold=0.1, box_ratio=(1.3, 1.3), min_pose_score=0.5)
    return Pipeline(Centroid(), stage, batch_size=4, max_instances=max_instances)


def _box(corner: tuple[int, int]) -> list[float]:
    return [corner[0] - 2.0, corner[1] - 2.0, 24.0, 24.0]


def _centres(kp: np.ndarray) -> np.ndarray:
    """(M, 2) the poses' middle points, by x: the animals' centres (the crops blur edges)."""
    return kp[np.argsort(kp[:, 1, 0]), 1]


def _at(kp: np.ndarray, *centres: tuple[float, float]) -> bool:
    return len(kp) == len(centres) and np.allclose(_centres(kp), centres, atol=0.6)


PEAKS = [
    (_box(A), 0.9),  # found
    ([60.0, 20.0, 20.0, 20.0], 0.05),  # background under the threshold: an unsure pose
    ([B[0] - 4.0, B[1], 24.0, 24.0], 0.04),  # the second animal under the threshold
    ([A[0] - 1.0, A[1] - 1.0, 24.0, 24.0], 0.06),  # the first animal again
]


def test_the_locators_next_peaks_find_the_second_animal_once_and_only_with_max_instances():
    image = _image(A, B)
    today = _pipeline(PEAKS).run_image(image)
    assert _at(today.keypoints, CA)  # A only
    assert len(today.located) == 1
    pipe = _pipeline(PEAKS, max_instances=2)
    both = pipe.run_image(image)
    assert _at(both.keypoints, CA, CB)
    assert both.scores.min() == pytest.approx(0.9)
    assert len(both.located) == 2  # the locator's box and the one found again
    assert pipe.with_options(look_again=False).run_image(image).keypoints.shape == (1, 3, 2)


def test_no_second_look_when_the_frame_holds_all_it_should():
    pipe = _pipeline(PEAKS, max_instances=1)
    pred = pipe.run_image(_image(A, B))
    assert _at(pred.keypoints, CA)
    assert pipe.pose.crops == 2  # the found box, twice: no next peak was posed


def test_with_max_instances_the_best_boxes_are_posed_first_and_the_rest_only_when_needed():
    sure = [(_box(A), 0.9), ([A[0] - 1.0, A[1] - 1.0, 24.0, 24.0], 0.8), (_box(B), 0.7)]
    image = _image(A, B)
    every = _pipeline(sure)  # no known number of animals: every box over the threshold posed
    assert _at(every.run_image(image).keypoints, CA, CB)
    assert every.pose.crops == 5  # 3 boxes, then 2 again (A's duplicate dropped)
    one = _pipeline(sure, max_instances=1)
    assert _at(one.run_image(image).keypoints, CA)
    assert one.pose.crops == 2  # the best box, twice
    two = _pipeline(sure, max_instances=2)  # the two best are A twice: B is found again
    assert _at(two.run_image(image).keypoints, CA, CB)


def test_a_video_looks_where_an_animal_was_when_the_locator_loses_it(monkeypatch):
    video = Source(Path("clip.mp4"), "video")
    frames = [Frame(video, _image(A, B), n) for n in range(3)]
    frames[2] = Frame(video, _image(A, (B[0] - 4, B[1] + 3)), 2)  # B moved a little
    lose_b = [(_box(A), 0.9), (_box(B), 0.01)]  # under the floor: only a video finds it
    peaks = [(_box(A), 0.9), (_box(B), 0.9)], lose_b, lose_b
    off = [p.keypoints for p in _pipeline(*peaks, max_instances=2).run(frames)]
    assert [len(kp) for kp in off] == [2, 1, 1]  # off by default
    monkeypatch.setattr(pipeline, "LOOK_AGAIN_FRAMES", 5)
    found = [p.keypoints for p in _pipeline(*peaks, max_instances=2).run(frames)]
    assert _at(found[0], CA, CB) and _at(found[1], CA, CB)
    assert _at(found[2], CA, (CB[0] - 4, CB[1] + 3))
    today = [p.keypoints for p in _pipeline(*peaks).run(frames)]
    assert [len(kp) for kp in today] == [2, 1, 1]
    images = [Frame(f.source, f.image) for f in frames]  # not a video: nothing to follow
    alone = [p.keypoints for p in _pipeline(*peaks, max_instances=2).run(images)]
    assert [len(kp) for kp in alone] == [2, 1, 1]


def test_new_poses_skips_a_pose_found_twice_and_unsure_ones():
    a = np.array([[10.0, 10.0], [20.0, 25.0], [30.0, 40.0]])
    cands = np.stack([a + 0.3, a + [0.0, 60.0], a + [0.5, 60.0], a + [80.0, 0.0]])
    scores = np.array([0.95, 0.8, 0.9, 0.2])[:, None] * np.ones((4, 3))
    sigmas = [0.05] * 3
    assert new_poses(a[None], cands, scores, sigmas, min_score=0.5).tolist() == [2]
    assert new_poses(a[None], cands, scores, sigmas, most=2).tolist() == [2, 3]
    assert new_poses(a[None], cands, scores, sigmas, most=0).tolist() == []
    # no candidate left (every look-again crop's first pose was dropped): nothing to add
    assert new_poses(a[None], np.zeros((0, 3, 2)), np.zeros((0, 3)), sigmas).tolist() == []
