"""User-facing errors, and the one rule that picks the class of every error raised.

Anything a user can cause raises a subclass of :class:`KeypointerError`; the CLI turns it into
one message on stderr and exit code 2, never a traceback. Which class:

- :class:`ConfigError`, an argument error: a value the user gave does not fit: a command-line
  flag, a config field, an argument of a public function (``method="mean"``), or what the
  machine offers for it (``train.device: cuda`` without CUDA).
- :class:`DataError`, a data error: the content of a file the user named (labels, images, a
  video and its timestamps), or a path that cannot be read or written as asked. It names the
  file and, when known, the record; a pure function on arrays that cannot know the file
  raises it for the values (times that go back) and its caller may add the file.
- :class:`CheckpointError`: a checkpoint that cannot be loaded or does not fit together.
- :class:`TrainingError` and :class:`ExportError`: a run that cannot go on, an exported graph
  that does not reproduce the model.
- Everything else is a bug and stays a plain Python exception with its traceback
  (``ValueError``, ``TypeError``, ...): arrays of shapes that do not fit each other, which
  keypointer's own callers never pass, or an internal invariant broken. Never catch broad
  exception types to turn them into one of the classes above: a bug would then read as the
  user's fault.
"""

from __future__ import annotations

from pathlib import Path


class KeypointerError(Exception):
    """An error caused by the user's input, reported without a traceback."""

    exit_code = 2


class DataError(KeypointerError):
    """Bad data: names the file and, when known, the record inside it.

    ``record`` is whatever lets the user find the entry: an image name, a CSV
    line ("line 12"), or an annotation id ("annotation id 7").
    """

    def __init__(self, message: str, file: str | Path | None = None, record: str | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.record = record
        where = ""
        if self.file:
            where = self.file
            if record:
                where += f" ({record})"
            where += ": "
        super().__init__(where + message)


class ConfigError(KeypointerError):
    """Bad configuration: the message lists the dotted path of every bad field."""


class CheckpointError(KeypointerError):
    """A checkpoint that cannot be loaded safely."""


class TrainingError(KeypointerError):
    """Training cannot go on (for example the loss is no longer finite)."""


class ExportError(KeypointerError):
    """The exported graph does not reproduce the PyTorch model."""
