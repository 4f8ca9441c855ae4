"""Outputs: results files, feedback page, Gradescope bundle, terminal-safe text."""
