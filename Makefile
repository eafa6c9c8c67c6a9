# Set-up and checks. `make demo` and `make test` work on a fresh machine with Python 3.11 and make.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv test test-fast test-dispatch demo bench lint format clean

venv: $(STAMP)

# The venv is rebuilt when pyproject.toml changes (the stamp is older than it).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The fast tests of the numerics (codecs, models, losses, inference, export, the commands on
# tiny models) again, with each library's CPU kernels one level down and the other CPU
# precision (tests/dispatch_env.py prints the variables; the run's header shows what took
# effect): a test that holds only with this machine's kernels fails here, not on the next
# machine. A subset, ~5 min on 2 cores: the whole suite twice would not fit CI's 20 minutes.
# Left out: training (its tests check plumbing, and the models' steps are in tests/models),
# the reliability corpus (messages, not numerics), the two-stage commands (4 min alone), and
# the commands' tests of messages, overwrites and formats (no model numbers in them).
DISPATCH_PLUMBING := test_two_stage_commands test_cli test_eval_export_synth_keep_files \
	test_eval_video_truth_records test_merge test_merge_and_convert_never_overwrite_inputs \
	test_merge_identifies_images_by_content test_predict_checks_up_front \
	test_predict_never_overwrites test_unlabelled_suggestions_check_and_merge \
	test_a_registered_label_format_is_used_by_convert_merge_and_check
DISPATCH_TESTS ?= tests/codecs tests/models tests/inference tests/export tests/test_losses.py \
	tests/commands $(DISPATCH_PLUMBING:%=--ignore=tests/commands/%.py)
test-dispatch: $(STAMP)
	vars="$$($(PY) tests/dispatch_env.py)" && \
	env $$vars $(PY) -m pytest -q -m "not slow" $(DISPATCH_TESTS) $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/keypointer demo

bench: $(STAMP)
	$(PY) benchmarks/codecs.py
	$(PY) benchmarks/data.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/infer.py

lint: $(STAMP)
	$(VENV)/bin/ruff check keypointer tests benchmarks
	$(VENV)/bin/ruff format --check keypointer tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix keypointer tests benchmarks
	$(VENV)/bin/ruff format keypointer tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
