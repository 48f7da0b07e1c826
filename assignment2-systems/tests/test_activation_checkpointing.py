"""Per-block activation checkpointing on the assignment-1 TransformerLM (CPU)."""

import copy
import weakref

import pytest
import torch
from cs336_basics.layers import Linear
from cs336_basics.model import TransformerLM
from cs336_basics.model_config import ModelConfig
from cs336_basics.nn_utils import cross_entropy
from cs336_systems.activation_checkpointing import checkpoint_blocks, checkpoint_sublayers, saved_activation_bytes

BATCH, SEQ, D_MODEL, LAYERS = 2, 16, 32, 4


@pytest.fixture
def model() -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(
        ModelConfig(vocab_size=50, context_length=SEQ, d_model=D_MODEL, num_layers=LAYERS, num_heads=4, d_ff=64)
    )


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return tuple(torch.randint(0, 50, (BATCH, SEQ), generator=generator) for _ in range(2))


def _loss(model: TransformerLM, batch) -> torch.Tensor:
    inputs, targets = batch
    return cross_entropy(model(inputs), targets)


def _checkpointed(model: TransformerLM, every: int, segment: int = 1) -> TransformerLM:
    copied = copy.deepcopy(model)
    checkpoint_blocks(copied.layers, every, segment)
    return copied


def _assert_same_loss_and_gradients(model: TransformerLM, checkpointed: TransformerLM, batch) -> None:
    expected_loss = _loss(model, batch)
    expected_loss.backward()
    loss = _loss(checkpointed, batch)
    loss.backward()
    torch.testing.assert_close(loss, expected_loss, rtol=0, atol=0)
    reference = dict(model.named_parameters())
    for name, parameter in checkpointed.named_parameters():
        torch.testing.assert_close(parameter.grad, reference[name].grad, msg=name)


@pytest.mark.parametrize(("every", "segment"), [(1, 1), (2, 1), (1, 2), (3, 1)])
def test_gradients_equal_those_without_checkpointing(model, batch, every, segment):
    _assert_same_loss_and_gradients(model, _checkpointed(model, every, segment), batch)


def test_each_checkpointed_segment_keeps_only_its_input(model, batch):
    """Hand-worked: a checkpointed segment saves its input (batch × seq × d_model float32) instead of its
    residuals, so with every segment checkpointed the saved bytes drop by one input per segment merged."""
    input_bytes = BATCH * SEQ * D_MODEL * 4
    saved = {
        segment: saved_activation_bytes(lambda s=segment: _loss(_checkpointed(model, 1, s), batch))
        for segment in [1, 2, 4]
    }
    assert saved[1] - saved[2] == (LAYERS - LAYERS // 2) * input_bytes
    assert saved[2] - saved[4] == (LAYERS // 2 - 1) * input_bytes


def test_the_meter_counts_activations_not_parameters_saved_as_views():
    """Hand-worked: ``x @ weight.T`` saves ``x`` and the view ``weight.T``; only ``x`` (4 × 3 float32) counts,
    and ``relu`` adds its output (4 × 5 float32). The parameter's storage, 5 × 3 floats, is resident anyway."""
    torch.manual_seed(0)
    linear = Linear(3, 5)
    x = torch.randn(4, 3, requires_grad=True)  # as every activation inside a model: then ``weight.T`` is saved too
    assert saved_activation_bytes(lambda: linear(x)) == 4 * 3 * 4
    assert saved_activation_bytes(lambda: torch.relu(linear(x))) == (4 * 3 + 4 * 5) * 4


def test_memory_saved_grows_with_the_checkpointed_blocks(model, batch):
    none = saved_activation_bytes(lambda: _loss(model, batch))
    every_other = saved_activation_bytes(lambda: _loss(_checkpointed(model, 2), batch))
    every = saved_activation_bytes(lambda: _loss(_checkpointed(model, 1), batch))
    assert every < every_other < none
    # Half the blocks checkpointed save half as much (within the few shared bytes, e.g. token positions).
    assert abs((none - every_other) - (none - every) / 2) <= 0.01 * (none - every)
    # One block's residuals dwarf its input: checkpointing all of them removes most of the saved memory.
    assert every < none / 5


def test_the_meter_leaves_no_graph_behind(model, batch):
    """The metered forward's graph (activations, and parameters through it) dies with its result, though no
    backward ran: a benchmark meters one policy after another in one process."""
    outputs = []
    for block in model.layers:
        block.register_forward_hook(lambda module, args, output: outputs.append(weakref.ref(output)))
    assert saved_activation_bytes(lambda: _loss(model, batch)) > 0
    assert len(outputs) == LAYERS
    assert [ref for ref in outputs if ref() is not None] == []


@pytest.mark.parametrize(("every", "segment", "recomputed"), [(1, 1, LAYERS), (2, 1, LAYERS // 2), (1, 2, LAYERS)])
def test_backward_reruns_each_checkpointed_block_once(model, batch, every, segment, recomputed):
    checkpointed = _checkpointed(model, every, segment)
    calls = []
    for index, block in enumerate(checkpointed.layers):
        block.attn.register_forward_hook(lambda module, args, output, index=index: calls.append(index))
    loss = _loss(checkpointed, batch)
    assert len(calls) == LAYERS
    loss.backward()
    assert len(calls) == LAYERS + recomputed


def test_module_tree_and_inference_are_unchanged(model, batch):
    checkpointed = _checkpointed(model, 1, 2)
    assert checkpointed.state_dict().keys() == model.state_dict().keys()
    with torch.no_grad():
        torch.testing.assert_close(checkpointed(batch[0]), model(batch[0]), rtol=0, atol=0)


def test_rejects_bad_policies(model):
    with pytest.raises(ValueError, match="every and segment"):
        checkpoint_blocks(model.layers, every=0)


def test_sublayer_checkpoints_keep_gradients_and_save_less_than_none_more_than_blocks(model, batch):
    """Each block's attention and feed-forward under their own checkpoints: the same gradients, and between no
    checkpointing and whole blocks in saved bytes (each block still keeps its sub-layers' inputs and its norms')."""
    sublayers = copy.deepcopy(model)
    checkpoint_sublayers(sublayers.layers)
    _assert_same_loss_and_gradients(model, sublayers, batch)
    none = saved_activation_bytes(lambda: _loss(model, batch))
    every = saved_activation_bytes(lambda: _loss(_checkpointed(model, 1), batch))
    assert every < saved_activation_bytes(lambda: _loss(sublayers, batch)) < none


def test_a_missing_sublayer_is_a_clear_error(model):
    with pytest.raises(ValueError, match="no sub-layer module 'mlp'"):
        checkpoint_sublayers(model.layers, ("attn", "mlp"))
