# cbnet: `make install`, `make demo`, `make test`.
# install builds .venv in the order that works: torch first, then mmcv compiled against it
# (no build isolation, CPU ops), then mmdet/mmpretrain and cbnet itself. Each step leaves a stamp so that a
# second `make install` with nothing to do returns in seconds.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.14.1
TORCHVISION_VERSION ?= 0.29.1
MMCV_VERSION ?= 2.1.0
# mmcv wheels we compiled, kept per torch version: pip's own cache is keyed by name+version only and would
# hand an mmcv built against another torch back to us.
MMCV_WHEEL_DIR ?= $(HOME)/.cache/cbnet/mmcv-wheels/torch-$(TORCH_VERSION)
STAMPS := $(VENV)/.stamps
PYTEST_ARGS ?=
LINT_PATHS := cbnet tools tests benchmarks configs setup.py

.PHONY: install demo test lint format clean-venv

install: $(STAMPS)/cbnet $(STAMPS)/deploy

$(STAMPS)/venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=77,<81" wheel
	mkdir -p $(STAMPS) && touch $@

$(STAMPS)/torch-$(TORCH_VERSION): $(STAMPS)/venv
	$(PIP) install -q torch==$(TORCH_VERSION) torchvision==$(TORCHVISION_VERSION)
	rm -f $(STAMPS)/torch-* $(STAMPS)/mmcv-* && touch $@

$(STAMPS)/mmcv-$(MMCV_VERSION)-torch-$(TORCH_VERSION): $(STAMPS)/torch-$(TORCH_VERSION)
	$(PIP) install -q "setuptools>=77,<81" ninja
	@if ! ls $(MMCV_WHEEL_DIR)/mmcv-$(MMCV_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "Compiling mmcv $(MMCV_VERSION) with CPU ops against torch $(TORCH_VERSION) (about 11 min on 2 cores)"; \
		bash tools/misc/build_mmcv.sh $(PY) $(MMCV_VERSION) $(MMCV_WHEEL_DIR) || exit 1; \
	fi
	$(PIP) install -q --force-reinstall --no-deps $(MMCV_WHEEL_DIR)/mmcv-$(MMCV_VERSION)-*.whl
	$(PIP) install -q $(MMCV_WHEEL_DIR)/mmcv-$(MMCV_VERSION)-*.whl
	@$(PY) -c "import mmcv._ext, mmcv.ops; print('mmcv', mmcv.__version__, 'with compiled ops: OK')" || \
		{ echo "ERROR: mmcv was installed WITHOUT its compiled ops (mmcv._ext). Delete $(MMCV_WHEEL_DIR) and run make install again." >&2; exit 1; }
	rm -f $(STAMPS)/mmcv-* && touch $@

$(STAMPS)/cbnet: $(STAMPS)/mmcv-$(MMCV_VERSION)-torch-$(TORCH_VERSION) requirements/pinned.txt requirements/tests.txt requirements/optional.txt requirements/mim.txt requirements/grounding.txt setup.py pyproject.toml MANIFEST.in
	$(PIP) install -q -r requirements/pinned.txt -r requirements/tests.txt -r requirements/optional.txt
	# the grounding detectors' text encoder (transformers, pinned: see the file) and fusion checkpointing (fairscale)
	$(PIP) install -q -r requirements/grounding.txt
	# openmim without its declared dependencies (see requirements/mim.txt)
	$(PIP) install -q --no-deps -r requirements/mim.txt
	$(PIP) install -q --no-build-isolation --no-deps -e .
	@$(PY) -c "import mmcv._ext, mmdet, mmpretrain, cbnet; print('cbnet', cbnet.__version__, '| mmdet', mmdet.__version__, '| mmpretrain', mmpretrain.__version__)"
	touch $@

# The deploy stack (MMDeploy + ONNX + ONNX Runtime), all pinned in requirements/deploy.txt and installed with
# --no-deps: mmdeploy 1.3.1 (its last release) pins protobuf<=3.20.2, which onnx >= 1.15 cannot use, so pip
# cannot resolve them together. The file lists every package they import that the stack above lacks; `pip
# check` then reports that one pin and openmim's declared dependencies (installed without them on purpose, see
# requirements/mim.txt; mim imports neither) only, as the check below expects.
$(STAMPS)/deploy: $(STAMPS)/cbnet requirements/deploy.txt
	$(PIP) install -q --no-deps -r requirements/deploy.txt
	@$(PY) -c "from mmdeploy.apis import torch2onnx; from mmdeploy.backend.onnxruntime.init_plugins import get_ops_path; \
		import mmdeploy, onnx, onnxruntime; onnxruntime.SessionOptions().register_custom_ops_library(get_ops_path()); \
		print('mmdeploy', mmdeploy.__version__, '(ONNX Runtime custom ops load) | onnx', onnx.__version__, \
		'| onnxruntime', onnxruntime.__version__)"
	@if $(PIP) check | grep -v -e "^mmdeploy .* has requirement protobuf<=3.20.2" \
		-e "^openmim 0.3.9 requires \(colorama\|opendatalab\)," | grep -q .; then $(PIP) check; \
		echo "ERROR: pip check reports more than mmdeploy's protobuf pin and openmim's unused dependencies" >&2; exit 1; fi
	touch $@

demo: install
	$(PY) tools/misc/demo.py

test: install lint
	$(PY) -m pytest $(PYTEST_ARGS)

# the checks of .pre-commit-config.yaml, with the versions requirements/tests.txt pins
lint: install
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
	$(PY) -m yapf --diff --recursive $(LINT_PATHS)
	$(PY) -m flake8 $(LINT_PATHS)

format: install
	$(PY) -m isort $(LINT_PATHS)
	$(PY) -m yapf --in-place --recursive $(LINT_PATHS)

clean-venv:
	rm -rf $(VENV)
