"""Task 9: algorithm comparison.

One test per check of grader/tasks/comparison.py, run against ``--impl``.
"""

from grader.pytest_plugin import task_tests

test_comparison = task_tests("comparison")
