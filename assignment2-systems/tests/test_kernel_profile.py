"""Kernel profile of a model step: kernel names sorted into categories, the ranking and share arithmetic on
hand-built kernels, attribution to ranges by launch time, the naive attention's FLOPs, and a tiny step profiled on
the CPU (ATen ops standing in for kernels). Nothing asserts on how long anything takes."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from cs336_basics.model_sizes import model_config
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.entry_points import load_entry_point_module
from cs336_systems.benchmarking.kernel_profile import (
    CATEGORIES,
    KernelRecord,
    Range,
    attention_stage_report,
    attribute,
    classify_kernel,
    collect,
    kernel_profile_row,
    naive_attention_flops,
    profile_kernels,
    short_kernel_name,
    summarize_kernels,
)
from cs336_systems.benchmarking.model_benchmark import ModelBenchmarkConfig
from cs336_systems.benchmarking.naive_attention import STAGES
from torch.autograd import DeviceType
from torch.autograd.profiler_util import Interval

BENCH_MODEL = Path(__file__).parents[1] / "benchmarks" / "bench_model.py"

SM90_GEMM = (
    "sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128x32_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_"
    "cublas"
)
ELEMENTWISE = (
    "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>, "
    "std::array<char*, 3ul> >(int, at::native::CUDAFunctor_add<float>, std::array<char*, 3ul>)"
)
SOFTMAX = (
    "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float, float, float, "
    "at::native::(anonymous namespace)::SoftMaxForwardEpilogue>(float*, float const*, int)"
)
REDUCE = (
    "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::func_wrapper_t<float, "
    "at::native::sum_functor<float, float, float>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>, "
    "unsigned int, float, 4, 4> >(at::native::ReduceOp<float, at::native::func_wrapper_t<float, ...>, unsigned int, "
    "float, 4, 4>)"
)
MULTI_TENSOR = (
    "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::(anonymous namespace)::"
    "TensorListMetadata<4>, at::native::(anonymous namespace)::PointwiseOpScalarFunctor<float, 4, 3, 3>, "
    "std::multiplies<float>, float>(at::native::(anonymous namespace)::TensorListMetadata<4>, ...)"
)
FLASH = "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 64, 4, false, false, float>>(Params)"
CUDNN = "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x64_4x1x1_kernel0_0"


@pytest.mark.parametrize(
    ("name", "category"),
    [
        (SM90_GEMM, "matmul"),
        ("ampere_sgemm_128x64_tn", "matmul"),
        ("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT", "matmul"),
        ("void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4>(Params)", "matmul"),
        ("void cublasLt::splitKreduce_kernel<32, 16, int, float, float, float>(...)", "matmul"),
        ("triton_tem_fused_mm_0", "matmul"),
        ("aten::bmm", "matmul"),
        (ELEMENTWISE, "elementwise"),
        ("void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda>(...)", "elementwise"),
        ("triton_poi_fused_add_mul_0", "elementwise"),
        ("aten::add_", "elementwise"),
        (SOFTMAX, "softmax"),
        ("void (anonymous namespace)::softmax_warp_forward<float, float, float, 10, false, false>(...)", "softmax"),
        ("aten::_softmax", "softmax"),
        (REDUCE, "reduction"),
        ("triton_red_fused_sum_0", "reduction"),
        ("aten::amax", "reduction"),
        (MULTI_TENSOR, "optimizer"),
        (FLASH, "attention"),
        (CUDNN, "attention"),
        ("fmha_cutlassF_f32_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel<...>::Params)", "attention"),
        ("flash_fwd_kernel", "attention"),  # our Triton kernel
        ("Memcpy DtoD (Device -> Device)", "other"),
        ("void at::native::(anonymous namespace)::indexSelectLargeIndex<float, long, unsigned int, 2, 2, -2>", "other"),
        ("aten::addmm", "matmul"),  # not the elementwise aten::add
    ],
)
def test_kernels_are_classified_by_name(name, category):
    assert classify_kernel(name) == category


def kernel(name: str, us: float, at: float = 0.0) -> KernelRecord:
    return KernelRecord(name, us, at)


def test_kernels_are_ranked_by_total_time_with_calls_and_shares():
    kernels = [kernel(SM90_GEMM, 30.0), kernel(ELEMENTWISE, 5.0), kernel(SM90_GEMM, 30.0), kernel(SOFTMAX, 15.0)]
    kernels += [kernel(ELEMENTWISE, 5.0), kernel(REDUCE, 10.0), kernel("Memset (Device)", 5.0)]
    summary = summarize_kernels(kernels)
    assert summary["kernel_ms"] == pytest.approx(0.1)
    assert [(k["name"], k["calls"]) for k in summary["kernels"]] == [
        (SM90_GEMM, 2),
        (SOFTMAX, 1),
        (REDUCE, 1),  # a tie with ELEMENTWISE (10 µs each): by name
        (ELEMENTWISE, 2),
        ("Memset (Device)", 1),
    ]
    top = summary["kernels"][0]
    assert top == {
        "name": SM90_GEMM,
        "category": "matmul",
        "calls": 2,
        "total_ms": pytest.approx(0.06),
        "mean_us": pytest.approx(30.0),
        "share": pytest.approx(0.6),
    }
    categories = summary["categories"]
    assert list(categories) == list(CATEGORIES)
    assert {name: round(c["share"], 6) for name, c in categories.items() if c["calls"]} == {
        "matmul": 0.6,
        "softmax": 0.15,
        "reduction": 0.1,
        "elementwise": 0.1,
        "other": 0.05,
    }
    assert categories["elementwise"]["calls"] == 2 and categories["attention"] == {"ms": 0.0, "share": 0.0, "calls": 0}
    assert sum(c["share"] for c in categories.values()) == pytest.approx(1.0)


def test_an_empty_phase_has_no_kernels_and_zero_shares():
    summary = summarize_kernels([])
    assert summary["kernel_ms"] == 0.0 and summary["kernels"] == []
    assert all(c == {"ms": 0.0, "share": 0.0, "calls": 0} for c in summary["categories"].values())


def test_kernels_belong_to_every_range_their_launch_falls_in():
    ranges = [Range("step", 0, 100), Range("forward", 0, 40), Range("backward", 40, 100)]
    ranges += [Range("computing softmax", 10, 12), Range("computing softmax", 20, 22)]
    kernels = [kernel("a", 1, at=5), kernel("b", 1, at=11), kernel("c", 1, at=21), kernel("d", 1, at=50)]
    kernels.append(kernel("outside", 1, at=150))
    names = {range_name: [k.name for k in found] for range_name, found in attribute(kernels, ranges).items()}
    assert names == {
        "step": ["a", "b", "c", "d"],
        "forward": ["a", "b", "c"],
        "backward": ["d"],
        "computing softmax": ["b", "c"],
    }


def event(name: str, device: DeviceType, start: float, end: float, id: int = 0, annotation: bool = False):
    """A stand-in for a profiler ``FunctionEvent``: what :func:`collect` reads."""
    return SimpleNamespace(
        name=name,
        device_type=device,
        time_range=Interval(start, end),
        id=id,
        is_user_annotation=annotation,
        self_cpu_time_total=end - start,
    )


def test_kernels_are_placed_by_their_launch_call_and_gpu_annotations_are_left_out():
    """With CUDA activity a ``record_function`` range also appears on the GPU's timeline, later than on the host:
    it is neither a kernel nor an interval to attribute by (taking it for one lost the backward's kernels)."""
    cpu, cuda = DeviceType.CPU, DeviceType.CUDA
    events = [
        event("forward", cpu, 0, 10, annotation=True),
        event("backward", cpu, 10, 20, annotation=True),
        event("Optimizer.step#AdamW.step", cpu, 20, 22, annotation=True),
        event("aten::mm", cpu, 1, 2, id=500),
        event("cudaLaunchKernel", cpu, 1.5, 1.8, id=7),
        event("cudaLaunchKernel", cpu, 12, 12.5, id=8),  # from autograd's thread, inside the host's backward range
        event(SM90_GEMM, cuda, 9, 14, id=7),  # runs late: by its launch it is the forward's
        event(SM90_GEMM, cuda, 14, 17, id=8),
        event("Memset (Device)", cuda, 21, 21.5, id=9),  # no launch record: placed by its own start
        event("backward", cuda, 14, 17, annotation=True),  # the GPU's copy of the range
        event("Optimizer.step#AdamW.step", cuda, 20, 22, annotation=True),
    ]
    kernels, ranges, unlinked = collect(events, ["forward", "backward"], on_gpu=True)
    assert [(k.name, k.duration_us, k.launched_us) for k in kernels] == [
        (SM90_GEMM, 5, 1.5),
        (SM90_GEMM, 3, 12),
        ("Memset (Device)", 0.5, 21),
    ]
    assert ranges == [Range("forward", 0, 10), Range("backward", 10, 20)] and unlinked == 1
    by_range = attribute(kernels, ranges)
    assert [k.duration_us for k in by_range["forward"]] == [5] and [k.duration_us for k in by_range["backward"]] == [3]
    ops, _, _ = collect(events[:4], ["forward", "backward"], on_gpu=False)
    assert [op.name for op in ops] == ["aten::mm"]


def test_naive_attention_flops_and_the_softmax_against_matmul_ratio():
    model = model_config("small", context_length=128)  # 12 layers, 12 heads of 64
    flops = naive_attention_flops(model, batch_size=4)
    scores = 4 * 12 * 128 * 128 * 12
    scores_stage, softmax_stage, matmul_stage = STAGES
    assert flops == {scores_stage: 2 * scores * 64, softmax_stage: 5 * scores, matmul_stage: 2 * scores * 64}
    stages = {
        scores_stage: [kernel(SM90_GEMM, 8.0), kernel(ELEMENTWISE, 3.0)],  # the scaling and mask are not matmul
        softmax_stage: [kernel(REDUCE, 2.0), kernel(ELEMENTWISE, 4.0)],
        matmul_stage: [kernel(SM90_GEMM, 12.0)],
    }
    report = attention_stage_report(stages, flops)
    assert report["softmax_ms"] == pytest.approx(0.006) and report["matmul_ms"] == pytest.approx(0.02)
    assert report["time_ratio"] == pytest.approx(0.3)
    assert report["flop_ratio"] == pytest.approx(5 / (4 * 64))
    assert report["stages"][scores_stage]["kernel_ms"] == pytest.approx(0.011)


def test_short_kernel_names_drop_templates_and_fit_the_width():
    assert short_kernel_name(ELEMENTWISE) == "at::native::vectorized_elementwise_kernel<…>"
    assert short_kernel_name("ampere_sgemm_128x64_tn") == "ampere_sgemm_128x64_tn"
    assert short_kernel_name("pytorch_flash::flash_fwd_kernel(Params)") == "pytorch_flash::flash_fwd_kernel(…)"
    assert len(short_kernel_name(SM90_GEMM, width=40)) == 40 and short_kernel_name(SM90_GEMM, 40).endswith("…")


@pytest.mark.parametrize("attention", ["sdpa", "naive"])
def test_a_tiny_training_step_profiled_on_the_cpu_attributes_time_to_each_phase(attention):
    config = ModelBenchmarkConfig(
        "tiny", 16, 2, "train_step", "fp32", 1, 1, device="cpu", nvtx=False, attention=attention
    )
    result = profile_kernels(config)
    assert result["status"] == "ok" and result["time_source"] == "CPU ops (self time)"
    phases = result["phases"]
    assert list(phases) == ["forward", "backward", "optimizer_step", "step"]
    for name in ["forward", "backward", "optimizer_step"]:
        assert phases[name]["kernel_ms"] > 0 and result["wall_ms"][name] > 0
    assert phases["step"]["kernel_ms"] == pytest.approx(sum(phases[p]["kernel_ms"] for p in list(phases)[:3]))
    forward_ops = {k["name"] for k in phases["forward"]["kernels"]}
    assert "aten::mm" in forward_ops and phases["forward"]["categories"]["matmul"]["ms"] > 0
    assert "aten::addcdiv_" in {k["name"] for k in phases["optimizer_step"]["kernels"]}  # AdamW's update
    assert "aten::addcdiv_" not in forward_ops
    row = kernel_profile_row(result)
    assert row["top_forward_calls"] >= 1 and 0 < row["forward_matmul_share"] <= 1
    if attention == "naive":
        stages = result["attention_stages"]["stages"]
        assert {k["name"] for k in stages["computing softmax"]["kernels"]} >= {"aten::amax", "aten::exp", "aten::sum"}
        assert "aten::bmm" in {k["name"] for k in stages["final matmul"]["kernels"]}
        assert result["attention_stages"]["matmul_ms"] > 0 and row["attention_flop_ratio"] == pytest.approx(5 / 128)
    else:
        assert "attention_stages" not in result and "attention_time_ratio" not in row


def test_the_forward_mode_profiles_inference_only():
    config = ModelBenchmarkConfig("tiny", 8, 1, "forward", "fp32", 0, 1, device="cpu", nvtx=False)
    result = profile_kernels(config)
    assert list(result["phases"]) == ["forward", "step"]
    assert result["phases"]["forward"]["kernel_ms"] == pytest.approx(result["phases"]["step"]["kernel_ms"])


def test_kernel_profiles_and_memory_profiles_are_exclusive_flags(capsys):
    sweep_config = load_entry_point_module(BENCH_MODEL).SweepConfig
    assert parse_config(sweep_config, ["--profile_kernels"]).profile_kernels
    with pytest.raises(SystemExit):
        parse_config(sweep_config, ["--profile_kernels", "--memory"])
    assert "exclusive" in capsys.readouterr().err


def test_cells_write_one_kernel_file_each(tmp_path):
    bench = load_entry_point_module(BENCH_MODEL)
    row = {"size": "xl", "context_length": 512, "precision": "fp32", "mode": "forward", "attention": "naive"}
    row |= {"compile": False, "warmup": 2}
    assert bench.kernel_profile_path(row, str(tmp_path), False) == str(
        tmp_path / "kernels_xl_512_fp32_forward_naive.json"
    )
    assert bench.kernel_profile_path({**row, "compile": True}, "d", True).endswith("naive_compiled_warmup2.json")
