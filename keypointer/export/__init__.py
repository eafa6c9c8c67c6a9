"""Deployment: one ONNX file with decoding inside (:mod:`.onnx`), and running it in ONNX
Runtime (:mod:`.onnx_model`)."""

from keypointer.errors import ExportError
from keypointer.export.onnx import (
    INPUT_FORMAT,
    TOLERANCE_PX,
    ExportReport,
    ExportWrapper,
    default_onnx_path,
    export_onnx,
    ill_conditioned,
    verify_onnx,
)
from keypointer.export.onnx_model import FLIP_GAP, OnnxModel

__all__ = [
    "FLIP_GAP",
    "INPUT_FORMAT",
    "TOLERANCE_PX",
    "ExportError",
    "ExportReport",
    "ExportWrapper",
    "OnnxModel",
    "default_onnx_path",
    "export_onnx",
    "ill_conditioned",
    "verify_onnx",
]
