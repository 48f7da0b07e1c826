"""CS336 assignment 5: math reward, SFT, expert iteration, GRPO, DPO and evaluation."""
