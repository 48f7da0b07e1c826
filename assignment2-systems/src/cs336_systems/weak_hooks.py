"""Tensor hooks that do not keep their owner alive."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any


def weak_tensor_hook(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a bound method for `Tensor.register_*_hook` so the hook holds its object only weakly.

    A parameter keeps its hooks in C++ autograd metadata, which Python's garbage collector cannot traverse. A hook
    that holds its wrapper strongly therefore makes a cycle (wrapper -> module -> parameter -> hook -> wrapper) that is
    never collected: every wrapper built in a process would keep its model, gradients and optimizer inputs on the GPU
    forever. Once the wrapper is gone the hook does nothing.
    """
    ref = weakref.WeakMethod(method)

    def hook(*args: Any) -> Any:
        bound = ref()
        return None if bound is None else bound(*args)

    return hook
