"""Task 6: Integrated Gradients.

One test per check of grader/tasks/integrated_gradients.py, run against ``--impl``.
"""

from grader.pytest_plugin import task_tests

test_integrated_gradients = task_tests("integrated_gradients")
