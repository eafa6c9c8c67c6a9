"""ONNX flip TTA is PyTorch's flip TTA: a graph exported with ``--flip`` gives PyTorch's
keypoints, scores and flip gap (the gap is its third output), flips once whether asked or not,
and a graph exported without flip refuses to flip (it could only average decoded coordinates,
not PyTorch's heatmaps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers import cli

from keypointer.data import transforms as T
from keypointer.data.images import read_image
from keypointer.errors import ConfigError, ExportError
from keypointer.export import OnnxModel, export_onnx, ill_conditioned, verify_onnx
from keypointer.inference.crops import make_crops
from keypointer.inference.runners import TorchRunner

pytest.importorskip("onnxruntime")

TOLERANCE = 1e-2
"""px between ONNX Runtime and PyTorch on well-conditioned keypoints and gaps (the README's
figure: measured below 4e-4 px; kernels for other batch sizes or CPUs differ by ~1e-3)."""


@pytest.fixture(scope="module")
def onnx_files(model, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx_flip")
    files = {"plain": folder / "plain.onnx", "flip": folder / "flip.onnx"}
    export_onnx(model, files["plain"], exporter="torchscript", check=False)
    export_onnx(model, files["flip"], flip=True, exporter="torchscript", check=False)
    return files


@pytest.fixture(scope="module")
def crops(synth) -> np.ndarray:
    """(16, 64, 64, 3) uint8: the synthetic images letterboxed to the 64x64 input."""
    images = sorted((synth.parent / "images").glob("*.png"))
    whole = np.concatenate([make_crops(read_image(p), (64, 64))[0] for p in images])
    return np.concatenate([whole, whole[:, ::-1, :]])  # and upside down: other pixels


def well_conditioned(model, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) bool each: flip-TTA keypoints, and flip gaps (either half's decoding too),
    whose decoding float rounding cannot move (see ``ill_conditioned``)."""
    x = torch.from_numpy(np.stack([T.to_chw_normalized(c) for c in crops]))
    index = model.skeleton.flip_index()
    kp = ~ill_conditioned(model, x, index).numpy()
    halves = ill_conditioned(model, torch.cat([x, x.flip(-1)])).numpy()
    n = len(crops)
    return kp, kp & ~(halves[:n] | halves[n:, index])


def test_flip_export_gives_pytorch_flip_keypoints_scores_and_gap(model, onnx_files, crops):
    assert model.skeleton.flip_pairs  # else flip TTA and the gap would test little
    onnx_model = OnnxModel(onnx_files["flip"])
    kp_o, sc_o, gap_o = onnx_model.run_with_gap(crops, flip=True)
    kp_t, sc_t, gap_t = TorchRunner(model).run_with_gap(crops, flip=True)
    assert gap_o is not None, "a graph exported with flip gives the flip gap"
    assert onnx_model.flip_in_graph and onnx_model.has_flip_gap
    ok_kp, ok_gap = well_conditioned(model, crops)
    assert ok_kp.mean() > 0.6 and ok_gap.mean() > 0.5
    assert np.linalg.norm(kp_o - kp_t, axis=-1)[ok_kp].max() < TOLERANCE
    np.testing.assert_allclose(sc_o, sc_t, atol=1e-4)
    assert gap_o.shape == gap_t.shape == sc_t.shape
    assert np.abs(gap_o - gap_t)[ok_gap].max() < TOLERANCE
    assert gap_t[ok_gap].max() > 0.5  # a gap that is there, not zeros on both sides
    # Calling it gives the same keypoints as run_with_gap (one graph, one computation).
    np.testing.assert_array_equal(onnx_model(crops, flip=True)[0], kp_o)


def test_flip_export_flips_once_whether_asked_or_not(onnx_files, crops):
    onnx_model = OnnxModel(onnx_files["flip"])
    asked = onnx_model.run_with_gap(crops, flip=True)
    not_asked = onnx_model.run_with_gap(crops, flip=False)
    assert not_asked[2] is not None  # the graph flipped: its gap is there, asked or not
    for a, b in zip(asked, not_asked, strict=True):
        np.testing.assert_array_equal(a, b)  # no second flip on top of the graph's


def test_flip_asked_of_a_graph_exported_without_it_is_refused(onnx_files, crops):
    onnx_model = OnnxModel(onnx_files["plain"])
    assert not onnx_model.flip_in_graph and not onnx_model.has_flip_gap
    with pytest.raises(ConfigError, match=r"plain\.onnx was exported without flip.*--flip"):
        onnx_model(crops, flip=True)
    with pytest.raises(ConfigError, match="keypointer export --flip"):
        onnx_model.run_with_gap(crops, flip=True)
    kp, scores, gap = onnx_model.run_with_gap(crops, flip=False)
    assert gap is None and kp.shape == (len(crops), 11, 2)


def test_predict_flip_with_a_graph_exported_without_it_fails_cleanly(
    onnx_files, synth, tmp_path, capsys
):
    out = tmp_path / "out"
    code = cli("predict", onnx_files["plain"], synth.parent / "images", "--out", out, "--flip")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "Traceback" not in err
    assert "plain.onnx was exported without flip" in err
    assert not out.exists()


def test_an_older_flip_export_without_the_gap_output_still_runs(onnx_files, crops, tmp_path):
    proto = onnx.load(str(onnx_files["flip"]))
    gap = [o for o in proto.graph.output if o.name == "flip_gap"]
    assert len(gap) == 1
    proto.graph.output.remove(gap[0])  # as keypointer wrote flip exports before the gap
    older = tmp_path / "older.onnx"
    onnx.save(proto, str(older))
    old, new = OnnxModel(older), OnnxModel(onnx_files["flip"])
    assert old.flip_in_graph and not old.has_flip_gap
    kp, scores, gap = old.run_with_gap(crops, flip=True)
    assert gap is None
    np.testing.assert_array_equal(kp, new(crops, flip=True)[0])


def test_verify_checks_the_flip_gap(model, onnx_files, monkeypatch):
    report = verify_onnx(model, onnx_files["flip"], flip=True)
    assert report["max_diff_px"] < 1e-3 and report["max_flip_gap_diff_px"] < 2e-3
    run_graph = OnnxModel.run_graph

    def wrong_gap(self, images):
        kp, scores, gap = run_graph(self, images)
        return kp, scores, gap + 0.01

    monkeypatch.setattr(OnnxModel, "run_graph", wrong_gap)
    with pytest.raises(ExportError, match="flip gap differs from PyTorch's"):
        verify_onnx(model, onnx_files["flip"], flip=True)
