"""Segment-level features: symbolic performance statistics and their inputs from the alignment."""
