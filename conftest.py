"""Loads the lab3 pytest plugin (options, markers, fixtures, the score table) where the lab is
not pip-installed: a copied student release, a bare checkout.

Where it is installed, its ``pytest11`` entry point has already registered
``grader.pytest_plugin`` under that same name, before pytest read the command line, and
pytest skips this line. See grader/pytest_plugin.py.
"""

pytest_plugins = ["grader.pytest_plugin"]
