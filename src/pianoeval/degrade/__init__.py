"""Controlled degradations (quality tiers) and quality-preserving augmentations of performances."""
