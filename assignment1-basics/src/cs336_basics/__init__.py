"""CS336 assignment 1: byte-level BPE tokenizer, Transformer LM, AdamW, training and decoding."""
