"""The forward-paths probe without a GPU: its pinned config, its table, and that every rung reads the same values
(the kernels in Triton's interpreter, float32: the interpreter mishandles bf16 dots; the timing needs a GPU)."""

import json
import os
from pathlib import Path

import pytest
import torch
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.entry_points import load_entry_point_module

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "bench_flash_forward_paths.py"


@pytest.fixture(scope="module")
def probe():
    return load_entry_point_module(SCRIPT)


def test_the_pinned_rungs_default_to_the_autotuners_pick_for_the_switch(probe):
    default = parse_config(probe.ForwardPathsConfig, [])
    assert default.rungs == list(probe.RUNGS) and default.seq_len == 16384 and default.batch == 16
    assert default.pinned(switch_tma=False) == (128, 64, 8, 3, False)
    assert default.pinned(switch_tma=True) == (128, 128, 4, 3, True)
    off = parse_config(probe.ForwardPathsConfig, ["--pinned_tma", "off", "--num_stages", "4"])
    assert off.pinned(switch_tma=True) == (128, 64, 8, 4, False)
    on = parse_config(probe.ForwardPathsConfig, ["--pinned_tma", "on", "--block_m", "64", "--block_n", "64"])
    assert on.pinned(switch_tma=False) == (64, 64, 4, 3, True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"rungs": []}, "rungs is empty"), ({"rungs": ["leaf"]}, "unknown rungs"), ({"rounds": 0}, "must be >= 1")]
    + [({"host_calls": 0}, "host_calls must be >= 1")]
    + [({"block_n": 0}, "pinned tiles")],
)
def test_bad_configurations_are_rejected(probe, changes, message):
    with pytest.raises(ValueError, match=message):
        probe.ForwardPathsConfig(**changes)


def test_the_table_compares_each_rung_with_its_rounds_first_and_cudnn(probe, tmp_path):
    config = probe.ForwardPathsConfig(out_dir=str(tmp_path), rungs=["rows_pinned", "leaf_apply", "leaf_cudnn"])
    machine = {"device": "H200", "torch": "2.11", "triton": "3.6", "tma_switch": "both", "gluon_switch": "forward"}
    machine["pinned"] = "ForwardConfig()"
    times = {"rows_pinned": 19.5, "leaf_apply": 20.3, "leaf_cudnn": 19.6}
    rows = [
        {"round": round_, "rung": rung, "path": probe.RUNGS[rung], "ms": ms + round_ - 1, "host_ms": 0.25}
        for round_ in (1, 2)
        for rung, ms in times.items()
    ]
    text = probe.write_results(config, machine, rows[:4])  # a cut run: round 2 has no cuDNN row yet
    assert "CS336_FLASH_TMA both; CS336_FLASH_GLUON forward; pinned ForwardConfig()" in text
    assert "| round | rung | path | ms | host ms | vs first rung | vs cuDNN |" in text
    assert f"| 1 | leaf_apply | {probe.RUNGS['leaf_apply']} | 20.300 | 0.250 | 1.041 | 1.036 |" in text
    assert text.rstrip().endswith(f"| 2 | rows_pinned | {probe.RUNGS['rows_pinned']} | 20.500 | 0.250 | 1.000 | - |")
    probe.write_results(config, machine, rows)
    result = json.loads((tmp_path / "forward_paths.json").read_text())
    assert result["tma_switch"] == "both" and result["config"]["rungs"] == config.rungs
    assert [row["vs_cudnn"] for row in result["rows"]] == pytest.approx(
        [19.5 / 19.6, 20.3 / 19.6, 1.0, 20.5 / 20.6, 21.3 / 20.6, 1.0]
    )
    assert (tmp_path / "forward_paths.md").read_text() == probe.write_results(config, machine, rows)


def test_every_rung_reads_the_same_values_and_computes_the_same_attention(probe):
    from cs336_systems.flash_attention.reference import naive_attention

    inputs = probe.ladder_inputs(1, 2, 48, 16, "cpu", torch.float32)
    leaf, by_heads, by_rows = inputs["leaf"], inputs["heads"], inputs["rows"]
    assert leaf[0]._base is leaf[1]._base and leaf[0]._base.requires_grad and leaf[0]._base.shape == (3, 1, 2, 48, 16)
    for sliced, dense, flat in zip(leaf, by_heads, by_rows, strict=True):
        assert dense.is_contiguous() and flat.shape == (2, 48, 16) and flat.is_contiguous()
        assert torch.equal(sliced.detach(), dense) and torch.equal(dense.reshape(2, 48, 16), flat)
    expected = naive_attention(*(t.detach().double() for t in leaf), True)
    pinned = probe.ForwardConfig(16, 16, 4, 1)
    outputs = {rung: probe.rung_call(rung, inputs, pinned)() for rung in probe.RUNGS if rung != "leaf_cudnn"}
    pinned_out = outputs["leaf_pinned"]
    assert torch.equal(outputs["rows_pinned"].reshape(pinned_out.shape), pinned_out)
    assert torch.equal(outputs["heads_pinned"], pinned_out)
    for rung, out in outputs.items():
        assert out.reshape(expected.shape).double().sub(expected).abs().max() < 1e-4, rung
