"""The checkpointing benchmark on the CPU: one row per policy, and nothing of a policy outlives it.

Policies share one process (and on a GPU one allocator), so a model, optimizer state or activation kept alive
by one policy inflates the peak of every later one: the 2026-12-03 H200 run measured "every block
checkpointed" above "no checkpointing" that way.
"""

import importlib.util
import json
import sys
import weakref
from pathlib import Path

import pytest
import torch
from cs336_basics.toolkit.cli import parse_config

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "bench_checkpointing.py"
SMOKE = ["--size", "tiny", "--context_length", "16", "--batch_size", "2", "--warmup", "1", "--steps", "1"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_checkpointing", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _config(bench, *flags: str):
    return parse_config(bench.CheckpointingConfig, [*SMOKE, "--device", "cpu", *flags])


class _Recorder:
    """Weak references to what one policy builds: the model, its parameters, the optimizer, block outputs."""

    def __init__(self, bench, monkeypatch, fail_in_forward: bool = False):
        self.refs: list[weakref.ref] = []
        recorder = self

        class RecordedModel(bench.TransformerLM):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                recorder.refs += [weakref.ref(self), *(weakref.ref(p) for p in self.parameters())]
                for block in self.layers:
                    block.register_forward_hook(recorder.on_block_output)

        class RecordedAdamW(bench.AdamW):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                recorder.refs.append(weakref.ref(self))

        self.fail_in_forward = fail_in_forward
        monkeypatch.setattr(bench, "TransformerLM", RecordedModel)
        monkeypatch.setattr(bench, "AdamW", RecordedAdamW)

    def on_block_output(self, module, inputs, output: torch.Tensor) -> None:
        self.refs.append(weakref.ref(output))
        if self.fail_in_forward:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    def alive(self) -> list[str]:
        return [type(obj).__name__ for obj in (ref() for ref in self.refs) if obj is not None]


def test_smoke_run_writes_one_row_per_policy(bench, tmp_path):
    bench.main(_config(bench, "--precision", "fp32", "--out_dir", str(tmp_path)))
    rows = json.loads((tmp_path / "checkpointing.json").read_text())["rows"]
    assert [row["policy"] for row in rows] == list(bench.POLICIES)
    assert {row["status"] for row in rows} == {"ok"}
    saved = {row["policy"]: row["saved_for_backward_MiB"] for row in rows}
    assert saved["every"] < saved["every_other"] < saved["none"]
    assert saved["every"] < saved["sublayers"] < saved["none"]
    assert "| size | ctx | policy | peak MiB | fwd+bwd peak MiB |" in (tmp_path / "checkpointing.md").read_text()


@pytest.mark.parametrize("policy", ["none", "every_other", "every", "two_block_segments", "sublayers"])
def test_a_policy_frees_its_model_optimizer_and_activations(bench, monkeypatch, policy):
    recorder = _Recorder(bench, monkeypatch)
    row = bench.measure(_config(bench), policy)
    assert row["status"] == "ok"
    assert len(recorder.refs) > 2
    assert recorder.alive() == []


def test_an_out_of_memory_policy_frees_everything_too(bench, monkeypatch):
    recorder = _Recorder(bench, monkeypatch, fail_in_forward=True)
    row = bench.measure(_config(bench), "every_other")
    assert row["status"] == "OOM"
    assert len(recorder.refs) > 2
    assert recorder.alive() == []
