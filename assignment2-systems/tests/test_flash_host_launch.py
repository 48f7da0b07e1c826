"""The eager path's direct launches (``kernel_launch.KernelLaunch``): after a shape's first call the compiled
kernels' launchers are called directly, with what Triton's launch would pass; misaligned tensors go through Triton.

Triton's compiled-mode launch path runs here against stub kernels (``benchmarks/bench_flash_host_overhead.py``),
in a subprocess: this session's Triton kernels are decorated for the interpreter (``conftest.py``)."""

import pytest

from tests.compiled_triton_probe import run_compiled_triton_probe

pytest.importorskip("triton")
pytestmark = pytest.mark.timeout(600)  # one subprocess that imports torch and Triton; generous for a loaded machine


@pytest.fixture(scope="module")
def paths() -> dict:
    return run_compiled_triton_probe("tests.flash_host_launch_probe")


def test_first_call_goes_through_triton_and_later_calls_launch_directly(paths):
    assert paths["first"] == {"launches": 3, "triton_runs": 3}
    assert paths["later"] == {"launches": 3, "triton_runs": 0}


def test_direct_launches_pass_what_triton_passes(paths):
    assert paths["launcher_args_match"]


def test_a_misaligned_input_goes_through_triton(paths):
    """Kernels are specialised on 16-byte alignment: a misaligned Q needs Triton's other specialisation (the
    forward and backward kernels read Q; the D preprocessing does not), and aligned calls launch directly again."""
    assert paths["misaligned"] == {"launches": 3, "triton_runs": 2}
    assert paths["aligned_again"] == {"launches": 3, "triton_runs": 0}
