"""Front-end compile (Python AST to TTIR) of the Triton kernels with the arguments the ``torch.compile`` ops pass.

Run as ``python -m tests.flash_kernel_front_end`` in a process that imports Triton without ``TRITON_INTERPRET``:
in the interpreter every ``triton.jit`` function, Triton's own library included, is decorated for interpretation
and the compiler cannot take it. Prints one JSON object: case id -> null (compiled) or the first error, or
``{"skip": reason}`` when this Triton lacks the compiler API driven here.
"""

import json
import os
from dataclasses import dataclass

import torch

POINTER_TYPES = {torch.bfloat16: "*bf16", torch.float16: "*fp16", torch.float32: "*fp32"}
HOPPER = (90, 32)  # compute capability, warp size
# How each launcher types a Python float and a Python int: torch 2.11's Inductor writes fp64 for floats (Triton's
# own launch, fp32), and i64 for lengths that are symbolic (dynamic shapes).
TYPINGS = {
    "triton-launch": ("fp32", "i32"),
    "inductor-static": ("fp64", "i32"),
    "inductor-dynamic": ("fp64", "i64"),
}
# op -> number of queries; both launchers make a length of 1 a constant, and the tile counts and L2 group sizes
# derived from it must compile as constants too; "-tma" ops launch with CS336_FLASH_TMA=both (tensor descriptors
# take only int32 coordinates, which int64 lengths must not break), "-atomic-dq" ops with CS336_FLASH_TMA=atomic_dq
# (as where Inductor sees descriptor reductions: dK/dV programs adding dQ by TMA reductions)
OPS = {
    "forward": 256,
    "forward-one-query": 1,
    "forward-tma": 256,
    "backward": 256,
    "backward-one-query": 1,
    "backward-tma": 256,
    "backward-atomic-dq": 256,
}
TMA_SETTINGS = {"-tma": "both", "-atomic-dq": "atomic_dq"}
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass(frozen=True)
class Case:
    op: str
    dtype: str
    typing: str

    @property
    def id(self) -> str:
        return f"{self.op}-{self.dtype}-{self.typing}"


CASES = [Case(op, dtype, typing) for op in OPS for dtype in DTYPES for typing in TYPINGS]


def _record_launches(op: str, dtype: torch.dtype) -> list[tuple[str, tuple, dict]]:
    """(kernel name, positional args, keyword args) of each kernel the op's ``triton_op`` body launches, on
    CPU tensors of 2 x 3 heads, 256 keys and head size 64, causal."""
    from cs336_systems.flash_attention import triton_function

    kernels = triton_function._kernels()
    names = {id(obj): name for name, obj in vars(kernels).items()}
    launches = []

    class RecordingLaunch:
        def __init__(self, kernel):
            self.name = names[id(kernel)]

        def __getitem__(self, grid):
            return lambda *args, **kwargs: launches.append((self.name, args, kwargs))

    triton_function.wrap_triton = RecordingLaunch
    setting = next((value for suffix, value in TMA_SETTINGS.items() if op.endswith(suffix)), "none")
    triton_function.AUTOTUNED_TMA = triton_function.TMA_CHOICES[setting]
    triton_function.inductor_sees_descriptor_reductions = lambda: True
    q = torch.zeros(2, 3, OPS[op], 64, dtype=dtype)
    k = torch.zeros(2, 3, 256, 64, dtype=dtype)
    if op.startswith("backward"):
        lse = torch.zeros(q.shape[:-1])
        triton_function.flash_attention_backward(q, k, k, q, lse, q, True)
    else:
        triton_function.flash_attention_forward(q, k, k, True)
    return launches


def _signature(fn, args: tuple, constexprs: dict, float_type: str, int_type: str) -> dict[str, str]:
    """Triton's signature of a launch: tensors as pointers, ints equal to 1 as constants (both launchers
    specialise them; adds them to ``constexprs``), other scalars typed as the launcher being mimicked types them."""
    signature = {}
    for name, value in zip(fn.arg_names, args, strict=False):
        if isinstance(value, torch.Tensor):
            signature[name] = POINTER_TYPES[value.dtype]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int) and value == 1:
            signature[name], constexprs[name] = "constexpr", 1
        elif isinstance(value, int):
            signature[name] = int_type
        elif isinstance(value, float):
            signature[name] = float_type
        else:
            raise TypeError(f"{name}: unexpected launch argument {value!r}")
    missing = [name for name in fn.arg_names if name not in signature and name not in constexprs]
    if missing:
        raise TypeError(f"{fn.__name__}: arguments neither passed nor configured: {missing}")
    return signature | {name: "constexpr" for name in constexprs if name not in signature}


def _compile_case(case: Case, launches: list[tuple[str, tuple, dict]], to_ttir, known: dict) -> str | None:
    """The first front-end error over the case's launches and every autotuning configuration of their kernels, or
    the first TTIR with fp64 values (the kernels compute in float32 at most). ``known`` holds the outcome of every
    compile so far: cases whose launches come out alike (Triton's launch and Inductor's static one type only a
    float differently, and the kernels take none) share them instead of compiling twice."""
    import triton
    from cs336_systems.flash_attention import triton_function

    float_type, int_type = TYPINGS[case.typing]
    kernels = triton_function._kernels()
    for name, args, kwargs in launches:
        kernel = getattr(kernels, name)
        autotuned = isinstance(kernel, triton.runtime.Autotuner)
        fn = kernel.fn if autotuned else kernel
        for config in kernel.configs if autotuned else [None]:
            constexprs = {**kwargs, **(config.kwargs if config else {})}
            options = {"num_warps": config.num_warps, "num_stages": config.num_stages} if config else {}
            signature = _signature(fn, args, constexprs, float_type, int_type)
            key = (name, *(tuple(sorted(d.items())) for d in (signature, constexprs, options)))
            if key not in known:
                known[key] = _front_end_error(to_ttir, fn, signature, constexprs, options)
            if known[key] is not None:
                return f"{name} with {signature}, {constexprs}: {known[key]}"
    return None


def _front_end_error(to_ttir, fn, signature: dict, constexprs: dict, options: dict) -> str | None:
    """Why one kernel launch does not compile to float32-only TTIR, or None."""
    import triton

    try:
        ttir = str(to_ttir(fn, signature, constexprs, options))
    except triton.compiler.errors.CompilationError as error:
        return str(error)
    if "f64" in ttir:  # compiles, but an fp64 scalar made some of the float32 math fp64
        return "fp64 values in its TTIR"
    return None


def _front_end():
    """``to_ttir(fn, signature, constexprs, options)``: ``triton.compile``'s steps up to TTIR for a Hopper
    target (the steps before any CUDA tool), or a string saying why this Triton cannot run them."""
    import triton

    try:
        from triton._C.libtriton import ir
        from triton.backends.compiler import GPUTarget
        from triton.compiler.compiler import ASTSource, make_backend

        target = GPUTarget("cuda", *HOPPER)
        backend = make_backend(target)
    except Exception as error:  # another compiler layout, or a build without the CUDA backend
        return f"Triton {triton.__version__} lacks the compiler API this test drives: {error!r}"

    def to_ttir(fn, signature: dict[str, str], constexprs: dict, launch_options: dict):
        options = backend.parse_options(launch_options)
        context = ir.context()
        ir.load_dialects(context)
        backend.load_dialects(context)
        source = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
        codegen = backend.get_codegen_implementation(options)
        return source.make_ir(target, options, codegen, backend.get_module_map(), context)

    return to_ttir


def main() -> None:
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise SystemExit("run without TRITON_INTERPRET: the compiler cannot take interpreted functions")
    to_ttir = _front_end()
    if isinstance(to_ttir, str):
        print(json.dumps({"skip": to_ttir}))
        return
    from cs336_systems.flash_attention import triton_function

    triton_function._kernels()  # decorated for compilation while the variable is unset
    os.environ["TRITON_INTERPRET"] = "1"  # CPU tensors pass the ops' input checks; nothing is launched
    launches = {(op, dtype): _record_launches(op, DTYPES[dtype]) for op in OPS for dtype in DTYPES}
    del os.environ["TRITON_INTERPRET"]
    known = {}
    print(json.dumps({case.id: _compile_case(case, launches[case.op, case.dtype], to_ttir, known) for case in CASES}))


if __name__ == "__main__":
    main()
