"""A grading process for the adversarial grader tests: one JSON request per stdin line, one reply per stdout line.

A separate process, so the test can kill it when a case runs past its time limit (a hang in C code, which no
signal interrupts, would otherwise hang the test run). Requests: ``{"reward": "r1_zero" | "question_only",
"response": ..., "truth": ...}``; replies: the reward function's scores. Grading runs on this process's main
thread, as in the training loops (the grader's sympy time limit needs it).
"""

import json
import sys

from cs336_alignment.rewards import question_only_reward_fn, r1_zero_reward_fn

REWARD_FNS = {"r1_zero": r1_zero_reward_fn, "question_only": question_only_reward_fn}


def main() -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        scores = REWARD_FNS[request["reward"]](request["response"], request["truth"])
        print(json.dumps(scores), flush=True)


if __name__ == "__main__":
    main()
