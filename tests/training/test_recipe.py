"""The recipe's rules: sizes from the data, steps with a floor and a cap, user values win."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keypointer.config import Config, load_config
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.skeleton import Skeleton
from keypointer.training import recipe


def _kset(
    n: int, spacing: float, size=(640, 480), boxes=False, turn=0.0, flip=False
) -> KeypointSet:
    """n images, each one instance of 4 keypoints on a line ``spacing`` px apart, turned by
    up to ``turn`` degrees from image to image."""
    rng = np.random.default_rng(0)
    names = ("a_left", "a_right", "b", "c") if flip else ("a", "b", "c", "d")
    samples = []
    for i in range(n):
        angle = np.radians(rng.uniform(-turn, turn))
        steps = np.arange(4)[:, None] * spacing * np.array([[np.cos(angle), np.sin(angle)]])
        xy = np.array([size[0] / 3, size[1] / 2]) + steps
        kp = np.concatenate([xy, np.full((4, 1), 2.0)], axis=1)
        bbox = (xy[:, 0].min() - 5, xy[:, 1].min() - 5, 3 * spacing + 10, 3 * spacing + 10)
        inst = Instance(kp, bbox if boxes else None, record=f"row {i}")
        samples.append(Sample(Path(f"img{i}.png"), size[0], size[1], [inst], id=i))
    pairs = ((0, 1),) if flip else ()
    return KeypointSet(Skeleton(names, flip_pairs=pairs), samples)


def _values(cfg: Config, ks: KeypointSet, device="cpu") -> dict:
    return {c.field: c.value for c in recipe.plan(cfg, ks, device)}


def test_close_keypoints_get_a_larger_input_within_the_budget():
    far = _values(Config(), _kset(50, spacing=80))
    near = _values(Config(), _kset(50, spacing=20))
    assert far["model.input_size"] == (192, 160)  # the floor; 4:3 kept in multiples of 32
    assert near["model.input_size"] == (384, 288)  # capped on the CPU ...
    assert _values(Config(), _kset(50, spacing=10))["model.input_size"] == (384, 288)
    assert _values(Config(), _kset(50, spacing=10), "cuda")["model.input_size"] == (512, 384)


def test_input_never_exceeds_the_crop_resolution_much():
    small = _values(Config(), _kset(50, spacing=5, size=(100, 100)))
    assert small["model.input_size"] == (192, 192)  # the floor, not 384


def test_boxed_instances_size_from_their_boxes():
    values = _values(Config(), _kset(50, spacing=30, boxes=True))
    # box 100x100 px grown by 1.25 -> a square crop; 30 px apart needs 3*4/(30/125) = 50 px
    assert values["model.input_size"] == (192, 192)


def test_steps_have_a_floor_for_small_sets_and_a_cap_for_large_ones():
    small, large = Config(), Config()
    v_small = _values(small, _kset(40, 50))
    v_large = _values(large, _kset(1000, 50))
    steps_small = v_small["train.epochs"] * (40 // v_small["loader.batch_size"])
    assert v_small["loader.batch_size"] == 8 and steps_small >= recipe.MIN_STEPS
    per_epoch = 1000 // v_large["loader.batch_size"]
    assert v_large["loader.batch_size"] == 16
    assert v_large["train.epochs"] * per_epoch == pytest.approx(150 * 1000 / 16, abs=per_epoch)
    huge = _values(Config(), _kset(8000, 50))
    assert huge["train.epochs"] * (8000 // 16) == pytest.approx(recipe.MAX_STEPS, abs=500)
    assert small.train.warmup_epochs * (40 // 8) == pytest.approx(0.05 * steps_small, abs=1)


def test_flip_only_with_flip_pairs_and_rotation_from_the_headings():
    plain = _values(Config(), _kset(60, 40, turn=5))
    turning = _values(Config(), _kset(60, 40, turn=180, flip=True))
    assert plain["augment.flip"] == 0.0 and plain["augment.rotation"] == 30.0
    assert turning["augment.flip"] == 0.5 and turning["augment.rotation"] == 180.0


def test_user_values_win_and_are_reported_as_theirs():
    cfg = load_config(None, ["model.input_size=[96,64]", "train.epochs=7", "augment.flip=0.3"])
    choices = {c.field: c for c in recipe.plan(cfg, _kset(50, 20, flip=True))}
    assert cfg.model.input_size == (96, 64) and cfg.train.epochs == 7 and cfg.augment.flip == 0.3
    assert choices["train.epochs"].user and choices["train.epochs"].reason == "set by you"
    assert not choices["loader.batch_size"].user and cfg.loader.batch_size == 8


def test_a_config_file_that_lists_a_field_sets_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("loader:\n  batch_size: 4\n")
    cfg = load_config(path)
    recipe.plan(cfg, _kset(500, 20))
    assert cfg.loader.batch_size == 4 and cfg.model.input_size != (128, 128)


def test_planning_twice_gives_the_same_config():
    ks = _kset(50, 20)
    cfg = Config()
    recipe.plan(cfg, ks)
    first = cfg.to_dict()
    recipe.plan(cfg, ks)
    assert cfg.to_dict() == first


def test_warm_up_and_validation_follow_the_users_epochs():
    cfg = load_config(None, ["train.epochs=8"])
    recipe.plan(cfg, _kset(16, 30))
    assert cfg.train.val_every == 1  # not 1/15 of the recipe's own (longer) plan
    assert cfg.train.warmup_epochs == pytest.approx(0.05 * 8)
