"""Muon against a float64 reference: the Newton–Schulz iteration through the SVD, one optimizer step by hand,
the AdamW groups against torch.optim.AdamW, and exact continuation from a state dict."""

import copy

import pytest
import torch
from cs336_basics.model import TransformerLM
from cs336_basics.model_config import ModelConfig
from cs336_basics.muon import NEWTON_SCHULZ_COEFFICIENTS, Muon, muon_param_groups, newton_schulz_orthogonalize
from cs336_basics.optimizer import lr_trapezoidal_schedule


def _polynomial_reference(matrix: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The iteration is an odd matrix polynomial, so it acts on the singular values alone: U p(S) Vᵀ."""
    u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    a, b, c = NEWTON_SCHULZ_COEFFICIENTS
    x = s / torch.linalg.matrix_norm(matrix.double())
    for _ in range(steps):
        x = a * x + b * x**3 + c * x**5
    return u @ torch.diag(x) @ vh


@pytest.mark.parametrize("shape", [(8, 8), (6, 10), (12, 5)])
def test_newton_schulz_equals_the_singular_value_polynomial(shape):
    torch.manual_seed(0)
    matrix = torch.randn(shape)
    ours = newton_schulz_orthogonalize(matrix)
    torch.testing.assert_close(ours.double(), _polynomial_reference(matrix), atol=2e-5, rtol=1e-4)
    singular_values = torch.linalg.svdvals(ours.double())
    assert singular_values.min() > 0.5 and singular_values.max() < 1.3  # near-orthogonal, as Muon intends


def test_newton_schulz_is_batched_over_leading_dimensions():
    torch.manual_seed(1)
    batch = torch.randn(3, 7, 4)
    stacked = newton_schulz_orthogonalize(batch)
    for i in range(3):
        torch.testing.assert_close(stacked[i], newton_schulz_orthogonalize(batch[i]))


def _reference_muon_step(w, g, buffer, lr, beta, weight_decay, nesterov=True):
    buffer = beta * buffer + (1 - beta) * g
    direction = g + beta * (buffer - g) if nesterov else buffer
    scale = max(1.0, w.shape[0] / w.shape[1]) ** 0.5
    return (1 - lr * weight_decay) * w - lr * scale * _polynomial_reference(direction), buffer


def test_two_muon_steps_match_the_float64_reference_and_adamw_groups_match_torch():
    torch.manual_seed(2)
    matrices = [torch.nn.Parameter(torch.randn(s)) for s in [(6, 4), (6, 4), (4, 9)]]
    gains = torch.nn.Parameter(torch.randn(5))
    twin = torch.nn.Parameter(gains.detach().clone())
    muon = Muon(
        [
            {"params": matrices, "use_muon": True, "lr": 0.05, "weight_decay": 0.1},
            {"params": [gains], "use_muon": False, "lr": 0.01, "weight_decay": 0.2},
        ],
        momentum=0.9,
        betas=(0.8, 0.95),
    )
    adamw = torch.optim.AdamW([twin], lr=0.01, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.2)
    expected = [m.detach().double().clone() for m in matrices]
    buffers = [torch.zeros_like(e) for e in expected]
    for _ in range(2):
        grads = [torch.randn_like(m) for m in matrices]
        gain_grad = torch.randn(5)
        for m, g in zip(matrices, grads):
            m.grad = g.clone()
        gains.grad, twin.grad = gain_grad.clone(), gain_grad.clone()
        muon.step()
        adamw.step()
        for i, g in enumerate(grads):
            expected[i], buffers[i] = _reference_muon_step(expected[i], g.double(), buffers[i], 0.05, 0.9, 0.1)
    for m, e in zip(matrices, expected):
        torch.testing.assert_close(m.detach().double(), e, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gains, twin)


class _LoopMuon(Muon):
    """The plain per-matrix Muon step (one matrix at a time, the iteration's sums as separate ops): what the
    multi-tensor, batched step must reproduce."""

    def _muon_step(self, group, params):
        a, b, c = NEWTON_SCHULZ_COEFFICIENTS
        beta, lr, decay = group["momentum"], group["lr"], group["weight_decay"]
        for p in params:
            buffer = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
            buffer.lerp_(p.grad, 1.0 - beta)
            x = p.grad.lerp(buffer, beta) if group["nesterov"] else buffer.clone()
            tall = x.shape[0] > x.shape[1]
            x = x.T if tall else x
            x = x / (x.norm() + 1e-7)
            for _ in range(group["ns_steps"]):
                gram = x @ x.T
                x = a * x + (b * gram + c * gram @ gram) @ x
            p.mul_(1.0 - lr * decay)
            p.add_(x.T if tall else x, alpha=-lr * max(1.0, p.shape[0] / p.shape[1]) ** 0.5)


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_batched_step_equals_the_per_matrix_step(nesterov, weight_decay):
    """Square, wide and tall matrices (a tall one batched with its transpose's shape, one alone), some without a
    gradient, and an AdamW group, over three steps with a changing learning rate."""
    torch.manual_seed(4)
    shapes = [(8, 8), (12, 5), (5, 12), (8, 8), (12, 5), (3, 7), (9, 4), (6, 6)]
    params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    gains = [torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(3, 4))]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params + gains]

    def groups(matrices, others):
        return [
            {"params": matrices, "use_muon": True, "lr": 0.05, "weight_decay": weight_decay},
            {"params": others, "use_muon": False, "lr": 0.01, "weight_decay": 0.2},
        ]

    ours = Muon(groups(params, gains), momentum=0.9, nesterov=nesterov, betas=(0.8, 0.95))
    reference = _LoopMuon(groups(twins[: len(params)], twins[len(params) :]), momentum=0.9, nesterov=nesterov,
                          betas=(0.8, 0.95))  # fmt: skip
    for step in range(3):
        for i, (p, twin) in enumerate(zip(params + gains, twins)):
            grad = None if (i + step) % 5 == 0 else torch.randn_like(p)
            p.grad, twin.grad = grad, None if grad is None else grad.clone()
        for optimizer in (ours, reference):
            optimizer.param_groups[0]["lr"] = 0.05 / (step + 1)
            optimizer.step()
        for p, twin in zip(params + gains, twins):
            torch.testing.assert_close(p, twin, atol=1e-6, rtol=1e-5)
    for p, twin in zip(params, twins):
        torch.testing.assert_close(ours.state[p]["momentum_buffer"], reference.state[twin]["momentum_buffer"])


def test_compile_mode_leaves_cpu_steps_eager_and_equal():
    """The compiled orthogonalisation is for CUDA tensors only: a CPU step must neither compile nor change."""
    torch.manual_seed(5)
    params = [torch.nn.Parameter(torch.randn(s)) for s in [(6, 4), (4, 6)]]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    compiled = Muon([{"params": params}], compile_mode="reduce-overhead")
    eager = Muon([{"params": twins}])
    for p, twin in zip(params, twins):
        p.grad, twin.grad = torch.ones_like(p), torch.ones_like(twin)
    compiled.step()
    eager.step()
    for p, twin in zip(params, twins):
        torch.testing.assert_close(p, twin, rtol=0, atol=0)
    assert copy.deepcopy(compiled)._compile_mode == "reduce-overhead"


def test_state_dict_round_trip_continues_exactly():
    torch.manual_seed(3)
    model = TransformerLM(ModelConfig(vocab_size=31, context_length=8, d_model=16, num_layers=2,
                                                  num_heads=2, d_ff=24))  # fmt: skip
    ids = torch.randint(0, 31, (4, 8))

    def step(m, opt):
        opt.zero_grad()
        m(ids).logsumexp(-1).mean().backward()
        opt.step()

    optimizer = Muon(muon_param_groups(model, 0.02, 1e-3, 0.1))
    step(model, optimizer)
    clone = copy.deepcopy(model)
    clone_optimizer = Muon(muon_param_groups(clone, 0.02, 1e-3, 0.1))
    clone_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # as from a file: no shared tensors
    step(model, optimizer)
    step(clone, clone_optimizer)
    for a, b in zip(model.parameters(), clone.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_groups_put_block_matrices_on_muon_and_the_rest_on_adamw():
    model = TransformerLM(ModelConfig(vocab_size=31, context_length=8, d_model=16, num_layers=2,
                                                  num_heads=2, d_ff=24))  # fmt: skip
    hidden, other = muon_param_groups(model, 0.02, 1e-3)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in hidden["params"]} == {
        n for n, p in model.named_parameters() if n.startswith("layers.") and p.ndim == 2
    }
    assert {"token_embeddings.weight", "lm_head.weight", "ln_final.weight"} <= {names[id(p)] for p in other["params"]}
    with pytest.raises(ValueError, match="2-D"):
        Muon([{"params": other["params"], "use_muon": True}])


def test_trapezoidal_schedule_hand_worked():
    # warm-up 0..10, flat to step 60, linear cool-down to 0.1 over the last 40 of 100 steps
    values = {it: lr_trapezoidal_schedule(it, 1.0, 0.1, 10, 100, 40) for it in (0, 5, 10, 59, 60, 80, 100, 120)}
    assert values == pytest.approx({0: 0.0, 5: 0.5, 10: 1.0, 59: 1.0, 60: 1.0, 80: 0.55, 100: 0.1, 120: 0.1})
