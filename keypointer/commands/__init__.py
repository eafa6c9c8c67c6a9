"""One module per CLI command: what it reads, prints and writes around the library calls.

check, convert, synth, train, demo, eval, predict, export. :mod:`keypointer.cli` parses the
arguments and calls ``<command>_command`` (``run_check``, ``run_demo``, ``evaluate_command``).
"""
