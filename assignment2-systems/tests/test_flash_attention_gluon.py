"""The opt-in Gluon forward (``gluon_forward.py``) and the ``CS336_FLASH_GLUON`` switch that puts it in the eager
forward. One file, so a GPU run selects exactly these: ``pytest tests/test_flash_attention_gluon.py``.

On the CPU: the switch's parsing, the dispatch rule (a pure function of the case, and the per-call layout check:
the layouts the descriptors move, the model's among them, and those they cannot), the configuration's checks, and a
compile of the kernel for sm_90 under the locked Triton. On a Hopper GPU: O and L of the kernel against float64
attention, ragged lengths and the model's layout included, and a forward+backward through ``FlashAttentionTriton``,
contiguous and in the model's layout, whose gradients match the Triton forward's.
"""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from cs336_systems.flash_attention import FlashAttentionTriton, gluon_forward, triton_function
from cs336_systems.flash_attention.gluon_forward import (
    GluonForwardConfig,
    GluonForwardLaunch,
    gluon_forward_available,
    gluon_forward_refusal,
    gluon_layout_refusal,
    launch_gluon_forward,
)
from cs336_systems.flash_attention.reference import naive_attention_with_logsumexp
from cs336_systems.flash_attention.triton_function import ForwardConfig

from tests.flash_attention_checks import GLUON_CASE, ON_HOPPER, float64_reference, random_qkv, relative_error

PACKAGE = Path(__file__).parents[1]
PROBE = PACKAGE / "benchmarks" / "probe_gluon_forward.py"
NEEDS_HOPPER = pytest.mark.skipif(not ON_HOPPER, reason="the Gluon forward runs on a Hopper GPU (wgmma, TMA)")
BF16 = "torch.bfloat16"
SUPPORTED = {**GLUON_CASE, "n_queries": 1000, "n_keys": 1000}
"""A case the Gluon forward takes (a ragged length: the last query tile is stored by masked stores)."""


@pytest.mark.parametrize(
    ("value", "forward", "backward"),
    [(None, False, False), ("none", False, False), ("forward", True, False), ("backward", False, True),
     ("both", True, True)],
)  # fmt: skip
def test_the_switch_is_read_from_the_environment(monkeypatch, value, forward, backward):
    if value is None:
        monkeypatch.delenv(triton_function.GLUON_ENV, raising=False)
    else:
        monkeypatch.setenv(triton_function.GLUON_ENV, value)
    assert triton_function._autotuned_gluon() is forward
    assert triton_function._autotuned_gluon_backward() is backward
    monkeypatch.setattr(triton_function, "AUTOTUNED_GLUON", forward)
    monkeypatch.setattr(triton_function, "AUTOTUNED_GLUON_BACKWARD", backward)
    assert triton_function.autotuned_gluon_name() == (value or "none")


def test_a_bad_switch_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CS336_FLASH_GLUON", "all")
    with pytest.raises(ValueError, match="CS336_FLASH_GLUON must be one of none, forward, backward, both; got 'all'"):
        triton_function._autotuned_gluon()


def test_the_gluon_forward_takes_a_supported_case():
    assert gluon_forward_available()
    assert gluon_forward_refusal(**SUPPORTED) is None
    assert (
        gluon_forward_refusal(**{**SUPPORTED, "dtypes": ("torch.float16",) * 3, "n_queries": 16384, "n_keys": 16384})
        is None
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"capability": None}, "compute capability 9.x"),
        ({"capability": (8, 0)}, "compute capability 9.x"),
        ({"capability": (10, 0)}, "compute capability 9.x"),
        ({"dtypes": ("torch.float32",) * 3}, "one dtype among"),
        ({"dtypes": (BF16, "torch.float16", BF16)}, "one dtype among"),
        ({"is_causal": False}, "causal attention only"),
        ({"head_dim": 128}, "head size 64 only"),
        ({"n_keys": 999}, "as many keys as queries"),
        ({"rows": 2**21, "n_queries": 1024, "n_keys": 1024}, "int32 coordinates"),
    ],
)
def test_each_unsupported_case_says_why(change, reason):
    assert reason in gluon_forward_refusal(**{**SUPPORTED, **change})


def _strided(size: int, shape: tuple[int, ...], strides: tuple[int, ...], offset: int = 0) -> torch.Tensor:
    return torch.zeros(size, dtype=torch.bfloat16).as_strided(shape, strides, offset)


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param(torch.zeros(2, 3, 128, 64, dtype=torch.bfloat16), id="contiguous"),
        pytest.param(torch.zeros(2, 128, 3, 64, dtype=torch.bfloat16).transpose(1, 2), id="model"),
        pytest.param(torch.zeros(2, 128, 3, 4, 64, dtype=torch.bfloat16)[:, :, 1].transpose(1, 2), id="fused_qkv"),
        pytest.param(torch.zeros(128, 2, 3, 64, dtype=torch.bfloat16).permute(1, 2, 0, 3), id="sequence_first"),
        pytest.param(torch.zeros(2, 3, 128, 72, dtype=torch.bfloat16)[..., 8:], id="padded_rows"),
        pytest.param(torch.zeros(1, 1, 128, 64, dtype=torch.bfloat16).expand(2, 3, 128, 64), id="broadcast"),
    ],
)
def test_the_layout_check_takes_what_a_descriptor_over_the_storage_can_move(layout):
    """The model's layout ((batch, n, heads, d) projections seen as (batch, heads, n, d)) among them: each row's
    d columns start at a 16-byte multiple within one sequence stride."""
    assert gluon_layout_refusal(layout, torch.zeros(2, 3, 128, 64, dtype=torch.bfloat16)) is None


@pytest.mark.parametrize(
    ("layout", "reason"),
    [
        (torch.zeros(2, 3, 64, 128, dtype=torch.bfloat16).transpose(2, 3), "a contiguous last dim only"),
        (_strided(2 * 3 * 128 * 64 + 1, (2, 3, 128, 64), (3 * 128 * 64, 128 * 64, 64, 1), 1), "16-byte aligned"),
        (torch.zeros(2, 3, 128, 68, dtype=torch.bfloat16)[..., :64], "multiple of 16 bytes only"),
        (_strided(2 * 128 * 208, (2, 3, 128, 64), (128 * 208, 68, 208, 1)), "starting at multiples of 16"),
        (_strided(2 * 128 * 192, (2, 3, 128, 64), (128 * 160, 64, 160, 1)), "within one sequence stride"),
        (torch.zeros(2, 3, 64, 64, dtype=torch.bfloat16)[:, :, :, None], "(batch, heads, n, d) tensors only"),
        (torch.zeros(2, 3, 256, 64, dtype=torch.bfloat16)[:, :, :200], "rows that run on into each other"),
    ],
    ids=[
        "last_dim_strided",
        "misaligned",
        "sequence_stride",
        "row_start",
        "row_past_the_stride",
        "five_dims",
        "gap_past_the_rows",
    ],  # fmt: skip
)
def test_the_layout_check_refuses_what_a_descriptor_cannot_move(layout, reason):
    dense = torch.zeros(2, 3, 128, 64, dtype=torch.bfloat16)
    assert reason in gluon_layout_refusal(dense, layout)


def test_the_default_config_is_the_h200_winner():
    config = GluonForwardConfig()
    assert (config.block_m, config.block_n, config.stages, config.mode) == (256, 64, 2, "split_sync")
    assert (config.consumer_warps, config.maxnreg, config.consumers, config.q_rows) == (16, 96, 4, 64)
    assert config.consumer_registers == 112  # ptxas's "setmaxnreg.inc 112" for the consumer warpgroups
    assert config.launch_options() == {"num_warps": 4, "maxnreg": 96}
    assert config.kernel_constexprs(64, even_n=False)["EVEN_N"] is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "warp"}, "mode 'warp'"),
        ({"block_n": 96, "block_m": 192}, "BLOCK_N must be 64 or 128"),
        ({"consumer_warps": 6}, "whole warpgroups"),
        ({"mode": "async", "stages": 1}, "2 stages at least"),
        ({"mode": "pingpong", "consumer_warps": 16}, "two consumer warpgroups"),
    ],
)
def test_a_bad_config_is_a_clear_error(fields, message):
    with pytest.raises(ValueError, match=message):
        GluonForwardConfig(**fields)


def test_the_plan_keeps_the_triton_forward_off_hopper_or_when_pinned(monkeypatch):
    q, k, v = (torch.zeros(1, 2, 256, 64, dtype=torch.bfloat16) for _ in range(3))
    monkeypatch.setattr(triton_function, "AUTOTUNED_GLUON", True)
    assert triton_function._gluon_forward_for(q, k, v, True, None) is None  # a CPU tensor: no capability
    monkeypatch.setattr(triton_function.torch.cuda, "get_device_capability", lambda device: (9, 0))
    on_hopper = SimpleNamespace(**{name: getattr(q, name) for name in ("shape", "dtype")}, device=torch.device("cuda"))
    assert triton_function._gluon_forward_for(on_hopper, k, v, True, None) is not None
    assert triton_function._gluon_forward_for(on_hopper, k, v, True, ForwardConfig(64, 64)) is None
    assert triton_function._gluon_forward_for(on_hopper, k, v, False, None) is None
    monkeypatch.setattr(triton_function, "AUTOTUNED_GLUON", False)
    assert triton_function._gluon_forward_for(on_hopper, k, v, True, None) is None


def _recording_launch(shape: tuple[int, int, int, int], launched: list) -> GluonForwardLaunch:
    """A Gluon launch for ``shape`` whose kernels record their descriptors' matrices and stride arguments instead of
    running (on the CPU), and which counts the layouts it checks."""
    launch = GluonForwardLaunch(shape, BF16)
    launch.kernel_calls = launch.layout_checks = 0

    def record(*args):
        launch.kernel_calls += 1
        launched.append(("gluon", [(d.shape, d.strides, d.block_shape) for d in args[:4]], args[9:]))

    def check(*tensors):
        launch.layout_checks += 1
        return GluonForwardLaunch._layout_launch(launch, *tensors)

    launch._kernel = lambda: record
    launch._layout_launch = check
    return launch


def test_a_plan_with_the_gluon_forward_falls_back_per_call_on_a_layout_it_cannot_move():
    """``run_forward`` launches the Gluon kernel for the layouts its descriptors move (contiguous, the model's) and
    the Triton one otherwise (all recorded here, not run)."""
    launched = []
    plan = triton_function._Plan(4, 2, 128, 128, 64, True, gluon=_recording_launch((2, 2, 128, 64), launched))
    plan.forward = lambda *args: launched.append("triton")
    q = torch.zeros(2, 2, 128, 64, dtype=torch.bfloat16)
    lse = torch.zeros(2, 2, 128)
    plan.run_forward(q, q, q, torch.empty_like(q), lse)
    model = torch.zeros(2, 128, 2, 64, dtype=torch.bfloat16).transpose(1, 2)
    plan.run_forward(model, model, model, torch.empty_like(model), lse)
    sequence_stride_of_68 = torch.zeros(2, 2, 128, 68, dtype=torch.bfloat16)[..., :64]
    plan.run_forward(sequence_stride_of_68, q, q, torch.empty_like(q), lse)
    assert [entry if entry == "triton" else entry[0] for entry in launched] == ["gluon", "gluon", "triton"]


def test_the_gluon_launch_checks_each_layout_once_and_passes_its_descriptors():
    """Per layout: one check, then the kernel gets the descriptors over each tensor's storage matrix ([rows, sequence
    stride], blocks of the config's tiles) and the (batch, head, sequence) strides, with 0 for a dim of size 1; a
    refused layout says why, launches nothing and is remembered too."""
    launched = []
    launch = _recording_launch((2, 2, 128, 64), launched)
    contiguous = torch.zeros(2, 2, 128, 64, dtype=torch.bfloat16)
    model = torch.zeros(2, 128, 2, 64, dtype=torch.bfloat16).transpose(1, 2)
    lse = torch.zeros(2, 2, 128)
    for _ in range(3):
        assert launch.launch(contiguous, contiguous, contiguous, torch.empty_like(contiguous), lse) is None
    assert launch.launch(model, model, model, torch.empty_like(model), lse) is None
    assert (launch.layout_checks, launch.kernel_calls) == (2, 4)
    q_rows, block_n = GluonForwardConfig().q_rows, GluonForwardConfig().block_n
    assert launched[0][1] == [
        ([512, 64], [64, 1], [q_rows, 64]), ([512, 64], [64, 1], [block_n, 64]),
        ([512, 64], [64, 1], [block_n, 64]), ([512, 64], [64, 1], [q_rows, 64]),
    ]  # fmt: skip
    assert launched[0][2] == (2 * 128 * 64, 128 * 64, 64) * 4
    assert launched[3][1][0] == ([128 + 128, 128], [128, 1], [q_rows, 64])  # rows of (b, n) by (h, d) columns
    assert launched[3][2] == (128 * 128, 64, 128) * 4
    for _ in range(2):
        refusal = launch.launch(contiguous, contiguous, contiguous, torch.empty_like(contiguous), lse.double())
        assert "float32 L" in refusal
    assert (launch.layout_checks, launch.kernel_calls) == (3, 4)
    assert "shape" in launch.launch(contiguous[:1], contiguous[:1], contiguous[:1], contiguous[:1], lse[:1])


def test_the_kernel_compiles_for_hopper_under_this_triton():
    """In a fresh process without ``TRITON_INTERPRET`` (interpreted kernels cannot be compiled): the default config,
    TMA-stored and ragged (masked O stores), bf16 and fp16, to a cubin for sm_90, without spills."""
    script = f"""
import sys
from pathlib import Path
from cs336_basics.toolkit.entry_points import load_entry_point_module
probe = load_entry_point_module(Path({str(PROBE)!r}))
tool = load_entry_point_module(Path({str(PACKAGE / "scripts" / "compile_flash_kernels.py")!r}))
config = probe.ProbeConfig()
variant = probe.GLUON.GluonForwardConfig()
for even_n, dtype in [(True, "bf16"), (False, "bf16"), (True, "fp16")]:
    ptx = probe.compile_variant(variant, config, even_n, dtype).asm["ptx"]
    features = [name for name, marker in probe.PTX_FEATURES.items() if marker in ptx]
    print(even_n, dtype, features, tool.ptxas_resources(ptx, 90)["spill_bytes"])
"""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE.parent / "assignment1-basics" / "src"), env.get("PYTHONPATH", "")])
    finished = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    lines = [line for line in finished.stdout.splitlines() if line.startswith(("True", "False"))]
    assert lines == [
        "True bf16 ['wgmma', 'tma_load', 'tma_store', 'mbarrier'] 0",
        "False bf16 ['wgmma', 'tma_load', 'mbarrier'] 0",
        "True fp16 ['wgmma', 'tma_load', 'tma_store', 'mbarrier'] 0",
    ]


def _model_layout(t: torch.Tensor) -> torch.Tensor:
    """``t`` (batch, heads, n, d) as the model passes it: a view of a ``(batch, n, heads, d)`` projection."""
    return t.transpose(1, 2).contiguous().transpose(1, 2)


@NEEDS_HOPPER
@pytest.mark.parametrize(
    ("shape", "dtype", "layout"),
    [
        ((2, 4, 128, 64), torch.bfloat16, "contiguous"),
        ((2, 4, 1000, 64), torch.bfloat16, "contiguous"),
        ((2, 4, 2048, 64), torch.bfloat16, "contiguous"),
        ((1, 1, 16384, 64), torch.bfloat16, "contiguous"),
        ((2, 4, 1000, 64), torch.float16, "contiguous"),
        ((2, 4, 1000, 64), torch.bfloat16, "model"),
        ((2, 4, 2048, 64), torch.bfloat16, "model"),
    ],
)
def test_gluon_forward_matches_float64_attention(shape, dtype, layout):
    """In the model's layout, a ragged length's boxes past a row's end read the next batch element's rows, and O
    (allocated in that layout) is interleaved across heads: the masked and TMA stores must keep to their row."""
    generator = torch.Generator(device="cuda").manual_seed(shape[2])
    q, k, v = (torch.randn(shape, generator=generator, device="cuda").to(dtype) for _ in range(3))
    if layout == "model":
        q, k, v = (_model_layout(t) for t in (q, k, v))
    out, lse = torch.full_like(q, float("nan")), torch.full(shape[:-1], float("nan"), device="cuda")
    assert out.stride() == q.stride()
    launch_gluon_forward(q, k, v, out, lse)
    expected_out, expected_lse = naive_attention_with_logsumexp(q.double(), k.double(), v.double(), True)
    assert relative_error(out, expected_out) < 2e-2
    assert relative_error(lse, expected_lse) < 1e-3
    assert (lse - expected_lse).abs().max().item() < 2e-2
    again, lse_again = torch.full_like(out, float("nan")), torch.full_like(lse, float("nan"))
    launch_gluon_forward(q, k, v, again, lse_again)  # the kept kernel, launched without Triton's Python
    assert torch.equal(again, out) and torch.equal(lse_again, lse)


@NEEDS_HOPPER
@pytest.mark.parametrize("layout", ["contiguous", "model"])
@pytest.mark.parametrize("n", [1000, 2048])
def test_flash_attention_triton_with_the_gluon_forward_matches_the_triton_forward(monkeypatch, n, layout):
    """``CS336_FLASH_GLUON=forward`` as the eager path sees it, for contiguous inputs and the model's (Q, K, V views
    of ``(batch, n, heads, d)`` leaves, O allocated in their layout): the plan takes the Gluon forward, and O and the
    gradients (the backward reads its O and L) match float64 and the Triton forward's."""
    launched = []
    launch = gluon_forward.GluonForwardLaunch.launch
    monkeypatch.setattr(
        gluon_forward.GluonForwardLaunch, "launch", lambda self, *args: launched.append(launch(self, *args))
    )
    results = {}
    for gluon in (False, True):
        monkeypatch.setattr(triton_function, "AUTOTUNED_GLUON", gluon)
        monkeypatch.setattr(triton_function, "_PLANS", {})
        leaves = random_qkv((2, 4, n, 64), n, torch.bfloat16, "cuda", seed=n)
        if layout == "model":
            leaves = [leaf.detach().transpose(1, 2).contiguous().requires_grad_() for leaf in leaves]
            q, k, v = (leaf.transpose(1, 2) for leaf in leaves)
        else:
            q, k, v = leaves
        out = FlashAttentionTriton.apply(q, k, v, True)
        (plan,) = triton_function._PLANS.values()
        assert (plan.gluon is not None) is gluon
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
        out.backward(grad_out)
        grads = [leaf.grad.transpose(1, 2) if layout == "model" else leaf.grad for leaf in leaves]
        results[gluon] = (out.detach(), *grads)
    assert launched == [None]  # the Gluon kernel ran the second forward, in this layout too
    expected = float64_reference(q, k, v, grad_out, True)
    for name, gluon_value, triton_value, reference in zip(
        ("O", "dQ", "dK", "dV"), results[True], results[False], (expected[0], *expected[2:]), strict=True
    ):
        assert relative_error(gluon_value.cpu(), reference) < 2e-2, name
        assert relative_error(gluon_value, triton_value) < 1e-2, name
