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

# The CPU benchmarks, with the flags their package's BENCHMARKS.md (or DISTRIBUTED.md) records for the CPU; one that
# fails (the GPT-2 and course-target ones need the course fixtures: ../shared, else a download) is reported as
# "Error ... (ignored)" and the rest still run. The GPU-only ones (FlashAttention, model, training, checkpointing,
# GRPO-sized sampling, scaling workers) take the GPU commands written there.
bench:            ## CPU benchmarks against named baselines (see BENCHMARKS.md)
	$(UV) sync --all-groups
	-$(RUN) python assignment1-basics/benchmarks/bench_bpe_course_targets.py
	-$(RUN) python assignment1-basics/benchmarks/bench_bpe_training.py
	-$(RUN) python assignment1-basics/benchmarks/bench_encode.py
	-$(RUN) python assignment1-basics/benchmarks/bench_optimizer_step.py --out_dir runs/bench
	-$(RUN) python assignment2-systems/benchmarks/bench_flash_host_overhead.py
	-$(RUN) torchrun --nproc-per-node 2 assignment2-systems/benchmarks/bench_comm.py --backend gloo --warmup 2 --iters 10
	-$(RUN) torchrun --nproc-per-node 2 assignment2-systems/benchmarks/bench_ddp.py --backend gloo --size tiny --warmup 1 --steps 5 --rounds 3
	-$(RUN) python assignment4-data/benchmarks/bench_minhash_dedup.py --pages 2500
	-$(RUN) python assignment4-data/benchmarks/bench_extract_filter.py --pages 600 --repeats 3
	-$(RUN) python assignment5-alignment/benchmarks/bench_grader.py
	-$(RUN) python assignment5-alignment/benchmarks/bench_sampler.py --batch_sizes 8 --new_tokens 16 --prompt_tokens 32 --workloads greedy groups --modes static dynamic generate --policy.device cpu --policy.threads 2

notebooks:        ## execute every lecture notebook in place (outputs stay local; strip before committing)
	cd notebooks && $(UV) run python run_notebooks.py

lab:
	$(UV) run --with jupyterlab jupyter lab notebooks

.PHONY: a4-sample
a4-sample:        ## A4 pipeline on the sample crawl shipped in git (offline, ~30 s): runs/a4-sample/stats.md
	$(RUN) python assignment4-data/scripts/run_pipeline.py --inputs assignment4-data/sample_crawl/CC-SAMPLE-00000.warc.gz \
		--out_dir runs/a4-sample --log-decisions
