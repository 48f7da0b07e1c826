# One entry point for everything: `make setup`, `make demo`, `make test`.
UV ?= uv
RUN = $(UV) run
PACKAGES = assignment1-basics assignment2-systems assignment3-scaling assignment4-data assignment5-alignment

.PHONY: setup test test-a1 test-a2 test-a3 test-a4 test-a5 test-notebooks demo data assets lint bench notebooks lab

setup:            ## install every package, the dev tools and the benchmark baselines
	$(UV) sync --all-groups

test: test-a1 test-a2 test-a3 test-a4 test-a5 test-notebooks

# Each suite runs from its package root: the acceptance tests open snapshots by relative path.
test-a1:
	cd assignment1-basics && $(RUN) pytest -q
test-a2:
	cd assignment2-systems && $(RUN) pytest -q
test-a3:
	cd assignment3-scaling && $(RUN) pytest -q
test-a4:
	cd assignment4-data && $(RUN) pytest -q
test-a5:
	cd assignment5-alignment && $(RUN) pytest -q
test-notebooks:
	@if [ -d notebooks/tests ]; then cd notebooks && $(UV) run pytest -q tests; else echo "no notebook tests yet"; fi

demo:             ## the main job: BPE + small LM trained on the CPU in minutes, offline
	$(RUN) python assignment1-basics/scripts/demo.py

data:             ## download TinyStories and the OpenWebText sample (network needed)
	$(RUN) python assignment1-basics/scripts/download_data.py --out_dir data

assets:           ## download the Dolma Jigsaw NSFW / hate-speech fastText models (network needed)
	$(RUN) python assignment4-data/scripts/download_assets.py

lint:
	$(RUN) ruff check .
	$(RUN) ruff format --check .

bench:            ## CPU benchmarks against named baselines (see BENCHMARKS.md)
	$(UV) sync --all-groups
	@for p in $(PACKAGES); do for b in $$p/benchmarks/bench_*.py; do [ -f $$b ] && echo "== $$b" && $(RUN) python $$b; done; done; true

notebooks:        ## execute every lecture notebook in place (outputs stay local; strip before committing)
	cd notebooks && $(UV) run python run_notebooks.py

lab:
	$(UV) run --with jupyterlab jupyter lab notebooks

.PHONY: a4-sample
a4-sample:        ## A4 pipeline on the sample crawl shipped in git (offline, ~30 s): runs/a4-sample/stats.md
	$(RUN) python assignment4-data/scripts/run_pipeline.py --inputs assignment4-data/sample_crawl/CC-SAMPLE-00000.warc.gz \
		--out_dir runs/a4-sample --log-decisions
