"""Submissions as students hand them in: notebooks (folders, zips and scripts: grader.probe.implementation).

Singular on purpose: ``grader/outputs/gradescope.py`` copies ``grader/`` skipping every folder
named ``submissions`` (meant for ``fixtures/submissions``).
"""
