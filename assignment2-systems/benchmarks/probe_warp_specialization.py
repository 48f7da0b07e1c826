"""Is Triton's automatic warp specialisation right, and faster, for the FlashAttention forward on this GPU?

FlashAttention-3's lead over FlashAttention-2 on Hopper comes from warp specialisation: a producer warpgroup issues
the TMA loads while consumer warpgroups, each owning part of the query tile, run the matmuls and the softmax with
more registers. Triton exposes this as ``tl.range(..., warp_specialize=True)``, documented as Blackwell-only, yet
Triton 3.6 runs a Hopper pass for it (``NVGPUWarpSpecialization``): our forward's loop compiles to one producer and
two consumer warpgroups (12 warps for ``num_warps=4``, 232 registers per consumer thread). Our kernels' layout (a
masked and an unmasked loop per program) crashes that pass, and a conditional mask turns it off, so this probe
times a minimal forward with one loop over the visible key tiles (an unconditional causal mask), the same kernel
with and without the flag, against each other, a float32 reference and cuDNN.

Per (tiles, warps, stages, flag, causal): the warps the compiled kernel launches with, the largest error of O and
of the logsumexp L at a small shape (``--check_seq_len``), the share of rows whose output is wrong, and the time at
the main shape. ``warp_specialization.json`` / ``.md`` go to ``--out_dir``.

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \
        python3 assignment2-systems/benchmarks/probe_warp_specialization.py --out_dir /tmp/ws_probe
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from cs336_basics.toolkit.cli import parse_config

O_TOLERANCE = 3e-2
"""A bf16 output row further than this from float32 attention is wrong (the plain kernel's rows are within 8e-3)."""
L_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ProbeConfig:
    """The warp-specialised and plain minimal forwards, checked and timed on one shape."""

    out_dir: str = field(default="runs/warp_specialization", metadata={"help": "folder for the .json and .md"})
    batch: int = field(default=16, metadata={"help": "batch size of the timed shape"})
    heads: int = field(default=16, metadata={"help": "attention heads of the timed shape"})
    seq_len: int = field(default=16384, metadata={"help": "sequence length of the timed shape"})
    check_seq_len: int = field(default=2048, metadata={"help": "sequence length of the correctness check"})
    head_dim: int = field(default=64, metadata={"help": "head size"})
    variants: list[str] = field(
        default_factory=lambda: ["128,64,4,2", "128,128,4,2", "128,64,4,3", "128,64,8,3", "128,128,8,2"],
        metadata={"help": "BLOCK_M,BLOCK_N,num_warps,num_stages; each is run with and without the flag"},
    )
    warmup_ms: int = field(default=50, metadata={"help": "do_bench warm-up time per row"})
    rep_ms: int = field(default=200, metadata={"help": "do_bench measuring time per row"})

    def __post_init__(self):
        for variant in self.variants:
            parts = variant.split(",")
            if len(parts) != 4 or not all(part.isdigit() and int(part) > 0 for part in parts):
                raise ValueError(f"variant {variant!r}: expected four positive integers BLOCK_M,BLOCK_N,warps,stages")
            block_m, block_n = int(parts[0]), int(parts[1])
            if self.check_seq_len % block_m or self.seq_len % block_m or block_m % block_n:
                raise ValueError(f"variant {variant!r}: BLOCK_M must divide both lengths and be a multiple of BLOCK_N")

    def tiles(self) -> list[tuple[int, int, int, int]]:
        return [tuple(int(part) for part in variant.split(",")) for variant in self.variants]


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(ProbeConfig, description=__doc__)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from cs336_basics.toolkit.atomic import write_text_atomic  # noqa: E402
from cs336_basics.toolkit.tables import records_table  # noqa: E402
from jaxtyping import Float  # noqa: E402
from torch import Tensor  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

LOG2_E = tl.constexpr(1.4426950408889634)
LN_2 = tl.constexpr(0.6931471805599453)


@triton.jit
def minimal_forward_kernel(
    Q, K, V, Out, L, N, qk_scale,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, IS_CAUSAL: tl.constexpr,
    WARP_SPECIALIZE: tl.constexpr,
):  # fmt: skip
    """O and L for one query tile of one contiguous ``(n, d)`` row, longest tiles first, every tile through TMA; one
    loop over all visible key tiles, the causal mask on each (the form the warp-specialisation pass accepts)."""
    tile = tl.num_programs(0) - 1 - tl.program_id(0)
    row = tl.program_id(1).to(tl.int64)
    base = row * N * HEAD_DIM
    q_rows = tl.make_tensor_descriptor(Q + base, [N, HEAD_DIM], [HEAD_DIM, 1], [BLOCK_M, HEAD_DIM])
    k_rows = tl.make_tensor_descriptor(K + base, [N, HEAD_DIM], [HEAD_DIM, 1], [BLOCK_N, HEAD_DIM])
    v_rows = tl.make_tensor_descriptor(V + base, [N, HEAD_DIM], [HEAD_DIM, 1], [BLOCK_N, HEAD_DIM])
    o_rows = tl.make_tensor_descriptor(Out + base, [N, HEAD_DIM], [HEAD_DIM, 1], [BLOCK_M, HEAD_DIM])
    q_start = tile * BLOCK_M
    offs_m = q_start + tl.arange(0, BLOCK_M)
    q = q_rows.load([q_start, 0])
    row_max = tl.full([BLOCK_M], float("-inf"), tl.float32)
    row_sum = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    end = q_start + BLOCK_M if IS_CAUSAL else N
    for key_start in tl.range(0, end, BLOCK_N, warp_specialize=WARP_SPECIALIZE):
        k = k_rows.load([key_start, 0])
        v = v_rows.load([key_start, 0])
        scores = tl.dot(q, tl.trans(k))
        if IS_CAUSAL:
            scores = tl.where(offs_m[:, None] >= (key_start + tl.arange(0, BLOCK_N))[None, :], scores, float("-inf"))
        new_max = tl.maximum(row_max, tl.max(scores, 1) * qk_scale)
        probs = tl.math.exp2(scores * qk_scale - new_max[:, None])
        correction = tl.math.exp2(row_max - new_max)
        row_sum = row_sum * correction + tl.sum(probs, 1)
        acc = tl.dot(probs.to(v.dtype), v, acc * correction[:, None])
        row_max = new_max
    o_rows.store([q_start, 0], (acc / row_sum[:, None]).to(Out.dtype.element_ty))
    tl.store(L + row * N + offs_m, (row_max + tl.math.log2(row_sum)) * LN_2, mask=offs_m < N)


def minimal_forward(
    q: Float[Tensor, "batch heads n d"],
    k: Float[Tensor, "batch heads n d"],
    v: Float[Tensor, "batch heads n d"],
    out: Float[Tensor, "batch heads n d"],
    lse: Float[Tensor, "batch heads n"],
    tiles: tuple[int, int, int, int],
    is_causal: bool,
    warp_specialize: bool,
) -> int:
    """Fill ``out`` and ``lse`` from contiguous inputs; returns the warps the compiled kernel launched with
    (more than ``num_warps`` when the pass specialised the loop; the interpreter compiles nothing: ``num_warps``)."""
    block_m, block_n, num_warps, num_stages = tiles
    batch, heads, n, head_dim = q.shape
    triton.set_allocator(lambda size, alignment, stream: torch.empty(size, dtype=torch.int8, device=q.device))
    compiled = minimal_forward_kernel[(triton.cdiv(n, block_m), batch * heads)](
        q, k, v, out, lse, n, head_dim**-0.5 * LOG2_E.value,
        BLOCK_M=block_m, BLOCK_N=block_n, HEAD_DIM=head_dim, IS_CAUSAL=is_causal, WARP_SPECIALIZE=warp_specialize,
        num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    return num_warps if compiled is None else compiled.metadata.num_warps


def reference(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    """Attention and its logsumexp in float32."""
    scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
    if is_causal:
        n = q.shape[-2]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.softmax(scores, -1) @ v.float(), torch.logsumexp(scores, -1)


def check(q: Tensor, k: Tensor, v: Tensor, tiles, is_causal: bool, warp_specialize: bool) -> dict:
    """Errors of one variant against :func:`reference` (NaN compares as wrong)."""
    expected_out, expected_lse = reference(q, k, v, is_causal)
    out, lse = torch.full_like(q, float("nan")), torch.full(q.shape[:-1], float("nan"), device=q.device)
    warps = minimal_forward(q, k, v, out, lse, tiles, is_causal, warp_specialize)
    row_error = (out.float() - expected_out).abs().amax(-1).nan_to_num(float("inf"))
    lse_error = (lse - expected_lse).abs().nan_to_num(float("inf")).max().item()
    right = row_error.max().item() <= O_TOLERANCE and lse_error <= L_TOLERANCE
    return {
        "launched_warps": warps,
        "max_out_error": row_error.max().item(),
        "max_lse_error": lse_error,
        "wrong_row_share": (row_error > O_TOLERANCE).float().mean().item(),
        "verdict": "right" if right else "wrong",
    }


def attention_flops(batch: int, heads: int, n: int, head_dim: int, is_causal: bool) -> float:
    """The two matmuls' FLOPs (halved when causal), as FlashAttention's papers count them."""
    return 4 * batch * heads * n * n * head_dim / (2 if is_causal else 1)


def timed(fn: Callable[[], object], flops: float, config: ProbeConfig) -> dict:
    """Median milliseconds of ``fn`` and the TFLOP/s they make of ``flops``."""
    ms = triton.testing.do_bench(fn, warmup=config.warmup_ms, rep=config.rep_ms, return_mode="median")
    return {"ms": round(ms, 3), "tflops": round(flops / ms / 1e9)}


def cudnn_attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> Tensor:
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def probe(config: ProbeConfig) -> list[dict]:
    torch.manual_seed(0)
    small_shape = (2, 4, config.check_seq_len, config.head_dim)
    small = [torch.randn(small_shape, device="cuda", dtype=torch.bfloat16) for _ in range(3)]
    shape = (config.batch, config.heads, config.seq_len, config.head_dim)
    q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    out, lse = torch.empty_like(q), torch.empty(shape[:-1], device="cuda")
    rows = []
    for is_causal in (True, False):
        flops = attention_flops(*shape, is_causal)
        cudnn = functools.partial(cudnn_attention, q, k, v, is_causal)
        rows.append({"kernel": "SDPA cuDNN", "causal": is_causal, **timed(cudnn, flops, config)})
        for tiles in config.tiles():
            for warp_specialize in (False, True):
                row = {"kernel": "minimal forward", "causal": is_causal, "warp_specialize": warp_specialize}
                row.update(zip(("BLOCK_M", "BLOCK_N", "num_warps", "num_stages"), tiles, strict=True))
                try:
                    row.update(check(*small, tiles, is_causal, warp_specialize))
                    ours = functools.partial(minimal_forward, q, k, v, out, lse, tiles, is_causal, warp_specialize)
                    row.update(timed(ours, flops, config))
                except Exception as error:  # noqa: BLE001 - a compile failure is this probe's result
                    row["verdict"] = f"error: {type(error).__name__}: {str(error).strip().splitlines()[0][:120]}"
                rows.append(row)
                print(row, flush=True)
    return rows


def main(config: ProbeConfig) -> None:
    rows = probe(config)
    machine = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__}
    os.makedirs(config.out_dir, exist_ok=True)
    result = {**machine, "config": asdict(config), "rows": rows}
    write_text_atomic(os.path.join(config.out_dir, "warp_specialization.json"), json.dumps(result, indent=1))
    columns = ["kernel", "causal", "BLOCK_M", "BLOCK_N", "num_warps", "num_stages", "warp_specialize"]
    columns += ["launched_warps", "verdict", "max_out_error", "max_lse_error", "wrong_row_share", "ms", "tflops"]
    header = (
        f"{machine['device']}, torch {machine['torch']}, triton {machine['triton']}; timed at batch {config.batch}, "
        f"{config.heads} heads, n = {config.seq_len}, d = {config.head_dim}, bf16; checked at n = "
        f"{config.check_seq_len} against float32"
    )
    table = records_table(rows, columns)
    write_text_atomic(os.path.join(config.out_dir, "warp_specialization.md"), f"{header}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    if not torch.cuda.is_available():
        sys.exit("probe_warp_specialization.py needs a CUDA GPU (Hopper or newer for the tensor descriptors)")
    main(CONFIG)
