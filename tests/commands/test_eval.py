"""``keypointer eval`` and the shared ``predict_instances``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_captured

from keypointer.commands.eval import default_eval_dir, eval_command, worst_instances
from keypointer.data.types import Instance, Sample
from keypointer.errors import DataError
from keypointer.inference.labelled import Predictions, item_scale_boxes


@pytest.fixture(scope="module")
def evaluated(checkpoint, synth, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eval")
    metrics = eval_command(checkpoint, synth, out, batch_size=3, pcutoff=0.01, quiet=True)
    return out, metrics


def test_eval_writes_json_plots_and_gallery(evaluated):
    out, metrics = evaluated
    for name in ("eval.json", "pck_curve.png", "per_keypoint_error.png", "worst.png"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*.tmp"))
    assert json.loads((out / "eval.json").read_text()) == metrics


def test_eval_values_are_sane(evaluated, synth):
    _, m = evaluated
    names = json.loads(synth.read_text())["categories"][0]["keypoints"]
    assert m["num_instances"] == 8 and m["num_images"] == 8
    assert 0.0 <= m["pck"] <= 1.0 and 0.0 <= m["pck_auc"] <= 1.0
    assert m["mean_px"] > 0 and m["rmse_px"] >= m["mean_px"]
    assert [r["name"] for r in m["per_keypoint"]] == names
    assert sum(r["count"] for r in m["per_keypoint"]) == m["num_labelled"]
    assert all(r["pck"] is None or 0 <= r["pck"] <= 1 for r in m["per_keypoint"])
    assert 0.0 <= m["oks"]["AP"] <= 1.0
    assert m["count_pcutoff"] <= m["num_labelled"]
    curve = np.array(m["pck_curve"]["pck"])
    assert curve[0] >= 0 and np.all(np.diff(curve) >= 0) and curve[-1] <= 1
    worst = [w["normalised"] for w in m["worst"]]
    assert len(worst) == 8 and worst == sorted(worst, reverse=True)


def test_eval_with_flip_runs_and_differs(checkpoint, synth, evaluated, tmp_path):
    _, plain = evaluated
    flipped = eval_command(checkpoint, synth, tmp_path, flip=True, quiet=True)
    assert flipped["flip"] is True and 0.0 <= flipped["pck"] <= 1.0
    assert flipped["mean_px"] != plain["mean_px"]


def test_eval_refuses_other_keypoints(checkpoint, tmp_path):
    other = tmp_path / "other.json"
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1, 1, 2], "bbox": [0, 0, 4, 4]}
        ],
        "categories": [{"id": 1, "name": "x", "keypoints": ["tip"]}],
    }
    other.write_text(json.dumps(coco))
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="differ from the model"):
        eval_command(checkpoint, other, tmp_path / "out", quiet=True)


def test_default_eval_dir_names_the_data():
    assert default_eval_dir("runs/a/best.pt", "data/mice/val.json") == Path("runs/a/eval-val")
    generic = default_eval_dir("runs/a/best.pt", "/x/test/annotations.json")
    assert generic == Path("runs/a/eval-test")


def test_item_scale_boxes_fall_back_to_the_keypoints_span():
    kp = np.array([[10, 20, 2], [30, 25, 1], [99, 99, 0]], float)
    with_box = Sample(Path("a.png"), 64, 64, [Instance(kp, (1, 2, 3, 4))])
    without = Sample(Path("b.png"), 64, 64, [Instance(kp, None)])

    class Data:
        samples = [with_box, without]

        def entry(self, i):
            return self.samples[i], self.samples[i].instances[0]

    boxes = item_scale_boxes(Data(), np.array([0, 1]))
    np.testing.assert_allclose(boxes[0], [1, 2, 3, 4])
    np.testing.assert_allclose(boxes[1], [10, 20, 20, 5])  # from centre to centre


def test_worst_instances_rank_by_normalised_error():
    gt = np.zeros((3, 2, 2))
    pred = gt.copy()
    pred[0, :, 0] = 5  # 5 px on a 100 px box: 0.05
    pred[1, :, 0] = 2  # 2 px on a 10 px box: 0.2
    visible = np.array([[True, True], [True, True], [False, False]])
    boxes = np.array([[0, 0, 100, 100], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    p = Predictions(pred, np.ones((3, 2)), gt, visible, boxes, np.arange(3))
    assert worst_instances(p, 5) == [1, 0]  # the unlabelled instance is not ranked


def test_cli_eval_missing_checkpoint_exits_2(tmp_path, synth, capsys):
    # in this process (a subprocess's own start-up is tested in test_cli.py and
    # tests/reliability): an exception escaping main() would fail the test as it is
    proc = cli_captured(capsys, "eval", tmp_path / "none.pt", "--data", synth)
    assert proc.code == 2
    assert "none.pt" in proc.err and "Traceback" not in proc.err
