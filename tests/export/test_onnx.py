"""ONNX export: decoding in the graph, dynamic batch, metadata, same results as PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import cli_captured

from keypointer.commands.export import export_command
from keypointer.commands.predict import predict_command
from keypointer.data import transforms as T
from keypointer.data.images import read_image
from keypointer.errors import CheckpointError, KeypointerError
from keypointer.export import (
    TOLERANCE_PX,
    ExportError,
    OnnxModel,
    export_onnx,
    ill_conditioned,
    verify_onnx,
)
from keypointer.inference.crops import make_crops
from keypointer.inference.runners import TorchRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory) -> tuple[Path, dict]:
    """Exported with the TorchScript exporter: 0.5 s instead of ~9 s for dynamo (the default,
    tested in the slow test below); the graphs give the same results."""
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    return path, export_onnx(model, path, exporter="torchscript")


def conditioned(model, crops: np.ndarray, flip: bool = False) -> np.ndarray:
    """(N, K) bool: keypoints of uint8 crops whose decoding is stable under rounding."""
    x = torch.from_numpy(np.stack([T.to_chw_normalized(c) for c in crops]))
    flip_index = model.skeleton.flip_index() if flip else None
    return ~ill_conditioned(model, x, flip_index).numpy()


def synth_crops(synth: Path, size=(64, 64)) -> np.ndarray:
    images = sorted((synth.parent / "images").glob("*.png"))
    return np.concatenate([make_crops(read_image(p), size)[0] for p in images])


def test_export_is_checked_against_pytorch(exported):
    path, report = exported
    assert path.is_file() and report["path"] == str(path) and report["exporter"] == "torchscript"
    assert report["max_diff_px"] < TOLERANCE_PX
    assert report["max_score_diff"] < 1e-4
    # Most keypoints are compared even for a model trained one epoch (flat heatmaps).
    assert report["compared"] >= 0.6 * report["total"]


def test_graph_has_dynamic_batch_and_metadata(exported, model):
    path, _ = exported
    onnx_model = OnnxModel(path)
    assert onnx_model.skeleton == model.skeleton
    assert onnx_model.input_size == (64, 64) and not onnx_model.flip_in_graph
    assert onnx_model.config["model"]["input_size"] == [64, 64]
    inputs = onnx_model.session.get_inputs()
    assert [i.name for i in inputs] == ["images"] and inputs[0].type == "tensor(float)"
    for n in (1, 4, 7):
        kp, scores = onnx_model.run(np.random.default_rng(n).uniform(0, 255, (n, 3, 64, 64)))
        assert kp.shape == (n, 11, 2) and scores.shape == (n, 11)
    meta = onnx_model.session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["keypoint_names"]) == list(model.skeleton.names)
    assert meta["input_format"] == "float32 NCHW RGB 0-255"


def test_onnx_predict_api_matches_keypoint_model(exported, model, synth):
    path, _ = exported
    crops = synth_crops(synth)
    x = torch.from_numpy(np.stack([T.to_chw_normalized(c) for c in crops]))
    kp_t, sc_t = model.predict(x)
    kp_o, sc_o = OnnxModel(path).predict(x)
    ok = conditioned(model, crops)
    assert ok.mean() > 0.6
    diff = torch.linalg.norm(kp_o - kp_t, dim=-1).numpy()[ok]
    assert diff.max() < TOLERANCE_PX
    torch.testing.assert_close(sc_o, sc_t, atol=1e-4, rtol=0)


def test_predict_with_onnx_equals_predict_with_checkpoint(
    exported, checkpoint, model, synth, tmp_path
):
    path, _ = exported
    images = synth.parent / "images"
    predict_command(checkpoint, [images], tmp_path / "pt", draw=False, quiet=True)
    predict_command(path, [images], tmp_path / "onnx", draw=False, quiet=True)
    a = json.loads((tmp_path / "pt" / "predictions.json").read_text())
    b = json.loads((tmp_path / "onnx" / "predictions.json").read_text())
    assert [r["image_id"] for r in a] == [r["image_id"] for r in b]
    ka = np.array([r["keypoints"] for r in a]).reshape(len(a), -1, 3)
    kb = np.array([r["keypoints"] for r in b]).reshape(len(b), -1, 3)
    ok = conditioned(model, synth_crops(synth))  # 64x64 images into a 64x64 input: same pixels
    diff = np.linalg.norm(ka[..., :2] - kb[..., :2], axis=-1)[ok]
    assert diff.max() < TOLERANCE_PX + 1e-4  # + the JSON's 4-decimal rounding
    np.testing.assert_allclose(ka[..., 2], kb[..., 2], atol=2e-4)
    header = (tmp_path / "onnx" / "predictions.csv").read_text().splitlines()[1]
    assert header.split(",")[1] == model.skeleton.names[0]  # names from the ONNX metadata


def test_flip_tta_in_the_graph_matches_pytorch_flip(model, synth, tmp_path):
    path = tmp_path / "flip.onnx"
    report = export_onnx(model, path, flip=True, exporter="torchscript")
    assert report["max_diff_px"] < TOLERANCE_PX
    assert report["max_flip_gap_diff_px"] < 2 * TOLERANCE_PX
    onnx_model = OnnxModel(path)
    assert onnx_model.flip_in_graph
    crops = synth_crops(synth)
    kp_o, _ = onnx_model(crops, flip=True)
    kp_t, _ = TorchRunner(model)(crops, flip=True)
    ok = conditioned(model, crops, flip=True)
    assert np.linalg.norm(kp_o - kp_t, axis=-1)[ok].max() < TOLERANCE_PX


def test_verify_detects_a_wrong_graph(exported, model, monkeypatch):
    path, _ = exported
    run_graph = OnnxModel.run_graph

    def shifted(self, images):
        kp, scores, gap = run_graph(self, images)
        return kp + 0.01, scores, gap

    monkeypatch.setattr(OnnxModel, "run_graph", shifted)
    with pytest.raises(ExportError, match="differs from PyTorch"):
        verify_onnx(model, path)


def test_onnx_model_refuses_other_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        OnnxModel(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.onnx"):
        OnnxModel(junk)


@pytest.mark.slow
def test_default_dynamo_export_matches_pytorch(model, synth, tmp_path):
    path = tmp_path / "dynamo.onnx"
    report = export_onnx(model, path)
    assert report["exporter"] == "dynamo" and report["max_diff_px"] < TOLERANCE_PX
    crops = synth_crops(synth)
    kp_o, _ = OnnxModel(path)(crops)
    kp_t, _ = TorchRunner(model)(crops)
    ok = conditioned(model, crops)
    assert np.linalg.norm(kp_o - kp_t, axis=-1)[ok].max() < TOLERANCE_PX
    for n in (1, 9):
        assert OnnxModel(path).run(np.zeros((n, 3, 64, 64)))[0].shape == (n, 11, 2)


def test_export_command_errors(checkpoint, tmp_path, capsys):
    with pytest.raises(KeypointerError, match="unknown export format 'tflite'"):
        export_command(checkpoint, format="tflite")
    # in this process (a subprocess's own start-up is tested in test_cli.py and
    # tests/reliability): an exception escaping main() would fail the test as it is
    proc = cli_captured(capsys, "export", tmp_path / "none.pt")
    assert proc.code == 2, proc.err
    assert proc.err.startswith("error:") and "none.pt" in proc.err
    assert "Traceback" not in proc.err
