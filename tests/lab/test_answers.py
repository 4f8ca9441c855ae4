"""Conceptual answers (graded by hand): one test per check of grader/tasks/answers.py, against ``--impl``."""

from grader.pytest_plugin import task_tests

test_answers = task_tests("answers")
