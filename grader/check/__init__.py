"""Trusted: check contexts, outcomes, grading, results."""
