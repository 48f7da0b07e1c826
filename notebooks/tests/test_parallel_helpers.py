"""Notebook 07's helpers in one process: the recorder of `torch.distributed` calls, ring costs, and the split
arithmetic of the tensor-parallel SwiGLU and the pipeline stages (the notebook runs them on two ranks)."""

import pytest
import torch
import torch.distributed as dist
from communication_log import CommunicationLog, ring_bytes_sent
from cs336_basics.layers import SwiGLU
from cs336_basics.model import TransformerLM
from cs336_basics.model_config import ModelConfig
from cs336_systems.distributed_utils import find_free_port
from model_parallel import PipelineStage, TensorParallelSwiGLU, shard_range, stage_layers


@pytest.fixture(scope="module")
def single_process_group():
    """A gloo group of one: every collective runs for real and leaves the tensor as it is."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{find_free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_ring_bytes_sent_per_rank():
    assert ring_bytes_sent("all_reduce", 1000, 4) == 1500  # 2 (p-1)/p
    assert ring_bytes_sent("all_gather_into_tensor", 1000, 4) == 750
    assert ring_bytes_sent("reduce_scatter_tensor", 1000, 4) == 750
    assert ring_bytes_sent("send", 1000, 4) == 1000 and ring_bytes_sent("recv", 1000, 4) == 0
    assert ring_bytes_sent("all_reduce", 1000, 1) == 0  # nothing to exchange
    with pytest.raises(ValueError):
        ring_bytes_sent("all_to_all", 1000, 4)
    with pytest.raises(ValueError):
        ring_bytes_sent("all_reduce", 1000, 0)


def test_log_records_each_call_with_its_payload_and_phase(single_process_group):
    log = CommunicationLog()
    original = dist.all_reduce
    with log.recording("forward"):
        dist.all_reduce(torch.ones(10))
        dist.broadcast(torch.ones(3, dtype=torch.float64), src=0)
    with log.recording("backward"):
        dist.all_gather([torch.empty(4)], torch.ones(4))
        dist.all_reduce(tensor=torch.ones(2, dtype=torch.int64), async_op=True).wait()
    assert dist.all_reduce is original, "recording must restore torch.distributed"
    got = [(m.op, m.payload_bytes, m.phase) for m in log.messages]
    assert got == [
        ("all_reduce", 40, "forward"),
        ("broadcast", 24, "forward"),
        ("all_gather", 16, "backward"),
        ("all_reduce", 16, "backward"),
    ]
    assert log.bytes_sent(world_size=2, phase="forward") == 40 + 12
    dist.all_reduce(torch.ones(1))
    assert len(log.messages) == 4, "calls outside a recording are not logged"


def test_recordings_do_not_nest(single_process_group):
    log = CommunicationLog()
    with log.recording("outer"), pytest.raises(RuntimeError), log.recording("inner"):
        pass


def test_tensor_parallel_blocks_add_up_to_the_full_layer(single_process_group):
    """In a group of one the all-reduces are identities, so each block computes its partial output; the sum
    over blocks (what the all-reduce adds on two ranks) must be the unsplit layer's output and input gradient."""
    torch.manual_seed(0)
    full = SwiGLU(8, 12)
    x = torch.randn(3, 5, 8, requires_grad=True)
    upstream = torch.randn(3, 5, 8)
    (full(x) * upstream).sum().backward()
    outputs, input_grads = [], []
    for rank in range(3):
        block = TensorParallelSwiGLU(full, rank, world_size=3)
        x_block = x.detach().clone().requires_grad_()
        out = block(x_block)
        (out * upstream).sum().backward()
        outputs.append(out.detach())
        input_grads.append(x_block.grad)
        units = shard_range(12, rank, 3)
        torch.testing.assert_close(block.w1.weight.grad, full.w1.weight.grad[units])
        torch.testing.assert_close(block.w2.weight.grad, full.w2.weight.grad[:, units])
    torch.testing.assert_close(sum(outputs), full(x).detach())
    torch.testing.assert_close(sum(input_grads), x.grad)


def test_pipeline_stages_compose_to_the_model():
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(vocab_size=32, context_length=8, d_model=16, num_layers=4, num_heads=2, d_ff=32))
    tokens = torch.randint(0, 32, (2, 8))
    stages = [PipelineStage(model, stage_layers(4, rank, 2)) for rank in range(2)]
    assert [list(s) for s in (stage_layers(4, 0, 2), stage_layers(4, 1, 2))] == [[0, 1], [2, 3]]
    torch.testing.assert_close(stages[1](stages[0](tokens)), model(tokens))


def test_uneven_splits_are_refused():
    with pytest.raises(ValueError):
        shard_range(10, 0, 3)
