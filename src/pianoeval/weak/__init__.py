"""Weak supervision: labelling functions and a Snorkel label model over degraded samples."""
