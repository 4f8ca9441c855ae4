"""Task 3: inference: one test per check of grader/tasks/inference.py, against ``--impl``."""

from grader.pytest_plugin import task_tests

test_inference = task_tests("inference")
