"""Training of the learned models (plain PyTorch): data batching, the fold loop, cross-fitting."""
