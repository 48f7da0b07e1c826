"""The handout's mixed-precision experiments as functions: accumulation in low precision, autocast dtypes.

``accumulation_sums`` runs the four loops of problem mixed_precision_accumulation; ``autocast_dtypes`` reports
the dtypes of problem benchmarking_mixed_precision (a) for its ToyModel on any device. CUDA and CPU autocast
differ (CUDA runs layer norm in float32; CPU autocast keeps it in the low dtype), so the GPU answer comes from
running it on a GPU: ``python -m cs336_systems.mixed_precision``.
"""

import torch
from torch import nn


def accumulation_sums(steps: int = 1000, increment: float = 0.01) -> dict[str, float]:
    """Sum ``increment`` ``steps`` times: in fp32, in fp16, fp16 terms into an fp32 sum (implicit and
    explicit upcast)."""
    cases = {
        "fp32 += fp32": (torch.float32, torch.float32, False),
        "fp16 += fp16": (torch.float16, torch.float16, False),
        "fp32 += fp16": (torch.float32, torch.float16, False),
        "fp32 += fp16.to(fp32)": (torch.float32, torch.float16, True),
    }
    sums = {}
    for name, (accumulator, term, upcast) in cases.items():
        s = torch.tensor(0, dtype=accumulator)
        for _ in range(steps):
            x = torch.tensor(increment, dtype=term)
            s += x.type(torch.float32) if upcast else x
        sums[name] = s.item()
    return sums


class ToyModel(nn.Module):
    """The handout's model: linear → ReLU → LayerNorm → linear."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, 10, bias=False)
        self.ln = nn.LayerNorm(10)
        self.fc2 = nn.Linear(10, out_features, bias=False)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.fc1(x))
        x = self.ln(x)
        return self.fc2(x)


def autocast_dtypes(device: str, dtype: torch.dtype) -> dict[str, torch.dtype]:
    """Dtypes inside ``torch.autocast(device, dtype)`` of ToyModel's parameters, fc1 output, layer-norm output,
    logits and loss, and of the gradients after backward."""
    model = ToyModel(8, 4).to(device)
    seen: dict[str, torch.dtype] = {}

    def record(name: str):
        def hook(module, args, output) -> None:  # returning a value would replace the module's output
            seen[name] = output.dtype

        return hook

    model.fc1.register_forward_hook(record("fc1 output"))
    model.ln.register_forward_hook(record("layer norm output"))
    inputs, targets = torch.randn(16, 8, device=device), torch.randint(0, 4, (16,), device=device)
    with torch.autocast(device_type=device, dtype=dtype):
        seen["parameters"] = model.fc1.weight.dtype
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits, targets)
    seen["logits"], seen["loss"] = logits.dtype, loss.dtype
    loss.backward()
    seen["gradients"] = model.fc1.weight.grad.dtype
    return seen


if __name__ == "__main__":
    for name, value in accumulation_sums().items():
        print(f"{name}: {value:.6f}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for dtype in [torch.float16, torch.bfloat16]:
        print(device, dtype, {name: str(d) for name, d in autocast_dtypes(device, dtype).items()})
