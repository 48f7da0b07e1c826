"""One Triton kernel launched on one shape, with Triton's per-launch Python bypassed after the first call.

``JITFunction.run`` costs tens of microseconds per launch on the host: it binds the arguments, specialises
each one (dtype, 16-byte alignment, integer divisibility), hashes that into a cache key, checks the kernel's
globals and builds launch metadata for profiling hooks. For a fixed shape all of that gives the same compiled
kernel every time, except for the alignment of the tensors (the strides vary with the tensors' layouts, but the
launchers pass only multiples of 16 that fit int32: one specialisation, see ``triton_function.STRIDE_MULTIPLE``).
So the first call goes through Triton (the autotuner picks the tiles, Triton compiles), the compiled kernel it
returns is kept, and later calls hand the compiled kernel's launcher exactly the arguments ``JITFunction.run``
would (grid, stream, handle, metadata, every argument then the constexprs in signature order), as long as:

- every pointer argument is 16-byte aligned, as it was when the kept kernel was compiled (a misaligned
  view would need the other specialisation);
- the current device is the one the kernel was loaded on;
- no launch hook is registered (profilers such as Proton register them and need the launch metadata).

Otherwise the call goes through Triton as before. In interpreter mode Triton returns no compiled kernel, so
every call takes Triton's path. Triton options switched on after a shape's first call (``TRITON_DEBUG``, say)
reach that shape's launches only through a new plan.
"""

from collections.abc import Callable

from triton.compiler import CompiledKernel
from triton.knobs import runtime as runtime_knobs
from triton.runtime import Autotuner, driver

Grid = Callable[[dict], tuple[int, int]]
ALIGNMENT = 16
"""Bytes of pointer alignment Triton specialises kernels on."""


def _pointers_aligned(args: tuple, n_pointers: int) -> bool:
    bits = 0
    for tensor in args[:n_pointers]:
        bits |= tensor.data_ptr()
    return bits % ALIGNMENT == 0


def _no_launch_hooks() -> bool:
    """Whether Triton would call no hook around a launch (hooks are ``HookChain``s, or plain callables in
    older code that assigns them)."""
    enter, leave = runtime_knobs.launch_enter_hook, runtime_knobs.launch_exit_hook
    return not getattr(enter, "calls", enter) and not getattr(leave, "calls", leave)


class KernelLaunch:
    """A kernel, autotuned or with its meta-parameters fixed by ``meta``, with its grid and constexprs for one
    shape. Call it with the kernel's runtime arguments, pointers first (``n_pointers`` of them)."""

    __slots__ = (
        "autotuner", "jit", "constexprs", "grid", "grid_of", "meta", "n_pointers",
        "launcher", "function", "packed_metadata", "device", "constexpr_args", "get_device", "get_stream",
    )  # fmt: skip

    def __init__(self, kernel, grid_of: Grid, constexprs: dict, n_pointers: int, meta: dict | None = None):
        self.autotuner = kernel if isinstance(kernel, Autotuner) else None
        self.jit = kernel.fn if self.autotuner is not None else kernel
        if meta is None and self.autotuner is None:
            raise ValueError(f"{kernel} is not autotuned: pass its meta-parameters")
        self.grid_of = grid_of
        self.constexprs = constexprs
        self.n_pointers = n_pointers
        self.meta = None if meta is None else {**constexprs, **meta}
        self.grid = None if meta is None else grid_of(self.meta)
        self.launcher = None

    def __call__(self, *args) -> None:
        launcher = self.launcher
        if (
            launcher is not None
            and _pointers_aligned(args, self.n_pointers)
            and _no_launch_hooks()
            and self.get_device() == self.device
        ):
            grid = self.grid
            launcher(
                grid[0], grid[1], 1, self.get_stream(self.device), self.function, self.packed_metadata,
                None, None, None, *args, *self.constexpr_args,
            )  # fmt: skip
        else:
            self._launch_through_triton(args)

    def _launch_through_triton(self, args: tuple) -> None:
        if self.grid is None:
            kernel = self.autotuner[self.grid_of](*args, **self.constexprs)
            self.meta = {**self.constexprs, **self.autotuner.best_config.all_kwargs()}
            self.grid = self.grid_of(self.meta)
        else:
            kernel = self.jit.run(*args, grid=self.grid, warmup=False, **self.meta)
        if self.launcher is None and isinstance(kernel, CompiledKernel) and _pointers_aligned(args, self.n_pointers):
            self._keep(kernel, len(args))

    def _keep(self, kernel: CompiledKernel, n_args: int) -> None:
        """Keep the compiled kernel and what its launcher takes besides the runtime arguments (``kernel.run`` first:
        it loads the kernel's handles if they are not loaded yet)."""
        launcher = kernel.run
        active = driver.active
        self.get_device, self.get_stream = active.get_current_device, active.get_current_stream
        self.device = self.get_device()
        self.constexpr_args = tuple(self.meta[name] for name in self.jit.arg_names[n_args:])
        self.function, self.packed_metadata = kernel.function, kernel.packed_metadata
        self.launcher = launcher
