"""pytest entry point: the lab3 plugin registers options, markers, fixtures and the score table."""

pytest_plugins = ["grader.pytest_plugin"]
