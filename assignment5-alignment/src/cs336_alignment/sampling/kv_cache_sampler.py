"""Our own batched sampler: left-padded prompts, one prefill, then one KV-cached token per step.

Rows that finish (EOS or a stop string) leave the batch, so a long straggler does not make every
finished sample keep paying for forward passes (``transformers.generate`` keeps them to the end). Llama-family
models decode from a static cache replayed as CUDA graphs on a GPU (``static_decoder.py``). Stop strings are
looked for only in rows whose newest token contains a stop string's last character, so the per-step text
decoding on the host stays small at large batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm import tqdm

from cs336_alignment.sampling.decoders import Decoder, decoder_for
from cs336_alignment.sampling.params import Completion, SamplingParams
from cs336_alignment.tokenization import decode_ids, encode_texts, eos_token_id, pad_token_id, vocab_size


def sample_tokens(
    logits: Float[Tensor, "batch vocab"], temperature: float, top_p: float, generator: torch.Generator | None
) -> Int[Tensor, " batch"]:
    """Greedy when ``temperature == 0``; otherwise nucleus sampling from ``softmax(logits / temperature)``."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        outside = probs.cumsum(dim=-1) - probs > top_p  # keep the smallest prefix reaching top_p
        sorted_logits = sorted_logits.masked_fill(outside, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


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
    ):
        """``tokenizer`` may be None when only token ids are generated (``generate_ids``) and no stop strings
        are used; ``eos_id``/``pad_id`` default to the tokenizer's. ``show_progress`` draws a bar of finished
        samples with tokens/s. ``static_cache`` (Llama-family HF models) and ``cuda_graphs`` (on a GPU) choose
        the decoder; off, HF models decode with a growing ``DynamicCache``."""
        self.model = model
        self.show_progress = show_progress
        self.static_cache = static_cache
        self.cuda_graphs = cuda_graphs
        self._decoder: Decoder | None = None
        self._stop_tokens: dict[tuple[str, ...], frozenset[int] | None] = {}
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.eos_id = eos_id if eos_id is not None or tokenizer is None else eos_token_id(tokenizer)
        self.pad_id = pad_id if pad_id is not None or tokenizer is None else pad_token_id(tokenizer)
        self.pad_id = 0 if self.pad_id is None else self.pad_id

    def sync_weights(self, policy: torch.nn.Module) -> None:
        """Generation reads the policy's parameters in place (captured graphs too); only a different module needs
        swapping in, with a new decoder."""
        if policy is not self.model:
            self.model = policy
            self._decoder = None

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

    def generate_ids(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[tuple[list[int], str]]:
        """``(generated ids, finish reason)`` for each prompt's ``n`` samples, prompt-major."""
        if params.stop and self.tokenizer is None:
            raise ValueError("stop strings need a tokenizer")
        if any(len(ids) == 0 for ids in prompt_ids):
            raise ValueError("cannot generate from an empty prompt")
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
        # longest prompts first and in similar-length chunks: little padding per chunk
        order = sorted(range(len(prompt_ids)), key=lambda i: -len(prompt_ids[i]))
        per_chunk = max(1, self.max_batch_size // params.n)
        results: dict[int, list[tuple[list[int], str]]] = {}
        was_training = self.model.training
        self.model.eval()
        progress = _Progress(len(prompt_ids) * params.n, self.show_progress)
        try:
            for start in range(0, len(order), per_chunk):
                chunk = order[start : start + per_chunk]
                outs = self._generate_chunk([list(prompt_ids[i]) for i in chunk], params, generator, progress)
                for k, i in enumerate(chunk):
                    results[i] = outs[k * params.n : (k + 1) * params.n]
        finally:
            progress.close()
            self.model.train(was_training)
        return [out for i in range(len(prompt_ids)) for out in results[i]]

    @torch.inference_mode()
    def _generate_chunk(
        self,
        prompt_ids: list[list[int]],
        params: SamplingParams,
        generator: torch.Generator | None,
        progress: _Progress,
    ) -> list[tuple[list[int], str]]:
        device = self.device
        width = max(map(len, prompt_ids))
        input_ids = torch.full((len(prompt_ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompt_ids), width), dtype=torch.bool)
        for row, ids in enumerate(prompt_ids):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            mask[row, width - len(ids) :] = True
        decoder = self._current_decoder()
        logits = decoder.prefill(input_ids.to(device), mask.to(device), params.n, params.max_tokens)
        candidates = self._stop_candidates(params.stop) if params.stop else None

        total = len(prompt_ids) * params.n
        generated: list[list[int]] = [[] for _ in range(total)]
        reasons = ["length"] * total
        active = list(range(total))  # rows of the decoder state -> sample index
        window = max((len(s) for s in params.stop), default=0) + 1
        for step in range(params.max_tokens):
            if step < params.min_tokens and self.eos_id is not None:
                logits[:, self.eos_id] = float("-inf")
            tokens = sample_tokens(logits, params.temperature, params.top_p, generator)
            finished_rows = []
            token_list = tokens.tolist()
            for row, sample in enumerate(active):
                if token_list[row] == self.eos_id:
                    reasons[sample] = "stop"
                    finished_rows.append(row)
                else:
                    generated[sample].append(token_list[row])
            if params.stop and step + 1 >= params.min_tokens:
                live = [
                    row
                    for row in range(len(active))
                    if reasons[active[row]] == "length" and (candidates is None or token_list[row] in candidates)
                ]
                tails = [decode_ids(self.tokenizer, generated[active[row]][-window:]) for row in live]
                for row, tail in zip(live, tails):
                    if any(s in tail for s in params.stop):
                        reasons[active[row]] = "stop"
                        finished_rows.append(row)
            progress.advance(len(finished_rows), len(active))
            if step + 1 == params.max_tokens:
                progress.advance(len(active) - len(finished_rows), 0)
                break
            if finished_rows:
                done = set(finished_rows)
                keep = [row for row in range(len(active)) if row not in done]
                if not keep:
                    break
                keep_t = torch.tensor(keep, device=device)
                decoder.select(keep_t)
                tokens = tokens[keep_t]
                active = [active[row] for row in keep]
            logits = decoder.step(tokens)
        return list(zip(generated, reasons))

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
