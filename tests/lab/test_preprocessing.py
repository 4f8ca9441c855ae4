"""Task 2: ImageNet preprocessing: one test per check of grader/tasks/preprocessing.py, against ``--impl``."""

from grader.pytest_plugin import task_tests

test_preprocessing = task_tests("preprocessing")
