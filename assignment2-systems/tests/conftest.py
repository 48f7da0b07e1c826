"""Make Triton kernels runnable without a GPU.

``TRITON_INTERPRET`` is read when Triton is first imported and when kernels are decorated, and
other test modules (DDP, FSDP) import torch._dynamo, which imports Triton. Setting the variable
here, before any test module is collected, makes every Triton kernel run in the interpreter on CPU.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
