import subprocess
import sys

from keypointer import __version__


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "keypointer", *args], capture_output=True, text=True, timeout=120
    )


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"keypointer {__version__}"


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("train", "check", "convert", "synth", "demo", "eval", "predict", "export"):
        assert cmd in r.stdout


def test_unknown_option_exits_2_without_traceback():
    r = run("train", "--bogus")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
