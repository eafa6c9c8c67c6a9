"""Inference: crops (:mod:`.crops`), runners for PyTorch and ONNX Runtime (:mod:`.runners`),
:class:`Predictor` (what ``keypointer.load`` returns), what ``predict`` reads (:mod:`.sources`,
:mod:`.video`) and writes (:mod:`.writers`), and predictions over a labelled data set for
validation and ``eval`` (:mod:`.loader`)."""

from keypointer.inference.predictor import Predictor

__all__ = ["Predictor"]
