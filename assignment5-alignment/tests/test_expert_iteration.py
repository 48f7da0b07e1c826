"""Expert iteration's SFT examples: only verified rollouts, each once, each response ending with the tokenizer's
EOS exactly once (rollouts stop at ``</answer>`` without it), so SFT on them teaches the policy to stop; the rollouts
are prompted, stopped and verified by one prompt style."""

import copy
from dataclasses import replace

import torch
from cs336_alignment import expert_iteration
from cs336_alignment.expert_iteration import filter_correct, run_expert_iteration
from cs336_alignment.loop_configs import ExpertIterationConfig, SFTConfig
from cs336_alignment.math_data import MathProblem, r1_zero_prompt
from cs336_alignment.math_eval import PROMPT_STYLES
from cs336_alignment.rewards import r1_zero_reward_fn
from cs336_alignment.sampling.params import Completion, SamplingParams
from cs336_alignment.tokenization import tokenize_prompt_and_output

EOS = "<|endoftext|>"
SHOWN = " 1+1=2 </think> <answer> 2 </answer>"
TOLD = " one and one make two </think> <answer> 2 </answer>"
ROLLOUTS = [SHOWN, SHOWN + EOS, TOLD + EOS, " 1+1=3 </think> <answer> 3 </answer>"]


def test_filter_keeps_only_verified_answers_once_each_ending_in_eos(gpt2_tokenizer):
    prompts = ["p1", "p1", "p1", "p2"]
    responses = [
        "</think> <answer> 4 </answer>",
        "</think> <answer> 5 </answer>",
        "</think> <answer> 4 </answer>",
        "</think> <answer> 7 </answer>",
    ]
    kept = filter_correct(prompts, responses, ["4", "4", "4", "7"], r1_zero_reward_fn, gpt2_tokenizer)
    assert kept == [("p1", f"</think> <answer> 4 </answer>{EOS}"), ("p2", f"</think> <answer> 7 </answer>{EOS}")]


class _FixedSampler:
    """Answers every prompt with ``ROLLOUTS`` in turn: the sampler's interface without a model; keeps the calls."""

    def __init__(self):
        self.calls: list[tuple[list[str], SamplingParams]] = []

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Completion]:
        assert params.n == len(ROLLOUTS)
        self.calls.append((list(prompts), params))
        return [Completion(prompt, text) for prompt in prompts for text in ROLLOUTS]

    def sync_weights(self, policy: torch.nn.Module) -> None:
        pass


def _answer_tag_holds_truth(response: str, truth: str) -> dict[str, float]:
    """A verifier that, unlike r1_zero's, also accepts a response already ending in EOS."""
    reward = float(f"<answer> {truth} </answer>" in response)
    return {"reward": reward, "format_reward": 1.0, "answer_reward": reward}


def test_each_sft_example_of_a_round_ends_with_the_eos_id_once(tiny_gpt2, gpt2_tokenizer, monkeypatch):
    trained, records = [], []

    def spy(policy, tokenizer, examples, *args, **kwargs):
        trained.extend(examples)
        return train_sft(policy, tokenizer, examples, *args, **kwargs)

    train_sft = expert_iteration.train_sft
    monkeypatch.setattr(expert_iteration, "train_sft", spy)
    problems = [MathProblem("What is 1+1?", "2"), MathProblem("What is 2+0?", "2")]
    ei = ExpertIterationConfig(n_ei_steps=1, questions_per_step=2, rollouts_per_question=len(ROLLOUTS), ei_max_tokens=8)
    sft = SFTConfig(batch_size=2, gradient_accumulation_steps=1)
    policy = copy.deepcopy(tiny_gpt2)
    sampler = _FixedSampler()
    style = replace(PROMPT_STYLES["r1_zero"], reward_fn=_answer_tag_holds_truth)
    run_expert_iteration(policy, gpt2_tokenizer, sampler, problems, style, ei, sft, records.append)
    ((prompts, params),) = sampler.calls  # the style's prompt and stop strings, its stop string kept
    assert sorted(prompts) == sorted(r1_zero_prompt(p.question) for p in problems)
    assert params.stop == ("</answer>",) and params.include_stop_str_in_output
    assert records[0]["kept_examples"] == 4  # per question: SHOWN with and without EOS is one example, TOLD one
    assert sorted(response for _, response in trained) == sorted([SHOWN + EOS, TOLD + EOS] * 2)
    eos_id = gpt2_tokenizer.eos_token_id
    for prompt, response in trained:
        batch = tokenize_prompt_and_output([prompt], [response], gpt2_tokenizer)
        labels = batch["labels"][0][batch["response_mask"][0]]
        assert labels[-1].item() == eos_id and (labels == eos_id).sum().item() == 1
        assert gpt2_tokenizer.decode(labels[:-1].tolist()).endswith("</answer>")
