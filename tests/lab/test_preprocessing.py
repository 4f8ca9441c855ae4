"""Task 2: ImageNet preprocessing.

One test per check of grader/tasks/preprocessing.py, run against ``--impl``.
"""

from grader.pytest_plugin import task_tests

test_preprocessing = task_tests("preprocessing")
