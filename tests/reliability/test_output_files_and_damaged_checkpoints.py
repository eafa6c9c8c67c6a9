"""Output and checkpoint files: an exported .onnx gets the umask's mode, a damaged
checkpoint gets an error that says what is wrong with it, best.pt holds no optimiser state."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest
import torch

from keypointer.checkpoint import RESUME_ONLY, deployable, load_checkpoint, load_model


@pytest.fixture
def umask_027():
    """A umask other than the usual 022, so a mode that merely happens to match shows."""
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def test_exported_onnx_has_the_umask_mode(model, tmp_path, umask_027):
    pytest.importorskip("onnx")
    from keypointer.export import export_onnx

    path = tmp_path / "model.onnx"
    export_onnx(model, path, exporter="torchscript", check=False)
    assert stat.S_IMODE(path.stat().st_mode) == umask_027
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary left


# --------------------------------------------------------------------------- damaged checkpoints


def _pickle_member_corrupted(data: bytes, path: Path) -> bytes:
    """``data`` (a torch zip) with its pickle's first byte changed: an archive whose checksum
    fails, which torch reports as a pickle it refuses (as if it held code), not as damage."""
    path.write_bytes(data)
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
    head = info.header_offset  # the local header's name and extra lengths (torch pads extra)
    names, extra = (int.from_bytes(data[head + i : head + i + 2], "little") for i in (26, 28))
    start = head + 30 + names + extra
    damaged = bytearray(data)
    damaged[start] ^= 0x5A  # the PROTO opcode: never unpickles, whatever the contents
    return bytes(damaged)


DAMAGE = {
    "cut at the end": (lambda d, p: d[:-10], "truncated"),  # torch: [Errno 22] Invalid argument
    "cut in half": (lambda d, p: d[: len(d) // 2], "truncated"),
    "a text file": (lambda d, p: b"hello\n", "not the zip archive"),  # torch: (101)
    "random bytes": (lambda d, p: bytes(range(256)) * 4, "not the zip archive"),
    "empty": (lambda d, p: b"", "empty"),
    "pickle bytes changed": (_pickle_member_corrupted, "fails its checksum"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_checkpoint_says_what_is_wrong(kind, checkpoint, cli, tmp_path):
    damage, says = DAMAGE[kind]
    path = tmp_path / "model.pt"
    path.write_bytes(damage(checkpoint.read_bytes(), tmp_path / "scratch.pt"))
    result = cli("export", path)
    assert result.code == 2 and "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.err
    assert says in lines[0]
    assert "(101)" not in lines[0] and "Errno" not in lines[0] and "possibly code" not in lines[0]
    assert not path.with_suffix(".onnx").exists()


# --------------------------------------------------------------------------- best.pt


def test_best_checkpoint_has_weights_but_no_optimiser_state(checkpoint):
    best = load_checkpoint(checkpoint)
    last = load_checkpoint(checkpoint.parent / "last.pt")
    assert not set(RESUME_ONLY) & set(best) and set(RESUME_ONLY) <= set(last)
    for key, value in last["model"].items():
        assert torch.equal(best["model"][key], value), key
    assert best["config"] == last["config"] and best["skeleton"] == last["skeleton"]
    # Adam keeps two moments per weight: without them best.pt is about a third of last.pt.
    assert checkpoint.stat().st_size < 0.5 * (checkpoint.parent / "last.pt").stat().st_size
    assert load_model(checkpoint).skeleton.num_keypoints == 11  # still deployable


def test_deployable_keeps_everything_else():
    state = {"model": {}, "config": {}, "epoch": 3, "optimizer": {}, "rng_torch": 1}
    assert deployable(state) == {"model": {}, "config": {}, "epoch": 3}
    assert "optimizer" in state  # the state itself (saved next as last.pt) is untouched
