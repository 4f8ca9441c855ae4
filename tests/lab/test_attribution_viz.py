"""Task 7: attribution visualisations: one test per check of grader/tasks/attribution_viz.py, against ``--impl``."""

from grader.pytest_plugin import task_tests

test_attribution_viz = task_tests("attribution_viz")
