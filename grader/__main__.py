"""``python -m grader``: the ``lab3`` command line (see :mod:`grader.cli`)."""

import sys

from grader.cli import main

sys.exit(main())
