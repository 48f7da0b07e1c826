"""The SDPA backend classifier on kernel names. The flash and memory-efficient names are demangled symbols of
PyTorch's ``libtorch_cuda.so`` (the workspace's torch; the GPU machine runs 2.11, whose kernels share these sources);
the cuDNN name is built on the prefix found in cuDNN 9's ``libcudnn_engines_runtime_compiled`` (its full run-time
name is not in the library). The cuDNN backward's names and the memset are those the eighth H200 run profiled in the
`small` model's training step (``benchmarks/results/h200_run8/``: torch 2.11.0+cu130)."""

import pytest
import torch
import torch.nn.functional as F
from cs336_systems.benchmarking.sdpa_backend import classify_kernel, classify_step, profile_sdpa_backend

FLASH_FORWARD = (
    "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4, false, false, cutlass::bfloat16_t, "
    "Flash_kernel_traits<128, 128, 64, 4, cutlass::bfloat16_t> >, false, false, false, false, false, false, false, "
    "false>(pytorch_flash::Flash_fwd_params)"
)
FLASH_BACKWARD_HELPER = (
    "void pytorch_flash::flash_bwd_convert_dq_kernel<Flash_bwd_kernel_traits<128, 64, 64, 8, 4, 2, 2, true, false, "
    "cutlass::half_t, Flash_kernel_traits<128, 64, 64, 8, cutlass::half_t> > >(pytorch_flash::Flash_bwd_params, int)"
)
EFFICIENT_FORWARD = (
    "fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel<cutlass::bfloat16_t, "
    "cutlass::arch::Sm80, true, 64, 64, 64, true, true>::Params)"
)
EFFICIENT_BACKWARD = (
    "fmha_cutlassB_bf16_aligned_64x64_k64_sm80(PyTorchMemEffAttention::AttentionBackwardKernel<cutlass::arch::Sm80, "
    "cutlass::bfloat16_t, true, false, true, 64, 64, 64, false>::Params)"
)
CUDNN_FORWARD = "cudnn_generated_fort_native_sdpa_sm90_knob_7_64x128x64_4x1x1_kernel0_0"
CUDNN_H200_FORWARD = (
    "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64_4x1x1_cga1x1x1_kernel0_0"
)
CUDNN_H200_BACKWARD = (
    "cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_26_64x64x64_1x4x1_cga1x1x1_kernel0_0"
)
CUDNN_DOT_DO_O = (
    "void cudnn::fusion::compute_dot_do_o_specialized<true, 64>(void const*, void const*, void*, void*, "
    "unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, "
    "unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, "
    "unsigned int, unsigned int, unsigned int, float, void const*, void const*, void const*, void const*, "
    "void const*, bool, void const*, void*, void const*, int, int, int, int, int, int, int, int, int)"
)
CUDNN_CONVERT_DQ = (
    "void cudnn::fusion::convert_dq_to_16bits<true>(void const*, void*, unsigned int, unsigned int, "
    "unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, "
    "unsigned int, float const*, float const*, float const*, float*, void const*, void*, void*, bool, "
    "bool)"
)
MEMSET = "Memset (Device)"
MEMCPY = "Memcpy DtoD (Device -> Device)"
GEMM = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_kernel"
FILL = "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, std::array<char*, 1ul> >"
OUR_TRITON_FORWARD = "flash_fwd_kernel"


@pytest.mark.parametrize(
    ("name", "backend"),
    [(FLASH_FORWARD, "flash"), (FLASH_BACKWARD_HELPER, "flash"), (EFFICIENT_FORWARD, "efficient")]
    + [(EFFICIENT_BACKWARD, "efficient"), (CUDNN_FORWARD, "cudnn"), (GEMM, None), (FILL, None)]
    + [(CUDNN_H200_FORWARD, "cudnn"), (CUDNN_H200_BACKWARD, "cudnn"), (CUDNN_DOT_DO_O, "cudnn")]
    + [(CUDNN_CONVERT_DQ, "cudnn"), (MEMSET, None), (OUR_TRITON_FORWARD, None)],
)
def test_kernel_names_are_matched_to_their_backend(name, backend):
    assert classify_kernel(name) == backend


def test_a_step_is_named_by_its_attention_kernels_not_its_other_kernels():
    op = "aten::_scaled_dot_product_cudnn_attention"
    result = classify_step([GEMM, CUDNN_FORWARD, FILL], {CUDNN_FORWARD: op, FILL: op}, [op])
    assert result == {
        "backend": "cudnn",
        "kernels": {CUDNN_FORWARD: "cudnn"},
        "ops": ["aten::_scaled_dot_product_cudnn_attention"],
    }
    flash = classify_step([FLASH_FORWARD, FLASH_BACKWARD_HELPER, GEMM], {}, [])
    assert flash["backend"] == "flash" and set(flash["kernels"]) == {FLASH_FORWARD, FLASH_BACKWARD_HELPER}


def test_a_cudnn_training_step_is_cudnn_with_its_helpers_and_without_memory_operations():
    forward_op, backward_op = (
        "aten::_scaled_dot_product_cudnn_attention",
        "aten::_scaled_dot_product_cudnn_attention_backward",
    )
    backward = [CUDNN_H200_BACKWARD, CUDNN_DOT_DO_O, CUDNN_CONVERT_DQ, MEMSET, MEMCPY]
    inside = {CUDNN_H200_FORWARD: forward_op} | dict.fromkeys(backward, backward_op)
    result = classify_step([GEMM, CUDNN_H200_FORWARD, *backward], inside, [forward_op, backward_op])
    assert result["backend"] == "cudnn"
    assert result["kernels"] == dict.fromkeys([CUDNN_H200_FORWARD, *backward[:3]], "cudnn")


def test_unknown_kernels_inside_an_sdpa_op_are_reported_as_such():
    new_kernel = "cudnn_sm100_attention_prefill_kernel"
    ops = ["aten::_scaled_dot_product_cudnn_attention", "aten::_scaled_dot_product_cudnn_attention_backward"]
    result = classify_step([new_kernel, GEMM], {new_kernel: ops[0], FILL: ops[0]}, ops)
    assert result["backend"] == "unknown" and result["kernels"] == {new_kernel: "unknown"}
    mixed = classify_step([EFFICIENT_FORWARD, new_kernel], {new_kernel: ops[1]}, ops)
    assert mixed["backend"] == "efficient + unknown"


def test_math_is_named_by_its_op_and_nothing_by_nothing():
    op = "aten::_scaled_dot_product_attention_math"
    softmax = "void (anonymous namespace)::softmax_warp_forward<c10::BFloat16, c10::BFloat16, float, 10, false, false>"
    math = classify_step([GEMM, softmax], {GEMM: op, softmax: op}, [op])
    assert math == {"backend": "math", "kernels": {GEMM: "math", softmax: "math"}, "ops": [op]}
    assert classify_step([GEMM], {}, [op])["backend"] == "math"
    assert classify_step([GEMM, FILL], {}, [])["backend"] == "unknown"


def test_the_profile_pass_records_the_sdpa_op_on_the_cpu():
    q, k, v = (torch.randn(1, 2, 8, 16, requires_grad=True) for _ in range(3))
    result = profile_sdpa_backend(
        lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward(), torch.device("cpu")
    )
    assert result["ops"] and all(op.startswith("aten::_scaled_dot_product") for op in result["ops"])
    assert result["kernels"] == {} and result["backend"] in ("math", "unknown")
