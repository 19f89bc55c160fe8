"""Pure math: forward/backward function pairs, no state.

Layout convention (project-wide): the batch is the LAST axis. Image batches
are (C, H, W, N), flat activations (D, N), logits (K, N). Each sample is a
column, as in the classic derivation, and every im2col copy is contiguous.
"""
