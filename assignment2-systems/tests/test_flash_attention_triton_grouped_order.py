"""The Triton kernels' program order: rows (heads folded into batch) in groups whose streamed tensors fit L2,
longest-job-first inside each group.

The order is checked as a pure mapping (every (tile, row) exactly once, in the intended order), then end to end
with ``L2_BUDGET`` shrunk so that a few short rows already split into groups, the last one partial: the
production budget groups rows only at lengths the interpreter cannot run. Without a GPU everything runs in
Triton's interpreter (float32), as in ``test_flash_attention_triton.py``.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton
import triton.language as tl
from cs336_systems.flash_attention import FlashAttentionTriton, triton_kernels
from cs336_systems.flash_attention.triton_function import BackwardConfig, launch_backward, launch_forward
from cs336_systems.flash_attention.triton_kernels import _grouped_longest_first, _rows_per_group

from tests.flash_attention_checks import float64_reference, random_qkv, relative_error

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
INTERPRETED_ONLY = pytest.mark.skipif(
    DEVICE == "cuda",
    reason="a compiled kernel refuses a global changed after its compile; the interpreter reads it at each launch",
)


@triton.jit
def _order_probe(Tiles, Rows, num_tiles, num_rows, group_rows, HEAVY_LAST: tl.constexpr):
    rank = tl.program_id(0)
    tile, row = _grouped_longest_first(rank, num_tiles, num_rows, group_rows, HEAVY_LAST)
    tl.store(Tiles + rank, tile)
    tl.store(Rows + rank, row)


@triton.jit
def _group_rows_probe(Out, length, POSITION_BYTES: tl.constexpr):
    tl.store(Out, _rows_per_group(length, POSITION_BYTES))


def _expected_order(num_tiles: int, num_rows: int, group_rows: int, heavy_last: bool) -> list[tuple[int, int]]:
    order = []
    for first_row in range(0, num_rows, group_rows):
        rows = range(first_row, min(first_row + group_rows, num_rows))
        for rank in range(num_tiles):
            order += [(num_tiles - 1 - rank if heavy_last else rank, row) for row in rows]
    return order


@pytest.mark.parametrize("heavy_last", [False, True])
@pytest.mark.parametrize(
    ("num_tiles", "num_rows", "group_rows"),
    # 2^30 + 1 rows per group (short keys, long queries): rows per group times tiles wraps to 4 in int32
    [(5, 7, 3), (4, 6, 3), (3, 4, 10), (1, 5, 2), (6, 1, 1), (4, 5, 1), (2, 9, 4), (4, 5, (1 << 30) + 1)],
)
def test_grouped_order_visits_every_tile_of_every_row_once_group_by_group(num_tiles, num_rows, group_rows, heavy_last):
    programs = num_tiles * num_rows
    tiles = torch.full((programs,), -1, dtype=torch.int32, device=DEVICE)
    rows = torch.full_like(tiles, -1)
    _order_probe[(programs,)](tiles, rows, num_tiles, num_rows, group_rows, heavy_last)
    order = list(zip(tiles.tolist(), rows.tolist(), strict=True))
    expected = _expected_order(num_tiles, num_rows, group_rows, heavy_last)
    assert sorted(expected) == [(tile, row) for tile in range(num_tiles) for row in range(num_rows)]
    assert order == expected


@pytest.mark.parametrize(
    ("length", "position_bytes", "group_rows"),
    [(16384, 256, 6), (16384, 264, 5), (1 << 20, 2048, 1), (128, 256, 768)],  # bf16 d = 64: K+V; Q+dO+L+D
)
def test_rows_per_group_fill_the_l2_budget_and_are_at_least_one(length, position_bytes, group_rows):
    out = torch.zeros(1, dtype=torch.int32, device=DEVICE)
    _group_rows_probe[(1,)](out, length, position_bytes)
    assert out.item() == group_rows


def test_the_l2_budget_is_24_mib_unless_the_environment_sets_it(monkeypatch):
    monkeypatch.delenv(triton_kernels.L2_BUDGET_ENV, raising=False)
    assert triton_kernels._l2_budget_bytes() == 24 * 1024 * 1024
    monkeypatch.setenv(triton_kernels.L2_BUDGET_ENV, "12")
    assert triton_kernels._l2_budget_bytes() == 12 * 1024 * 1024
    for bad in ["0", "-4", "1.5", "", "12MiB"]:
        monkeypatch.setenv(triton_kernels.L2_BUDGET_ENV, bad)
        with pytest.raises(ValueError, match="CS336_FLASH_L2_BUDGET_MIB must be a positive whole number of MiB"):
            triton_kernels._l2_budget_bytes()


# Five rows of 48 queries and 40 keys, head size 16, float32: the forward and dQ programs stream 2 · 16 · 4 bytes per
# key, the dK/dV programs 2 · 16 · 4 + 8 bytes per query, so this budget makes groups of 3 + 2 rows and 2 + 2 + 1.
ROWS, N_QUERIES, N_KEYS, HEAD_DIM = 5, 48, 40, 16
SMALL_L2_BUDGET = 15360


@pytest.fixture
def small_l2_budget(monkeypatch):
    monkeypatch.setattr(triton_kernels, "L2_BUDGET", tl.constexpr(SMALL_L2_BUDGET))
    key_streaming, query_streaming = 2 * HEAD_DIM * 4, 2 * HEAD_DIM * 4 + 8
    for length, position_bytes in [(N_KEYS, key_streaming), (N_QUERIES, query_streaming)]:
        group_rows = SMALL_L2_BUDGET // position_bytes // length
        assert 1 < group_rows < ROWS and ROWS % group_rows, "the shape must give several groups, the last partial"


def _random_inputs(seed: int):
    return random_qkv((ROWS, N_QUERIES, HEAD_DIM), N_KEYS, torch.float32, DEVICE, seed=seed)


@INTERPRETED_ONLY
@pytest.mark.parametrize("is_causal", [False, True])
def test_grouped_rows_match_the_float64_reference(small_l2_budget, is_causal):
    q, k, v = _random_inputs(seed=10 + is_causal)
    out = FlashAttentionTriton.apply(q, k, v, is_causal)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    ref_out, _, ref_dq, ref_dk, ref_dv = float64_reference(q, k, v, grad_out, is_causal)
    for name, actual, expected in [
        ("O", out, ref_out),
        ("dQ", q.grad, ref_dq),
        ("dK", k.grad, ref_dk),
        ("dV", v.grad, ref_dv),
    ]:
        error = relative_error(actual.detach().cpu(), expected)
        assert error < 1e-5, f"{name}: relative error {error:.2e}"


@INTERPRETED_ONLY
@pytest.mark.parametrize("passes", [(True, False), (False, True)])
def test_grouped_rows_in_a_backward_launch_of_one_kind(small_l2_budget, passes):
    """The tuning script's launches of dK/dV or dQ programs alone: the dQ programs' ranks then start at 0."""
    q, k, v = (x.detach() for x in _random_inputs(seed=12))
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(13)).to(DEVICE)
    out, lse = torch.empty_like(q), torch.empty(q.shape[:-1], device=DEVICE)
    launch_forward(q, k, v, out, lse, True)
    _, _, ref_dq, ref_dk, ref_dv = float64_reference(q, k, v, grad_out, True)
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    launch_backward(q, k, v, out, grad_out, lse, dq, dk, dv, True, BackwardConfig(16, 32, 32, 16, 4, 1), passes)
    checks = [("dK", dk, ref_dk), ("dV", dv, ref_dv)] if passes[0] else [("dQ", dq, ref_dq)]
    for name, actual, expected in checks:
        assert relative_error(actual.cpu(), expected) < 1e-5, name
