"""The opt-in TMA kernels (tiles moved through tensor descriptors, Hopper's tensor memory accelerator) and the
``CS336_FLASH_TMA`` switch that puts them in the autotuned path. One file, so a GPU run selects exactly these:
``pytest tests/test_flash_attention_triton_tma.py``.

Without a GPU the kernels run in Triton's interpreter (float32 only), where the TMA and pointer kernels with the
same tiles must agree bit for bit; on a GPU the two may be scheduled differently, so they agree within
accumulation-order noise. Few tile configurations, so that a GPU run is dominated by a handful of compiles.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch._dynamo  # noqa: F401

from cs336_systems.flash_attention import FlashAttentionTriton, triton_function
from cs336_systems.flash_attention.triton_function import (
    BackwardConfig,
    ForwardConfig,
    launch_backward,
    launch_forward,
)

from tests.flash_attention_checks import float64_reference, random_qkv, relative_error

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FLOAT32_TOLERANCE = 5e-3 if DEVICE == "cuda" else 1e-5
SHAPES = [((2, 100, 32), 100), ((1, 70, 16), 130), ((1, 130, 16), 50)]  # ragged tiles, more and fewer keys
# On a GPU one head size is enough (every head size is another compile of each kernel, both ways), and the bfloat16
# test covers the autotuner's tiles at d = 64.
FLOAT32_SHAPES = SHAPES if DEVICE == "cpu" else SHAPES[1:]
INTERPRETED_FORWARD = ForwardConfig(32, 16, 4, 1)
INTERPRETED_BACKWARD = BackwardConfig(16, 32, 32, 16, 4, 1)
GPU_FORWARD = ForwardConfig(128, 64, 8, 3)  # the autotuner's pick at n = 16384, batch 16 x 16 heads
GPU_BACKWARD = BackwardConfig(32, 128, 128, 64, 4, 4)  # likewise
ON_GPU_ONLY = pytest.mark.skipif(
    DEVICE != "cuda", reason="Triton's interpreter has no descriptor reduction (TMA atomic add)"
)


def _with_tma(config, tma: bool = True):
    return type(config)(**{**config.__dict__, "tma": tma})


def _pinned_forward(q, k, v, is_causal, config):
    """O and L of one pinned forward launch on ``(batch, n, d)`` tensors."""
    out, lse = torch.empty_like(q), torch.empty(q.shape[:2], device=q.device)
    launch_forward(q, k, v, out, lse, is_causal, config)
    return out, lse


def _pinned_backward(q, k, v, out, lse, grad_out, is_causal, config):
    """dQ, dK, dV of one pinned backward launch."""
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    launch_backward(q, k, v, out, grad_out, lse, dq, dk, dv, is_causal, config)
    return dq, dk, dv


def _assert_same_as_pointer(name, actual, pointer):
    """Bit for bit in the interpreter; on a GPU within float32 accumulation-order noise, and a rounding of it."""
    if DEVICE == "cpu":
        assert torch.equal(actual, pointer), name
    else:
        assert relative_error(actual, pointer) < (1e-5 if actual.dtype == torch.float32 else 1e-2), name


@pytest.mark.parametrize(("shape_q", "n_keys"), FLOAT32_SHAPES)
@pytest.mark.parametrize("is_causal", [False, True])
def test_tma_forward_matches_the_reference_and_the_pointer_forward(shape_q, n_keys, is_causal):
    """Rows past the ragged ends load as zeros and are not stored."""
    q, k, v = (x.detach() for x in random_qkv(shape_q, n_keys, torch.float32, DEVICE, seed=12 + is_causal))
    ref_out, ref_lse, *_ = float64_reference(q, k, v, torch.zeros(q.shape), is_causal)
    out, lse = _pinned_forward(q, k, v, is_causal, _with_tma(INTERPRETED_FORWARD))
    pointer_out, pointer_lse = _pinned_forward(q, k, v, is_causal, INTERPRETED_FORWARD)
    for name, actual, expected, pointer in [("O", out, ref_out, pointer_out), ("L", lse, ref_lse, pointer_lse)]:
        assert relative_error(actual.cpu(), expected) < FLOAT32_TOLERANCE, name
        _assert_same_as_pointer(name, actual, pointer)


@pytest.mark.parametrize(("shape_q", "n_keys"), FLOAT32_SHAPES)
@pytest.mark.parametrize("is_causal", [False, True])
def test_tma_backward_matches_the_reference_and_the_pointer_backward(shape_q, n_keys, is_causal):
    """Both program kinds: dK/dV programs stream Q and dO tiles, dQ programs K and V tiles, through descriptors."""
    q, k, v = (x.detach() for x in random_qkv(shape_q, n_keys, torch.float32, DEVICE, seed=20 + is_causal))
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(22)).to(DEVICE)
    _, _, *ref_grads = float64_reference(q, k, v, grad_out, is_causal)
    out, lse = _pinned_forward(q, k, v, is_causal, INTERPRETED_FORWARD)
    grads = _pinned_backward(q, k, v, out, lse, grad_out, is_causal, _with_tma(INTERPRETED_BACKWARD))
    pointer_grads = _pinned_backward(q, k, v, out, lse, grad_out, is_causal, INTERPRETED_BACKWARD)
    for name, actual, expected, pointer in zip(("dQ", "dK", "dV"), grads, ref_grads, pointer_grads, strict=True):
        assert relative_error(actual.cpu(), expected) < FLOAT32_TOLERANCE, name
        _assert_same_as_pointer(name, actual, pointer)


@pytest.mark.skipif(DEVICE != "cuda", reason="bf16 tl.dot needs a GPU (the interpreter mishandles it)")
def test_tma_forward_and_backward_in_bfloat16_on_gpu():
    """The autotuner's tiles at n = 16384, batch 16 x 16 heads, causal, on ragged lengths (the float32 tests cover
    attention without a mask on the GPU; each case here is four more compiles)."""
    is_causal = True
    q, k, v = (x.detach() for x in random_qkv((4, 1000, 64), 1000, torch.bfloat16, DEVICE, seed=14))
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(15)).to(DEVICE, torch.bfloat16)
    ref_out, ref_lse, *ref_grads = float64_reference(q, k, v, grad_out, is_causal)
    out, lse = _pinned_forward(q, k, v, is_causal, _with_tma(GPU_FORWARD))
    pointer_out, pointer_lse = _pinned_forward(q, k, v, is_causal, GPU_FORWARD)
    grads = _pinned_backward(q, k, v, pointer_out, pointer_lse, grad_out, is_causal, _with_tma(GPU_BACKWARD))
    pointer_grads = _pinned_backward(q, k, v, pointer_out, pointer_lse, grad_out, is_causal, GPU_BACKWARD)
    assert relative_error(out.cpu(), ref_out) < 2e-2
    assert relative_error(lse.cpu(), ref_lse) < 2e-2
    assert relative_error(out, pointer_out) < 1e-2
    for name, actual, expected, pointer in zip(("dQ", "dK", "dV"), grads, ref_grads, pointer_grads, strict=True):
        assert relative_error(actual.cpu(), expected) < 2e-2, name
        assert relative_error(actual, pointer) < 1e-2, name


def test_tma_kernels_reject_misaligned_tensors():
    q = torch.randn(2 * 16 * 16 + 1, device=DEVICE)[1:].view(2, 16, 16)  # contiguous, 4 bytes past an aligned start
    lse = torch.zeros(2, 16, device=DEVICE)
    with pytest.raises(ValueError, match="16-byte aligned"):
        _pinned_forward(q, q, q, False, ForwardConfig(16, 16, tma=True))
    with pytest.raises(ValueError, match="16-byte aligned"):
        _pinned_backward(q, q, q, q, lse, q, False, _with_tma(INTERPRETED_BACKWARD))


@ON_GPU_ONLY
@pytest.mark.parametrize(
    ("shape_q", "n_keys", "dtype"), [((1, 70, 16), 130, torch.float32), ((4, 1000, 64), 1000, torch.bfloat16)]
)
@pytest.mark.parametrize("is_causal", [False, True])
def test_tma_atomic_dq_matches_the_reference_and_the_pointer_atomics(shape_q, n_keys, dtype, is_causal):
    """dK/dV programs alone, each adding its share of dQ by one TMA reduction per tile into a float32 buffer."""
    q, k, v = (x.detach() for x in random_qkv(shape_q, n_keys, dtype, DEVICE, seed=30 + is_causal))
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(31)).to(DEVICE, dtype)
    _, _, *ref_grads = float64_reference(q, k, v, grad_out, is_causal)
    out, lse = _pinned_forward(q, k, v, is_causal, GPU_FORWARD)
    config = BackwardConfig(32, 128, 128, 64, 4, 3, atomic_dq=True)
    grads = _pinned_backward(q, k, v, out, lse, grad_out, is_causal, _with_tma(config))
    pointer_grads = _pinned_backward(q, k, v, out, lse, grad_out, is_causal, config)
    tolerance = FLOAT32_TOLERANCE if dtype == torch.float32 else 2e-2
    for name, actual, expected, pointer in zip(("dQ", "dK", "dV"), grads, ref_grads, pointer_grads, strict=True):
        assert relative_error(actual.cpu(), expected) < tolerance, name
        _assert_same_as_pointer(name, actual, pointer)


@pytest.mark.skipif(DEVICE != "cuda", reason="the compute capability check applies to compiled launches")
def test_tma_kernels_need_a_hopper_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    q, lse = torch.randn(1, 16, 16, device=DEVICE), torch.zeros(1, 16, device=DEVICE)
    with pytest.raises(ValueError, match="compute capability 9.0"):
        _pinned_forward(q, q, q, False, ForwardConfig(16, 16, tma=True))
    with pytest.raises(ValueError, match="compute capability 9.0"):
        _pinned_backward(q, q, q, q, lse, q, False, _with_tma(INTERPRETED_BACKWARD))
    monkeypatch.setattr(triton_function, "AUTOTUNED_TMA", triton_function.TMA_CHOICES["both"])
    monkeypatch.setattr(triton_function, "_PLANS", {})
    with pytest.raises(ValueError, match="compute capability 9.0"):
        FlashAttentionTriton.apply(q, q, q, False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (False, False, False)),
        ("forward", (True, False, False)),
        ("both", (True, True, False)),
        ("atomic_dq", (True, True, True)),
    ],
)
def test_tma_switch_reads_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(triton_function.TMA_ENV, raising=False)
    else:
        monkeypatch.setenv(triton_function.TMA_ENV, value)
    assert triton_function._autotuned_tma() == expected


def test_tma_switch_rejects_other_values(monkeypatch):
    monkeypatch.setenv(triton_function.TMA_ENV, "on")
    with pytest.raises(ValueError, match="none, forward, backward, both, atomic_dq"):
        triton_function._autotuned_tma()


def _one_autotune_entry(monkeypatch):
    """The autotuners' first entries only (one compile per kernel on a GPU, no timing)."""
    kernels = triton_function._kernels()
    for kernel in (kernels.flash_fwd_kernel, kernels.flash_bwd_kernel, kernels.flash_bwd_atomic_dq_kernel):
        monkeypatch.setattr(kernel, "configs", kernel.configs[:1])
        monkeypatch.setattr(kernel, "cache", {})


def _autotuned_inputs():
    """Q, K, V in the model's layout (``(batch, heads, n, d)`` views of ``(batch, n, heads, d)`` projections: the
    descriptors are built on the sequence stride, heads x d) and the tolerance against float64."""
    dtype = torch.bfloat16 if DEVICE == "cuda" else torch.float32
    generator = torch.Generator().manual_seed(30)
    projections = [torch.randn(2, 300, 2, 64, generator=generator).to(DEVICE, dtype) for _ in range(3)]
    qkv = [t.requires_grad_().transpose(1, 2) for t in projections]
    return qkv, (2e-2 if DEVICE == "cuda" else 1e-5)


@pytest.mark.parametrize("switch", ["forward", "backward", "both", pytest.param("atomic_dq", marks=ON_GPU_ONLY)])
def test_tma_switch_in_the_eager_autotuned_path(monkeypatch, switch):
    """The eager plans pass ``USE_TMA`` to the kernels the switch names (and set the allocator where they launch):
    same results as with the switch off."""
    _one_autotune_entry(monkeypatch)
    (q, k, v), tolerance = _autotuned_inputs()
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(31)).to(DEVICE, q.dtype)
    results = {}
    for value in ("none", switch):
        monkeypatch.setattr(triton_function, "AUTOTUNED_TMA", triton_function.TMA_CHOICES[value])
        monkeypatch.setattr(triton_function, "_PLANS", {})
        out = FlashAttentionTriton.apply(q, k, v, True)
        plan = next(iter(triton_function._PLANS.values()))
        assert (plan.forward_tma, plan.backward_tma, plan.atomic_dq) == triton_function.TMA_CHOICES[value]
        results[value] = (out.detach(), *torch.autograd.grad(out, (q, k, v), grad_out))
    ref_out, _, *ref_grads = float64_reference(q, k, v, grad_out, True)
    names = ("O", "dQ", "dK", "dV")
    for name, actual, pointer, expected in zip(names, results[switch], results["none"], (ref_out, *ref_grads)):
        assert relative_error(actual.cpu(), expected) < tolerance, name
        _assert_same_as_pointer(name, actual, pointer)


def test_tma_switch_in_the_compiled_ops(monkeypatch):
    """Under ``torch.compile`` the ``triton_op`` bodies hand the kernels to Inductor: they must pass ``USE_TMA``
    (Inductor's launcher sets Triton's allocator itself before launching a kernel that needs scratch memory), and
    ``atomic_dq`` only where Inductor counts descriptor reductions as writes (else it would fold dQ into zeros)."""
    launches = {}

    class RecordingLaunch:
        def __init__(self, kernel):
            self.name = kernel.fn.__name__ if hasattr(kernel, "fn") else kernel.__name__

        def __getitem__(self, grid):
            return lambda *args, **kwargs: launches.__setitem__(self.name, kwargs)

    monkeypatch.setattr(triton_function, "wrap_triton", RecordingLaunch)
    q = torch.zeros(2, 3, 64, 32, device=DEVICE)
    for switch, seen, atomic in [("both", True, False), ("atomic_dq", True, True), ("atomic_dq", False, False)]:
        monkeypatch.setattr(triton_function, "AUTOTUNED_TMA", triton_function.TMA_CHOICES[switch])
        monkeypatch.setattr(triton_function, "inductor_sees_descriptor_reductions", lambda seen=seen: seen)
        triton_function.flash_attention_forward(q, q, q, True)
        triton_function.flash_attention_backward(q, q, q, q, torch.zeros(q.shape[:-1], device=DEVICE), q, True)
        assert launches["flash_fwd_kernel"]["USE_TMA"] and launches["flash_bwd_kernel"]["USE_TMA"]
        assert (launches["flash_bwd_kernel"]["ATOMIC_DQ"], launches["flash_bwd_kernel"]["DQ"]) == (atomic, not atomic)


@pytest.mark.skipif(DEVICE != "cuda", reason="Inductor launches the Triton kernels on CUDA only")
@pytest.mark.parametrize("switch", ["both", "atomic_dq"])
def test_tma_switch_under_torch_compile_on_gpu(monkeypatch, switch):
    """Inductor launches the TMA kernels (and gives them scratch memory for their descriptors; with ``atomic_dq`` it
    zeroes the float32 dQ before each autotuning candidate, as the autotuner's ``reset_to_zero`` asks)."""
    _one_autotune_entry(monkeypatch)
    monkeypatch.setattr(triton_function, "AUTOTUNED_TMA", triton_function.TMA_CHOICES[switch])
    torch._dynamo.reset()
    (q, k, v), tolerance = _autotuned_inputs()
    out = torch.compile(FlashAttentionTriton.apply, fullgraph=True)(q, k, v, True)
    results = (out, *torch.autograd.grad(out.sum(), (q, k, v)))
    ref_out, _, *ref_grads = float64_reference(q, k, v, torch.ones(q.shape), True)
    for name, actual, expected in zip(("O", "dQ", "dK", "dV"), results, (ref_out, *ref_grads), strict=True):
        assert relative_error(actual.detach().cpu(), expected) < tolerance, name
    torch._dynamo.reset()


def test_tma_switch_in_the_compiled_ops_rejects_misaligned_tensors(monkeypatch):
    """The ops' bodies see fake tensors under ``torch.compile``: they check the starts as offsets into storages."""
    monkeypatch.setattr(triton_function, "AUTOTUNED_TMA", triton_function.TMA_CHOICES["both"])
    q = torch.randn(2 * 16 * 16 + 1, device=DEVICE)[1:].view(2, 16, 16)  # 4 bytes into its storage
    with pytest.raises(ValueError, match="16-byte aligned tensors; got one at byte offset into its storage 0x4"):
        triton_function.flash_attention_forward(q, q, q, True)
    with pytest.raises(ValueError, match="byte offset into its storage"):
        triton_function.flash_attention_backward(q, q, q, q, torch.zeros(2, 16, device=DEVICE), q, True)


def test_inductor_descriptor_reduction_check_reads_torchs_table(monkeypatch):
    """The check reads Inductor's table of kernel ops that access memory (torch 2.11 has none, and misses the op)."""
    from torch._higher_order_ops import triton_kernel_wrap

    monkeypatch.setattr(triton_kernel_wrap, "_KERNEL_ACCESS_OPS", {"tt.descriptor_reduce": None}, raising=False)
    assert triton_function.inductor_sees_descriptor_reductions()
    monkeypatch.setattr(triton_kernel_wrap, "_KERNEL_ACCESS_OPS", {"tt.descriptor_store": None})
    assert not triton_function.inductor_sees_descriptor_reductions()
    monkeypatch.delattr(triton_kernel_wrap, "_KERNEL_ACCESS_OPS")
    assert not triton_function.inductor_sees_descriptor_reductions()
