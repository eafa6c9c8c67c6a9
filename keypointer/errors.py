"""User-facing errors.

Anything a user can cause (a bad label file, a bad config value, a corrupt
image) raises a subclass of :class:`KeypointerError`. The CLI turns these into
one message on stderr and exit code 2, never a traceback.
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
