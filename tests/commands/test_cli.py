from helpers import cli_subprocess

from keypointer import __version__


def test_version():
    r = cli_subprocess("--version")
    assert r.code == 0
    assert r.out.strip() == f"keypointer {__version__}"


def test_help_lists_commands():
    r = cli_subprocess("--help")
    assert r.code == 0
    for cmd in ("train", "check", "convert", "synth", "demo", "eval", "predict", "export"):
        assert cmd in r.out


def test_unknown_option_exits_2_without_traceback():
    r = cli_subprocess("train", "--bogus")
    assert r.code == 2
    assert "Traceback" not in r.err
