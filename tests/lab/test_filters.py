"""Task 5: filter visualisation.

One test per check of grader/tasks/filters.py, run against ``--impl``.
"""

from grader.pytest_plugin import task_tests

test_filters = task_tests("filters")
