"""The kernel-tuning script's shape and kernel choice (the sweep itself needs a GPU)."""

import dataclasses
import json
from pathlib import Path

import pytest
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.entry_points import load_entry_point_module

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "tune_flash_kernels.py"


@pytest.fixture(scope="module")
def tune():
    return load_entry_point_module(SCRIPT)


def test_batch_multiplies_the_rows_the_kernels_see_and_their_flops(tune):
    default = parse_config(tune.TuneConfig, [])
    batched = parse_config(tune.TuneConfig, ["--batch", "16"])
    assert default.rows_shape() == (16, 16384, 64)
    assert batched.rows_shape() == (256, 16384, 64)
    flops = [tune.matmul_flops("backward", *config.rows_shape()[:2], 64, True) for config in (default, batched)]
    assert flops[1] == 16 * flops[0]


def test_kernels_default_to_all_in_timing_order(tune):
    timing_order = ["forward", "forward_tma", "forward_poly", "forward_poly_tma"]
    timing_order += ["dkdv", "dq", "backward", "backward_tma", "atomic_dq", "atomic_dq_tma"]
    assert parse_config(tune.TuneConfig, []).kernels == timing_order
    assert parse_config(tune.TuneConfig, ["--kernels", "dkdv", "dq", "backward"]).kernels == ["dkdv", "dq", "backward"]


def test_autotune_list_times_the_entries_the_autotuner_chooses_from(tune):
    from cs336_systems.flash_attention import triton_kernels

    config = parse_config(tune.TuneConfig, ["--kernels", "backward", "--autotune_list"])
    assert config.kernels == ["backward"]
    for kernel, entries in [("forward", triton_kernels.FORWARD_CONFIGS), ("backward", triton_kernels.BACKWARD_CONFIGS)]:
        pinned = tune.candidate_configs(kernel, {}, autotune_list=True)
        assert [c.meta() for c in pinned] == [
            {**e.kwargs, "num_warps": e.num_warps, "num_stages": e.num_stages} for e in entries
        ]
    assert tune.candidate_configs("dkdv", {}, autotune_list=True) == tune.single_kind_configs("dkdv")
    with_tma = tune.candidate_configs("forward_tma", {}, autotune_list=True)
    assert with_tma == [dataclasses.replace(c, tma=True) for c in tune.candidate_configs("forward", {}, True)]
    atomic = tune.candidate_configs("atomic_dq", {}, autotune_list=True)
    assert all(c.atomic_dq for c in atomic) and len(set(atomic)) == len(atomic)
    assert {(c.dkdv_block_m, c.dkdv_block_n) for c in atomic} == {
        (e.kwargs["BLOCK_M1"], e.kwargs["BLOCK_N1"]) for e in triton_kernels.BACKWARD_CONFIGS
    }


def test_atomic_dq_times_the_dkdv_tiles_as_whole_backwards(tune):
    atomic, dkdv = tune.single_kind_configs("atomic_dq"), tune.single_kind_configs("dkdv")
    assert [dataclasses.replace(c, atomic_dq=False) for c in atomic] == dkdv
    assert all(c.atomic_dq for c in atomic)
    atomic_tma = tune.single_kind_configs("atomic_dq_tma")
    assert atomic_tma == [dataclasses.replace(c, tma=True) for c in atomic]
    assert tune.candidate_configs("atomic_dq_tma", {}, True) == [
        dataclasses.replace(c, tma=True) for c in tune.candidate_configs("atomic_dq", {}, True)
    ]
    assert tune.matmul_flops("atomic_dq", 1, 128, 64, False) == 5 / 7 * tune.matmul_flops("backward", 1, 128, 64, False)


def test_forward_tma_times_the_forward_tiles_through_tensor_descriptors(tune):
    tma, pointer = tune.single_kind_configs("forward_tma"), tune.single_kind_configs("forward")
    assert [dataclasses.replace(c, tma=False) for c in tma] == pointer
    assert all(c.tma for c in tma) and not any(c.tma for c in pointer)
    assert tune.matmul_flops("forward_tma", 1, 128, 64, True) == tune.matmul_flops("forward", 1, 128, 64, True)
    assert tune.tile_columns({"kernel": "forward_tma", "block_m": 128, "block_n": 64}) == (128, 64)


@pytest.mark.parametrize(("kernel", "tma"), [("forward_poly", False), ("forward_poly_tma", True)])
def test_forward_poly_times_the_forward_tiles_with_polynomial_exponentials(tune, kernel, tma):
    """Every entry the pointer forward times, less those with key tiles under 32 (the interpreter's autotune list
    has only one, of 16)."""
    for autotune_list in (False, True):
        poly = tune.candidate_configs(kernel, {}, autotune_list)
        pointer = tune.candidate_configs("forward", {}, autotune_list)
        assert poly == [dataclasses.replace(c, tma=tma, poly_exp2=True) for c in pointer if c.block_n >= 32]
    assert len(tune.candidate_configs(kernel, {}, autotune_list=False)) > 20
    assert tune.matmul_flops(kernel, 1, 128, 64, True) == tune.matmul_flops("forward", 1, 128, 64, True)


def test_forward_poly_skips_key_tiles_under_32(tune, capsys):
    configs = tune.forward_configs("forward_poly_tma", [(64, 16, 4, 2), (64, 32, 4, 2)])
    assert [(c.block_n, c.tma, c.poly_exp2) for c in configs] == [(32, True, True)]
    assert "forward_poly_tma: skipping BLOCK_N = 16" in capsys.readouterr().out
    assert len(tune.forward_configs("forward", [(64, 16, 4, 2)])) == 1


def test_backward_tma_times_the_whole_backwards_tiles_through_tensor_descriptors(tune):
    with_tma = tune.candidate_configs("backward_tma", {}, autotune_list=True)
    assert with_tma == [dataclasses.replace(c, tma=True) for c in tune.candidate_configs("backward", {}, True)]
    best = {
        "dkdv": [{"dkdv_block_m": 32, "dkdv_block_n": 128, "num_warps": 4, "num_stages": 3}],
        "dq": [{"dq_block_m": 128, "dq_block_n": 64, "num_warps": 4, "num_stages": 4}],
    }
    pairs = tune.candidate_configs("backward_tma", best, autotune_list=False)
    assert pairs == [dataclasses.replace(c, tma=True) for c in tune.candidate_configs("backward", best, False)]
    assert len(pairs) == 2 and all(c.tma for c in pairs)
    assert tune.matmul_flops("backward_tma", 1, 128, 64, True) == tune.matmul_flops("backward", 1, 128, 64, True)
    with pytest.raises(ValueError, match="backward_tma combines the best dkdv and dq tiles"):
        tune.TuneConfig(kernels=["backward_tma"])


def test_results_record_the_l2_group_budget(tune, tmp_path, monkeypatch):
    from cs336_systems.flash_attention import triton_kernels

    monkeypatch.setattr(tune.torch.cuda, "get_device_name", lambda: "a GPU")
    config = parse_config(tune.TuneConfig, ["--out_dir", str(tmp_path), "--kernels", "forward"])
    row = {"kernel": "forward", "block_m": 128, "block_n": 64, "num_warps": 8, "num_stages": 3, "ms": 2, "tflops": 1}
    table = tune.write_results(config, [row], {"forward": [row]})
    budget_mib = triton_kernels.L2_BUDGET.value / 2**20
    assert table.splitlines()[0].startswith("a GPU")
    header = table.splitlines()[0]
    assert f"L2 group budget {budget_mib:g} MiB; CS336_FLASH_TMA none; CS336_FLASH_GLUON none" in header
    result = json.loads((tmp_path / "kernel_configs.json").read_text())
    assert result["l2_budget_mib"] == budget_mib
    assert result["tma_switch"] == result["gluon_switch"] == "none"
    assert (tmp_path / "kernel_configs.md").read_text() == table + "\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kernels", "dq", "backward"], "backward combines the best dkdv and dq tiles, so it needs both"),
        (["--batch", "0"], "must be >= 1"),
        (["--kernels", "dv"], "invalid choice value: 'dv'"),
    ],
)
def test_a_bad_choice_is_a_usage_error(tune, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_config(tune.TuneConfig, argv)
    assert exit_.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())
