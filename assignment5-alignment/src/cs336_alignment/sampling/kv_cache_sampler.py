"""Our own batched sampler: prompts in similar-length chunks through ``cs336_basics.generate``'s one decoding loop.

The loop (``sample_continuations``: one prefill, then one KV-cached token per step) drops rows that finish (EOS or
a stop string), so a long straggler does not make every finished sample keep paying for forward passes
(``transformers.generate`` keeps them to the end). Llama-family models decode from a static cache replayed as CUDA
graphs on a GPU (``static_decoder.py``). Stop strings are looked for only in rows whose newest token contains a stop
string's last character, so the per-step text decoding on the host stays small at large batches. Beside a float32
policy it can sample from its own bf16 copy, refreshed in place by ``sync_weights`` (``policy_copy.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from cs336_basics.generate import Decoder, FinishReason, sample_continuations
from tqdm import tqdm

from cs336_alignment.sampling.decoders import decoder_for
from cs336_alignment.sampling.params import Completion, SamplingParams
from cs336_alignment.sampling.policy_copy import copy_weights_, low_precision_copy
from cs336_alignment.tokenization import decode_ids, encode_texts, eos_token_id, pad_token_id, vocab_size


class KVCacheSampler:
    """Batched generation for a HF causal LM or a ``cs336_basics`` TransformerLM with its tokenizer."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any | None,
        max_batch_size: int = 64,
        eos_id: int | None = None,
        pad_id: int | None = None,
        show_progress: bool = True,
        static_cache: bool = True,
        cuda_graphs: bool = True,
        dtype: torch.dtype | None = None,
    ):
        """``tokenizer`` may be None when only token ids are generated (``generate_ids``) and no stop strings
        are used; ``eos_id``/``pad_id`` default to the tokenizer's. ``show_progress`` draws a bar of finished
        samples with tokens/s. ``static_cache`` (Llama-family HF models) and ``cuda_graphs`` (on a GPU) choose
        the decoder; off, HF models decode with a growing ``DynamicCache``. ``dtype`` (e.g. bf16 beside a float32
        policy) makes generation read a copy of the policy in that dtype (``policy_copy.py``), refreshed by
        ``sync_weights``; None, or the policy's own dtype, reads the policy's parameters in place."""
        self.show_progress = show_progress
        self.static_cache = static_cache
        self.cuda_graphs = cuda_graphs
        self.dtype = dtype
        self._decoder: Decoder | None = None
        self._adopt(model)
        self._stop_tokens: dict[tuple[str, ...], frozenset[int] | None] = {}
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.eos_id = eos_id if eos_id is not None or tokenizer is None else eos_token_id(tokenizer)
        self.pad_id = pad_id if pad_id is not None or tokenizer is None else pad_token_id(tokenizer)
        self.pad_id = 0 if self.pad_id is None else self.pad_id

    def _adopt(self, policy: torch.nn.Module) -> None:
        """Generate from ``policy``: in place, or from a new copy in ``dtype``; either way with a new decoder."""
        self.policy = policy
        in_place = self.dtype is None or next(policy.parameters()).dtype == self.dtype
        self.model = policy if in_place else low_precision_copy(policy, self.dtype)
        self._decoder = None

    def sync_weights(self, policy: torch.nn.Module) -> None:
        """Make generation see ``policy``'s current weights. Read in place (captured graphs too), they need
        nothing; a copy gets them copied into its own tensors, so its decoder and graphs stay valid. A different
        module is adopted anew."""
        if policy is not self.policy:
            self._adopt(policy)
        elif self.model is not policy:
            copy_weights_(self.model, policy)

    def _current_decoder(self) -> Decoder:
        """One decoder per model, kept across calls: its buffers and graphs are reused."""
        if self._decoder is None or self._decoder.model is not self.model:
            self._decoder = decoder_for(self.model, self.max_batch_size, self.static_cache, self.cuda_graphs)
        return self._decoder

    def _stop_candidates(self, stops: tuple[str, ...]) -> frozenset[int] | None:
        """The token ids that can complete one of ``stops`` (their text holds a stop's last character), or None
        when every row must be checked (a stop ending in a non-ASCII character, which a token may split)."""
        if stops not in self._stop_tokens:
            last = {s[-1] for s in stops}
            candidates = None
            if all(ch.isascii() for ch in last):
                vocab = range(vocab_size(self.tokenizer))
                candidates = frozenset(i for i in vocab if any(ch in decode_ids(self.tokenizer, [i]) for ch in last))
            self._stop_tokens[stops] = candidates
        return self._stop_tokens[stops]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        if self.tokenizer is None:
            raise ValueError("text generation needs a tokenizer")
        encoded = encode_texts(self.tokenizer, prompts)
        outs = self.generate_ids(encoded, params)
        return [
            Completion(prompts[k // params.n], self._text(ids, params), ids, reason)
            for k, (ids, reason) in enumerate(outs)
        ]

    def generate_ids(
        self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[tuple[list[int], FinishReason]]:
        """``(generated ids, finish reason)`` for each prompt's ``n`` samples, prompt-major."""
        if params.stop and self.tokenizer is None:
            raise ValueError("stop strings need a tokenizer")
        if any(len(ids) == 0 for ids in prompt_ids):
            raise ValueError("cannot generate from an empty prompt")
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
        stop = self._stop_rule(params.stop) if params.stop else None
        # longest prompts first and in similar-length chunks: little padding per chunk
        order = sorted(range(len(prompt_ids)), key=lambda i: -len(prompt_ids[i]))
        per_chunk = max(1, self.max_batch_size // params.n)
        results: dict[int, list[tuple[list[int], FinishReason]]] = {}
        was_training = self.model.training
        self.model.eval()
        progress = _Progress(len(prompt_ids) * params.n, self.show_progress)
        try:
            for start in range(0, len(order), per_chunk):
                chunk = order[start : start + per_chunk]
                outs = sample_continuations(
                    self._current_decoder(),
                    [prompt_ids[i] for i in chunk],
                    params.max_tokens,
                    params.temperature,
                    params.top_p,
                    self.eos_id,
                    generator,
                    device=self.device,
                    samples_per_prompt=params.n,
                    min_new_tokens=params.min_tokens,
                    pad_id=self.pad_id,
                    stop=stop,
                    on_step=progress.advance,
                )
                for k, i in enumerate(chunk):
                    results[i] = outs[k * params.n : (k + 1) * params.n]
        finally:
            progress.close()
            self.model.train(was_training)
        return [out for i in range(len(prompt_ids)) for out in results[i]]

    def _stop_rule(self, stops: tuple[str, ...]) -> Callable[[list[int]], bool]:
        """Whether a sample's tokens end in one of ``stops``: only the text of its last few tokens is decoded,
        and only when its newest token can complete a stop."""
        candidates = self._stop_candidates(stops)
        window = max(len(s) for s in stops) + 1

        def ends(tokens: list[int]) -> bool:
            if candidates is not None and tokens[-1] not in candidates:
                return False
            tail = decode_ids(self.tokenizer, tokens[-window:])
            return any(s in tail for s in stops)

        return ends

    def _text(self, ids: list[int], params: SamplingParams) -> str:
        """Decode a sample, cutting the text at the first stop string (kept when asked)."""
        text = decode_ids(self.tokenizer, ids)
        cuts = [(text.find(s), s) for s in params.stop if s in text]
        if cuts:
            at, stop = min(cuts)
            text = text[: at + len(stop)] if params.include_stop_str_in_output else text[:at]
        return text


class _Progress:
    """A bar of finished samples, with the generated tokens per second as its postfix."""

    def __init__(self, total: int, enabled: bool):
        self._bar = tqdm(total=total, desc="generate", unit="sample", leave=False, disable=not enabled)
        self._tokens = 0
        self._started = time.perf_counter()

    def advance(self, finished: int, tokens: int) -> None:
        """``finished`` samples ended this step, in which ``tokens`` tokens were generated."""
        self._tokens += tokens
        self._bar.set_postfix(
            tok_s=f"{self._tokens / max(time.perf_counter() - self._started, 1e-9):.0f}", refresh=False
        )
        if finished:
            self._bar.update(finished)

    def close(self) -> None:
        self._bar.close()
