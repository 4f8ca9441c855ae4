"""Task 1: pretrained ResNet-34 and labels.

One test per check of grader/tasks/model.py, run against ``--impl``.
"""

from grader.pytest_plugin import task_tests

test_model = task_tests("model")
