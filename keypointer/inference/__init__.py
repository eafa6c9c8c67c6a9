"""Inference: the one :class:`~.pipeline.Pipeline` every door runs (:mod:`.pipeline`), with its
crops (:mod:`.crops`), runners for PyTorch and ONNX Runtime (:mod:`.runners`) and the
locator's boxes (:mod:`.locate`); :class:`Predictor` (what ``keypointer.load`` returns); what
``predict`` reads (:mod:`.sources`, :mod:`.video`), tracks (:mod:`.tracks`) and writes
(:mod:`.writers`, :mod:`.video_outputs`); frames worth labelling (:mod:`.suggest`); and
predictions over a labelled data set for validation, ``eval`` and ``demo``
(:mod:`.labelled`)."""

from keypointer.inference.predictor import Predictor

__all__ = ["Predictor"]
