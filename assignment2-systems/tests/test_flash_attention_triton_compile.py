"""The Triton kernels under ``torch.compile`` (issue 17).

``torch.compile`` launches the kernels from Inductor's generated code with a signature Inductor writes itself:
torch 2.11 types a Python float as fp64 where Triton's own launch types it fp32, and types lengths int64 under
dynamic shapes. An fp64 softmax scale once made ``tl.dot``'s accumulator fp64 and failed the compile on the GPU,
and int64 lengths gave one backward variable two types. Triton's front end (Python AST to TTIR) needs no GPU, so
every kernel and autotuning configuration is compiled here with the arguments the ``torch.compile`` ops pass,
typed as each launcher types them, and its TTIR must hold no fp64. It runs in a subprocess because without a GPU
this session's Triton is imported in interpreter mode (``conftest.py``), whose functions the compiler cannot take.
"""

import itertools

import pytest
import sympy
import torch
from cs336_systems.flash_attention import FlashAttentionTriton
from cs336_systems.flash_attention.triton_function import _backward_grid, _length_bucket
from torch._dynamo.source import ConstantSource
from torch.fx.experimental.symbolic_shapes import ShapeEnv

from tests.compiled_triton_probe import run_compiled_triton_probe
from tests.flash_attention_checks import float64_reference, random_qkv, relative_error
from tests.flash_kernel_front_end import CASES

pytest.importorskip("triton")

# One subprocess compiles every case (imports ~10 s, then ~120 distinct front-end compiles of 0.05-0.15 s each); the
# margin is for a loaded machine, and the subprocess's own guard (300 s) reports where a stalled one was.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def front_end_errors() -> dict[str, str | None]:
    errors = run_compiled_triton_probe("tests.flash_kernel_front_end")
    if "skip" in errors:
        pytest.skip(errors["skip"])
    return errors


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_kernels_compile_to_ttir_as_launched_under_torch_compile(front_end_errors, case):
    error = front_end_errors[case.id]
    assert error is None, error


@pytest.mark.parametrize(("n_queries", "n_keys", "bucket"), [(1, 1, 1), (3000, 100, 4096), (100, 4096, 4096)])
def test_length_bucket_rounds_the_longer_sequence_up_to_a_power_of_two(n_queries, n_keys, bucket):
    assert _length_bucket(n_queries, n_keys) == bucket


def test_length_bucket_keeps_symbolic_lengths_symbolic():
    """Under ``torch.compile`` with dynamic shapes the ops see the lengths as SymInts: the bucket must come back
    a plain int without pinning the length to its current value (a recompilation per length, and an error for
    a dimension marked dynamic)."""
    shape_env = ShapeEnv()
    n_queries = shape_env.create_symintnode(shape_env.create_symbol(3000, ConstantSource("n_queries")), hint=3000)
    bucket = _length_bucket(n_queries, 100)
    assert type(bucket) is int and bucket == 4096
    assert not shape_env.replace(n_queries.node.expr).is_number


@pytest.mark.parametrize(("dkdv", "dq"), list(itertools.product((True, False), repeat=2)))
def test_backward_grid_takes_symbolic_lengths(dkdv, dq):
    """Under dynamic shapes the backward op builds its grid from SymInt lengths; on the H200 torch 2.11 failed
    there with "BooleanAtom not allowed in this context" when the grid multiplied a count by a pass flag. The grid
    is built from SymInts (torch 2.15 promotes such a bool to an int, so these alone pass either way) and from the
    sympy expressions they wrap (where a bool factor fails on any torch), and must give the plain-int grid's counts."""
    meta = {"BLOCK_N1": 64, "BLOCK_M2": 128}
    lengths = {"n_queries": 300, "n_keys": 500}
    expected = _backward_grid(6, *lengths.values(), dkdv, dq)(meta)

    shape_env = ShapeEnv()
    symints = [
        shape_env.create_symintnode(shape_env.create_symbol(n, ConstantSource(name)), hint=n)
        for name, n in lengths.items()
    ]
    grid = _backward_grid(6, *symints, dkdv, dq)(meta)
    assert tuple(count if type(count) is int else count.node.hint for count in grid) == expected

    symbols = {name: sympy.Symbol(name, integer=True, positive=True) for name in lengths}
    grid = _backward_grid(6, *symbols.values(), dkdv, dq)(meta)
    values = {symbols[name]: n for name, n in lengths.items()}
    assert tuple(int(sympy.sympify(count).subs(values)) for count in grid) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="Inductor launches the Triton kernels on CUDA only")
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.bfloat16, 2e-2), (torch.float32, 5e-3)])
def test_compiled_with_dynamic_lengths_matches_the_reference(dtype, tolerance):
    """Two ragged lengths through one function compiled with dynamic shapes: the lengths reach the kernels as
    symbolic int64 arguments (the eager path and ``test_flash_attention_triton.py`` cover static shapes)."""
    compiled = torch.compile(FlashAttentionTriton.apply, fullgraph=True, dynamic=True)
    for n in (300, 400):
        q, k, v = random_qkv((2, 2, n, 64), n, dtype, "cuda", seed=n)
        out = compiled(q, k, v, True)
        out.sum().backward()
        ref_out, _, ref_dq, ref_dk, ref_dv = float64_reference(q, k, v, torch.ones(q.shape), True)
        checks = [("O", out, ref_out), ("dQ", q.grad, ref_dq), ("dK", k.grad, ref_dk), ("dV", v.grad, ref_dv)]
        for name, actual, expected in checks:
            error = relative_error(actual.detach().cpu(), expected)
            assert error < tolerance, f"{name} at {n} tokens: relative error {error:.2e}"
