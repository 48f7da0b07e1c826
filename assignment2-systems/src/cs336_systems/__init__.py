"""CS336 assignment 2: benchmarking, FlashAttention-2 in PyTorch and Triton, DDP, sharded optimizer and FSDP."""
