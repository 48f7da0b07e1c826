"""Kernel times of a profiled step: which kernels are attention (SDPA's and ours), and the per-step sums."""

import pytest
import torch
from cs336_systems.benchmarking.kernel_times import (
    is_attention_kernel,
    profile_kernel_times,
    summarise_kernel_times,
)

CUDNN = "cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_26_64x64x64_4x1x1_cga1x1x1_kernel0_0"
PYTORCH_FLASH = "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 64, 4, false, false>>(Params)"
GEMM = "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT"


@pytest.mark.parametrize(
    ("name", "attention"),
    [
        ("flash_fwd_kernel", True),
        ("flash_bwd_preprocess_kernel", True),
        ("flash_bwd_kernel", True),
        ("flash_bwd_atomic_dq_kernel", True),
        ("gluon_forward_kernel", True),
        ("gluon_backward_kernel", True),
        (CUDNN, True),
        (PYTORCH_FLASH, True),
        (GEMM, False),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>", False),
        ("triton_poi_fused_flash_fwd_kernel_0", False),  # an Inductor kernel that only mentions the name
    ],
)
def test_attention_kernels_are_sdpa_s_and_ours(name, attention):
    assert is_attention_kernel(name) is attention


def test_times_are_summed_per_step_and_per_attention_kernel():
    kernels = [(GEMM, 60.0), ("flash_fwd_kernel", 90.0), ("flash_bwd_kernel", 265.0), (GEMM, 63.0)] * 2
    summary = summarise_kernel_times(kernels, steps=2)
    assert summary["cuda_ms"] == pytest.approx((60 + 90 + 265 + 63) / 1e3)
    assert summary["attention_ms"] == pytest.approx((90 + 265) / 1e3)
    assert summary["attention_kernels"] == {
        "flash_bwd_kernel": {"us_per_step": 265.0, "calls_per_step": 1.0},
        "flash_fwd_kernel": {"us_per_step": 90.0, "calls_per_step": 1.0},
    }
    assert summarise_kernel_times([], steps=1) == {"cuda_ms": 0.0, "attention_ms": 0.0, "attention_kernels": {}}
    with pytest.raises(ValueError, match="at least one profiled step"):
        summarise_kernel_times(kernels, steps=0)


def test_kernel_times_need_a_cuda_device():
    with pytest.raises(ValueError, match="need a CUDA device"):
        profile_kernel_times(lambda: None, torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA kernels need a GPU")
def test_a_profiled_step_reports_its_matmul_and_sdpa_kernels():
    q, k, v = (torch.randn(2, 4, 256, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    weight = torch.randn(64, 64, device="cuda", dtype=torch.bfloat16)

    def step():
        torch.nn.functional.scaled_dot_product_attention(q @ weight, k, v, is_causal=True).sum().backward()

    step()
    summary = profile_kernel_times(step, torch.device("cuda"), steps=2)
    assert 0 < summary["attention_ms"] < summary["cuda_ms"]
    assert all(entry["calls_per_step"] >= 1 for entry in summary["attention_kernels"].values())
