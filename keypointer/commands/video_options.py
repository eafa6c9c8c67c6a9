"""The video options of ``predict`` and ``eval`` (``--smooth``, ``--max-gap``,
``--max-instances``), checked in one place, before any work."""

from __future__ import annotations

from keypointer.config import KEYPOINT_SCORE_THRESHOLD
from keypointer.errors import ConfigError
from keypointer.inference.tracks import PostProcess
from keypointer.temporal.smooth import METHODS


def video_post_process(
    smooth: str | None = None,
    max_gap: int = PostProcess.max_gap,
    max_instances: int | None = None,
    threshold: float = KEYPOINT_SCORE_THRESHOLD,
) -> PostProcess:
    """What happens to a video's predictions after the model, from the command's options;
    a bad value is a ConfigError (an argument error: exit 2, no traceback) at once.

    Args:
        smooth: None, or a method of :data:`keypointer.temporal.smooth.METHODS`.
        max_gap: frames of missing points the smoother fills (0 or more).
        max_instances: the known number of animals (1 or more), or None.
        threshold: below this score a point counts as missing and is flagged.

    Returns:
        The :class:`~keypointer.inference.tracks.PostProcess` to run.
    """
    if smooth is not None and smooth not in METHODS:
        raise ConfigError(f"--smooth {smooth!r}: use one of {', '.join(METHODS)}")
    if max_gap < 0:
        raise ConfigError(f"--max-gap {max_gap}: must be 0 or more")
    if max_instances is not None and max_instances < 1:
        raise ConfigError(f"--max-instances {max_instances}: must be 1 or more")
    return PostProcess(
        smooth=smooth, min_score=threshold, max_gap=max_gap, max_instances=max_instances
    )
