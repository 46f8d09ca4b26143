"""Evaluation: scores of predictions against the labels, bootstrap CIs, paired comparisons, reports."""
