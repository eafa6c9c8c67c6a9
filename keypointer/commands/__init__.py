"""One module per CLI command: what it reads, prints and writes around the library calls.

check, convert, synth, train, demo, eval (and eval_video: a video with known tracks),
predict, export, suggest, merge, calibrate and triangulate (several cameras; camera_names
matches files to cameras). :mod:`keypointer.cli` parses the arguments and calls
``<command>_command`` of each (``check_command``, ``eval_command``, ``eval_video_command``,
...). The plumbing they share: :mod:`~keypointer.commands.progress` (the one progress bar),
:mod:`~keypointer.commands.video_options` (the video options, checked once),
:mod:`keypointer.output_paths` (where outputs may go) and
:data:`keypointer.data.formats.REGISTRY` (the label formats).
"""
