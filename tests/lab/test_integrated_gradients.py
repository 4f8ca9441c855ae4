"""Task 6: Integrated Gradients: one test per check of grader/tasks/integrated_gradients.py, against ``--impl``."""

from grader.pytest_plugin import task_tests

test_integrated_gradients = task_tests("integrated_gradients")
