"""Conceptual answers (graded by hand).

One test per check of grader/tasks/answers.py, run against ``--impl``.
"""

from grader.pytest_plugin import task_tests

test_answers = task_tests("answers")
