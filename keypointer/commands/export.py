"""``keypointer export``: load a checkpoint, write its ONNX file (and its locator's, for a
two-stage model), check them, print a summary."""

from __future__ import annotations

from pathlib import Path

from keypointer.checkpoint import load_models
from keypointer.errors import ConfigError
from keypointer.export.locator_onnx import export_locator, locator_path
from keypointer.export.onnx import INPUT_FORMAT, ExportReport, default_onnx_path, export_onnx
from keypointer.output_paths import check_target


def export_command(
    checkpoint: Path,
    format: str = "onnx",
    out: Path | None = None,
    flip: bool = False,
    overwrite: bool = False,
) -> ExportReport:
    """What ``keypointer export`` does: load, export, check, print a summary. An existing
    file (an earlier export, or anything else) is replaced only with ``overwrite``; the
    checkpoint itself never."""
    if format != "onnx":
        raise ConfigError(f"unknown export format {format!r}; supported: onnx")
    path = Path(out) if out is not None else default_onnx_path(checkpoint)
    example = default_onnx_path(checkpoint).name
    read = [checkpoint, Path(checkpoint) / "best.pt", Path(checkpoint) / "last.pt"]
    check_target(path, inputs=read, overwrite=overwrite, example=example)
    model, locator = load_models(checkpoint, "cpu")  # one read of the checkpoint
    if locator is not None:  # both files checked before either is written
        check_target(locator_path(path), inputs=read, overwrite=overwrite)
    partner = locator_path(path).name if locator is not None else None
    report = export_onnx(model, path, flip=flip, locator_file=partner)
    if locator is not None:  # a two-stage model: the locator goes beside the pose graph
        report["locator"] = export_locator(locator, locator_path(path))
        print(f"wrote {report['locator']['path']} (the locator: images -> boxes, scores)")
    w, h = model.codec.input_size
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {report['exporter']} exporter)\n"
        f"input: images {INPUT_FORMAT}, (N, 3, {h}, {w}); outputs: keypoints (N, "
        f"{model.skeleton.num_keypoints}, 2) input px, scores (N, {model.skeleton.num_keypoints})"
        f"{'; flip TTA included' if flip else ''}\n"
        f"checked against PyTorch: max difference {report['max_diff_px']:.2e} px over "
        f"{report['compared']} of {report['total']} keypoints (the rest ill-conditioned)"
    )
    return report
