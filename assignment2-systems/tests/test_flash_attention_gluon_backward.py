"""The opt-in Gluon backward (``gluon_backward.py``) and its place in ``FlashAttentionTriton``
(``CS336_FLASH_GLUON=backward`` or ``both``). One file, so a GPU run selects exactly these:
``pytest tests/test_flash_attention_gluon_backward.py``.

On the CPU: the cases it takes and refuses, the configuration's checks, the dispatch rule, and a compile of the kernel
for sm_90 under the locked Triton. On a Hopper GPU: dQ, dK, dV of the kernel against float64 autograd, contiguous and
in the model's layout, and ``FlashAttentionTriton``'s gradients with it, eager and under ``torch.compile`` (where it
runs as the opaque op ``cs336_systems::gluon_attention_backward``), against float64 and the Triton backward's.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from cs336_systems.flash_attention import FlashAttentionTriton, gluon_backward, triton_function
from cs336_systems.flash_attention.gluon_backward import GluonBackwardConfig, gluon_backward_refusal

from tests.flash_attention_checks import GLUON_CASE, ON_HOPPER, float64_reference, random_qkv, relative_error

PACKAGE = Path(__file__).parents[1]
PROBE = PACKAGE / "benchmarks" / "probe_gluon_backward.py"
NEEDS_HOPPER = pytest.mark.skipif(not ON_HOPPER, reason="the Gluon backward runs on a Hopper GPU (wgmma, TMA)")
SUPPORTED = {**GLUON_CASE, "n_queries": 1024, "n_keys": 1024}


def test_the_gluon_backward_takes_a_supported_case():
    assert gluon_backward_refusal(**SUPPORTED) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"n_queries": 1000, "n_keys": 1000}, "multiple of 64"),
        ({"is_causal": False}, "causal"),
        ({"capability": (8, 0)}, "Hopper"),
        ({"capability": None}, "Hopper"),
        ({"dtypes": ("torch.float32",) * 3}, "one dtype"),
        ({"head_dim": 128}, "head size 64"),
        ({"n_keys": 2048}, "as many keys as queries"),
    ],
)
def test_each_unsupported_case_says_why(change, reason):
    assert reason in gluon_backward_refusal(**{**SUPPORTED, **change})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "async"}, "expected one of"),
        ({"mode": "split_overlap"}, "two consumer warpgroups"),
        ({"consumer_warps": 12}, "4 or 8 consumer warps"),
        ({"block_m": 32}, "BLOCK_M"),
        ({"stages": 0}, "1 stage"),
    ],
)
def test_a_bad_config_is_a_clear_error(fields, message):
    with pytest.raises(ValueError, match=message):
        GluonBackwardConfig(**fields)


def test_the_default_config_overlaps_on_64_by_64_tiles_at_two_programs_per_sm():
    config = GluonBackwardConfig()
    assert (config.block_m, config.block_n, config.stages, config.mode, config.maxnreg) == (64, 64, 3, "overlap", 128)
    assert config.kernel_constexprs()["OVERLAP"] and config.consumers == 1


def test_the_plan_takes_the_gluon_backward_only_when_asked_and_on_hopper(monkeypatch):
    """The positive case (asked, on Hopper) is the GPU tests' below."""
    q, k, v = (torch.zeros(1, 2, 128, 64, dtype=torch.bfloat16) for _ in range(3))
    monkeypatch.setattr(triton_function, "AUTOTUNED_GLUON_BACKWARD", False)
    assert not triton_function._gluon_backward_for(q, k, v, True)
    monkeypatch.setattr(triton_function, "AUTOTUNED_GLUON_BACKWARD", True)
    assert not triton_function._gluon_backward_for(q, k, v, True)  # CPU tensors: no Hopper


def test_the_kernel_compiles_for_hopper_under_this_triton():
    """In a fresh process without ``TRITON_INTERPRET`` (interpreted kernels cannot be compiled): the default config
    and ``sync``, bf16 and fp16, to a cubin for sm_90 with the TMA reduction and without spills."""
    script = f"""
from pathlib import Path
from cs336_basics.toolkit.entry_points import load_entry_point_module
probe = load_entry_point_module(Path({str(PROBE)!r}))
tool = load_entry_point_module(Path({str(PACKAGE / "scripts" / "compile_flash_kernels.py")!r}))
for variant in (probe.GLUON.GluonBackwardConfig(), probe.GLUON.GluonBackwardConfig(mode="sync")):
    for dtype in ("bf16", "fp16"):
        ptx = probe.compile_variant(variant, 90, dtype).asm["ptx"]
        features = [name for name, marker in probe.PTX_FEATURES.items() if marker in ptx]
        print("row", variant.mode, dtype, features, tool.ptxas_resources(ptx, 90)["spill_bytes"])
"""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE.parent / "assignment1-basics" / "src"), env.get("PYTHONPATH", "")])
    finished = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    rows = [line for line in finished.stdout.splitlines() if line.startswith("row")]
    features = "['wgmma', 'tma_load', 'tma_reduce', 'tma_store', 'mbarrier'] 0"
    assert rows == [f"row {mode} {dtype} {features}" for mode in ("overlap", "sync") for dtype in ("bf16", "fp16")]


def _model_layout(t: torch.Tensor) -> torch.Tensor:
    """``t`` (batch, heads, n, d) as the model passes it: a view of a ``(batch, n, heads, d)`` projection."""
    return t.transpose(1, 2).contiguous().transpose(1, 2)


@NEEDS_HOPPER
@pytest.mark.parametrize("mode", ["overlap", "sync"])
@pytest.mark.parametrize("layout", ["contiguous", "model"])
@pytest.mark.parametrize("n", [128, 1024])
def test_gluon_backward_matches_float64_autograd(mode, layout, n):
    """dK and dV written in the inputs' layout (in the model's, interleaved across heads: each TMA store must keep to
    its head's columns), dQ added into the float32 buffer."""
    leaves = random_qkv((2, 4, n, 64), n, torch.bfloat16, "cuda", seed=n)
    q, k, v = (leaf.detach() for leaf in leaves)
    if layout == "model":
        q, k, v = (_model_layout(t) for t in (q, k, v))
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(1)).to(q)
    expected_out, expected_lse, *expected = float64_reference(q, k, v, grad_out, True)
    out, lse = expected_out.to("cuda", torch.bfloat16), expected_lse.to("cuda", torch.float32).contiguous()
    if layout == "model":
        out, grad_out = _model_layout(out), _model_layout(grad_out)
    delta = (out.float() * grad_out.float()).sum(-1).contiguous()
    dq32 = torch.zeros(q.shape, dtype=torch.float32, device="cuda")
    dk, dv = torch.full_like(k, float("nan")), torch.full_like(v, float("nan"))
    config = GluonBackwardConfig(mode=mode)
    assert gluon_backward.launch_gluon_backward(q, k, v, grad_out, lse, delta, dq32, dk, dv, config) is None
    for name, got, want in zip(("dQ", "dK", "dV"), (dq32, dk, dv), expected, strict=True):
        assert relative_error(got.cpu(), want) < 2e-2, name


@NEEDS_HOPPER
@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "model"])
def test_flash_attention_triton_with_the_gluon_backward_matches_the_triton_backward(monkeypatch, compiled, layout):
    """``CS336_FLASH_GLUON=backward`` as the eager path and ``torch.compile`` see it: the plan (or the traced
    Function) takes the Gluon backward, and the gradients match float64 and the Triton backward's."""
    launched = []
    launch = gluon_backward.launch_gluon_backward
    monkeypatch.setattr(gluon_backward, "launch_gluon_backward", lambda *args: launched.append(launch(*args)))
    attention = torch.compile(FlashAttentionTriton.apply, fullgraph=True) if compiled else FlashAttentionTriton.apply
    results = {}
    for gluon in (False, True):
        monkeypatch.setattr(triton_function, "AUTOTUNED_GLUON_BACKWARD", gluon)
        monkeypatch.setattr(triton_function, "_PLANS", {})
        torch._dynamo.reset()
        leaves = random_qkv((2, 4, 1024, 64), 1024, torch.bfloat16, "cuda", seed=7)
        if layout == "model":
            leaves = [leaf.detach().transpose(1, 2).contiguous().requires_grad_() for leaf in leaves]
            q, k, v = (leaf.transpose(1, 2) for leaf in leaves)
        else:
            q, k, v = leaves
        out = attention(q, k, v, True)
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
        out.backward(grad_out)
        grads = [leaf.grad.transpose(1, 2) if layout == "model" else leaf.grad for leaf in leaves]
        results[gluon] = grads
    assert launched == [None]  # the Gluon kernel ran the second backward, in this layout too
    expected = float64_reference(q, k, v, grad_out, True)[2:]
    for name, gluon_value, triton_value, reference in zip(
        ("dQ", "dK", "dV"), results[True], results[False], expected, strict=True
    ):
        assert relative_error(gluon_value.cpu(), reference) < 2e-2, name
        assert relative_error(gluon_value, triton_value) < 1e-2, name
