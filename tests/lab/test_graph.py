"""Task 4: model graph.

One test per check of grader/tasks/graph.py, run against ``--impl``.
"""

from grader.pytest_plugin import task_tests

test_graph = task_tests("graph")
