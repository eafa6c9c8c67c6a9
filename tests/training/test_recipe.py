"""The recipe's rules: sizes from the data, steps with a floor and a cap, user values win."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keypointer.config import Config, load_config, recipe_fields
from keypointer.data.types import Instance, KeypointSet, Sample
from keypointer.skeleton import Skeleton
from keypointer.training import recipe
from keypointer.training.recipe import Choice


def _kset(
    n: int, spacing: float, size=(640, 480), boxes=False, turn=0.0, flip=False, angles=None
) -> KeypointSet:
    """n images, each one instance of 4 keypoints on a line ``spacing`` px apart, turned by
    up to ``turn`` degrees from image to image (or by ``angles``, (n,) degrees)."""
    rng = np.random.default_rng(0)
    names = ("a_left", "a_right", "b", "c") if flip else ("a", "b", "c", "d")
    samples = []
    for i in range(n):
        angle = np.radians(rng.uniform(-turn, turn) if angles is None else angles[i])
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


def _long_side_and_aspect(size: tuple[int, int]) -> tuple[int, float]:
    assert size[0] % 32 == 0 and size[1] % 32 == 0
    return max(size), size[0] / size[1]


def test_close_keypoints_get_a_larger_input_within_the_budget():
    far = _values(Config(), _kset(50, spacing=80))["model.input_size"]
    near = _values(Config(), _kset(50, spacing=20))["model.input_size"]
    nearer = _values(Config(), _kset(50, spacing=10))["model.input_size"]
    nearer_gpu = _values(Config(), _kset(50, spacing=10), "cuda")["model.input_size"]
    # 640x480 images: the crop's 4:3 is kept (within the rounding to multiples of 32)
    for size in (far, near, nearer, nearer_gpu):
        assert _long_side_and_aspect(size)[1] == pytest.approx(4 / 3, abs=0.25)
    assert max(far) == recipe.MIN_SIDE  # far apart: the floor
    assert max(near) > max(far)
    assert max(nearer) == recipe.MAX_SIDE["cpu"]  # capped by the CPU's budget ...
    assert max(nearer_gpu) == recipe.MAX_SIDE["cuda"] > max(nearer)  # ... a GPU's is larger


def test_input_never_exceeds_the_crop_resolution_much():
    small = _values(Config(), _kset(50, spacing=5, size=(100, 100)))
    assert small["model.input_size"] == (recipe.MIN_SIDE,) * 2  # 100 px images: not the cap


def test_boxed_instances_size_from_their_boxes():
    values = _values(Config(), _kset(50, spacing=30, boxes=True))
    # box 100x100 px grown by the margin -> a square crop, whatever the image's 4:3
    assert values["model.input_size"][0] == values["model.input_size"][1]


def test_steps_have_a_floor_for_small_sets_and_a_cap_for_large_ones():
    small, large = Config(), Config()
    v_small = _values(small, _kset(40, 50))
    v_large = _values(large, _kset(1000, 50))
    batch_small, batch_large = v_small["loader.batch_size"], v_large["loader.batch_size"]
    assert batch_small < batch_large  # small sets: more steps per pass
    steps_small = v_small["train.epochs"] * (40 // batch_small)
    assert steps_small >= recipe.MIN_STEPS
    per_epoch = 1000 // batch_large
    passes = recipe.PASSES * 1000 / batch_large
    assert v_large["train.epochs"] * per_epoch == pytest.approx(passes, abs=per_epoch)
    huge = _values(Config(), _kset(8000, 50))
    huge_steps = huge["train.epochs"] * (8000 // huge["loader.batch_size"])
    assert huge_steps == pytest.approx(recipe.MAX_STEPS, abs=500)
    warmup_steps = small.train.warmup_epochs * (40 // batch_small)
    assert warmup_steps == pytest.approx(recipe.WARMUP_SHARE * steps_small, abs=1)


def test_flip_only_with_flip_pairs_and_rotation_from_the_headings():
    plain = _values(Config(), _kset(60, 40, turn=5))
    turning = _values(Config(), _kset(60, 40, turn=180, flip=True))
    assert plain["augment.flip"] == 0.0 and turning["augment.flip"] > 0
    assert plain["augment.rotation"] < turning["augment.rotation"] == 180.0  # all headings


def test_rotation_is_full_when_the_labels_already_show_most_headings():
    # A fly labelled in a few runs of frames: mostly one way, some turns (spread < 60).
    rng = np.random.default_rng(1)
    mostly = rng.normal(0, 8, 200)
    cover = np.concatenate([mostly, np.linspace(-60, 140, 60)])
    few = np.concatenate([mostly, np.linspace(-60, 40, 60)])
    assert recipe.orientation_spread(_kset(260, 40, angles=cover)) < 60
    assert recipe.heading_cover(_kset(260, 40, angles=cover)) >= recipe.FREE_HEADINGS
    assert _values(Config(), _kset(260, 40, angles=cover))["augment.rotation"] == 180.0
    assert _values(Config(), _kset(260, 40, angles=few))["augment.rotation"] < 180.0


def test_the_recipe_sets_exactly_the_fields_the_config_marks():
    crowd = _kset(60, 40, flip=True)
    crowd.samples[0].instances.append(crowd.samples[1].instances[0])  # a locator follows
    choices = recipe.plan(Config(), crowd)
    assert sorted(c.field for c in choices) == sorted(recipe_fields())


def test_a_rule_for_a_field_the_config_does_not_mark_is_refused(monkeypatch):
    def sigma_rule(cfg, ks, device_type):
        yield "codec.sigma", 3.0, "not the recipe's to choose"

    monkeypatch.setattr(recipe, "_flip", sigma_rule)
    cfg = Config()
    with pytest.raises(ValueError, match="codec.sigma"):
        recipe.plan(cfg, _kset(50, 20))
    assert cfg.codec.sigma == Config().codec.sigma


def test_user_values_win_and_are_reported_as_theirs():
    cfg = load_config(None, ["model.input_size=[96,64]", "train.epochs=7", "augment.flip=0.3"])
    choices = {c.field: c for c in recipe.plan(cfg, _kset(50, 20, flip=True))}
    assert cfg.model.input_size == (96, 64) and cfg.train.epochs == 7 and cfg.augment.flip == 0.3
    assert choices["train.epochs"].user and choices["train.epochs"].reason == "set by you"
    assert not choices["loader.batch_size"].user
    assert cfg.loader.batch_size == choices["loader.batch_size"].value != Config().loader.batch_size


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
    assert cfg.train.warmup_epochs == pytest.approx(recipe.WARMUP_SHARE * 8)


def _crowds(n: int) -> KeypointSet:
    """n images of two instances each (a locator follows the pose model)."""
    one = _kset(n, 40)
    for sample in one.samples:
        other = sample.instances[0].keypoints.copy()
        other[:, 1] += 100
        sample.instances.append(Instance(other, record="second"))
    return one


def _locator_steps(cfg: Config, ks: KeypointSet) -> Choice:
    return next(c for c in recipe.plan(cfg, ks) if c.field == "locator.steps")


def test_the_locators_length_follows_the_data_only_with_crowds():
    assert "locator.steps" not in _values(Config(), _kset(60, 40))  # no locator: no choice
    turned_on = load_config(None, ["locator.enabled=true"])
    assert _values(turned_on, _kset(60, 40))["locator.steps"] >= 1
    small, large = _locator_steps(Config(), _crowds(50)), _locator_steps(Config(), _crowds(2000))
    assert not small.user and "images" in small.reason
    assert large.value > small.value  # more images, more steps (within the clamp)


def test_a_users_short_epochs_shorten_the_locator_in_proportion():
    crowd = _crowds(200)
    full_cfg = Config()
    full = _locator_steps(full_cfg, crowd).value
    epochs = full_cfg.train.epochs  # the recipe's
    short_cfg = load_config(None, [f"train.epochs={max(1, epochs // 50)}"])
    short = _locator_steps(short_cfg, crowd)
    assert short.value == pytest.approx(full * max(1, epochs // 50) / epochs, abs=1)
    assert short.value < full / 10 and "your train.epochs" in short.reason
    longer = _locator_steps(load_config(None, [f"train.epochs={epochs * 2}"]), crowd).value
    assert longer > full


def test_an_explicit_locator_steps_wins_over_the_users_epochs_and_time():
    crowd = _crowds(200)
    for extra in ("train.epochs=3", "train.time=5"):
        choice = _locator_steps(load_config(None, ["locator.steps=777", extra]), crowd)
        assert choice.user and choice.value == 777


def test_the_table_shows_the_locators_steps_and_their_time(capsys):
    choices = recipe.plan(load_config(None, ["train.epochs=3"]), _crowds(200))
    steps = next(c.value for c in choices if c.field == "locator.steps")
    recipe.print_choices(recipe.with_locator_time(choices, step_s=0.5))
    table = capsys.readouterr().err
    row = table[table.index("locator.steps") :]
    assert row.split("│")[1].strip() == str(steps)
    row = row[: row.index("\n", row.index("s/step"))]  # the row, wrapped or not
    assert f"~{steps * 0.5 / 60:.1f} min at 0.50 s/step" in " ".join(row.replace("│", " ").split())
