"""Task 4: model graph: one test per check of grader/tasks/graph.py, against ``--impl``."""

from grader.pytest_plugin import task_tests

test_graph = task_tests("graph")
