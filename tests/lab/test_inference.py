"""Task 3: inference.

One test per check of grader/tasks/inference.py, run against ``--impl``.
"""

from grader.pytest_plugin import task_tests

test_inference = task_tests("inference")
