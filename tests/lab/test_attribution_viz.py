"""Task 7: attribution visualisations.

One test per check of grader/tasks/attribution_viz.py, run against ``--impl``.
"""

from grader.pytest_plugin import task_tests

test_attribution_viz = task_tests("attribution_viz")
