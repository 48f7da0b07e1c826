"""The local worker pool: worker lists per device, and runs in spawned processes matching runs in threads."""

from __future__ import annotations

import pytest
from cs336_scaling.run_spec import RunSpec
from cs336_scaling.workers import LocalWorkerPool, local_devices


def test_local_devices_repeat_each_device_per_worker():
    assert local_devices("cpu:2") == ["cpu", "cpu"]
    assert local_devices("cuda:0,cuda:1", per_device=2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    with pytest.raises(ValueError, match="per_device"):
        local_devices("cpu", per_device=0)


@pytest.mark.timeout(180)
def test_runs_in_a_spawned_process_match_the_same_run_in_a_thread(setup):
    """One spawned worker runs both queued runs. Its start is a fresh interpreter importing torch and torch._dynamo
    (which every torch optimizer imports): about 5 s on an idle core but a minute when seven processes share two
    cores, hence the longer timeout. The runs themselves take a fraction of a second."""
    spec = RunSpec(64, 2, 2, 128, 1e-3, int(1e13))
    threads = LocalWorkerPool(setup, ["cpu"])
    processes = LocalWorkerPool(setup, ["cpu"], processes=True)
    try:
        in_thread = threads.submit(spec).result()
        in_processes = [processes.submit(spec) for _ in range(2)]
        too_small = processes.submit(RunSpec(64, 2, 2, 128, 1e-3, 1))
        for run in (future.result(timeout=120) for future in in_processes):
            assert (run.steps, run.tokens, run.parameters) == (in_thread.steps, in_thread.tokens, in_thread.parameters)
            assert run.loss == pytest.approx(in_thread.loss, rel=1e-5)
        with pytest.raises(ValueError, match="less than one batch"):  # a failure in a process reaches the caller
            too_small.result(timeout=120)
    finally:
        threads.shutdown()
        processes.shutdown()
