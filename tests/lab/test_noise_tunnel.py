"""Task 8: NoiseTunnel.

One test per check of grader/tasks/noise_tunnel.py, run against ``--impl``.
"""

from grader.pytest_plugin import task_tests

test_noise_tunnel = task_tests("noise_tunnel")
