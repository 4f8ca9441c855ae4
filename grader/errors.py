"""Every exception the grader raises, in one hierarchy, with the exit code of each.

``lab3``'s :func:`grader.cli.main` maps them once: ``lab3 COMMAND: LABEL: message`` on
stderr and :attr:`Lab3Error.exit_code`. Each message says what to change. ::

    Lab3Error                      1  "grader problem": a bug or a broken installation
    ├── UsageError                 2  "error": the command line, a file or the machine
    │   ├── CourseError               the course file            (also a ValueError)
    │   ├── SecretError               the course secret file     (also a ValueError)
    │   ├── WeightsError              the requested weights      (also a RuntimeError)
    │   └── SandboxError              the requested sandbox      (also a RuntimeError)
    ├── GraderError                1  the grader cannot work (no reference records, ...)
    │   ├── ReleaseError              "error": the release cannot be built or leaks
    │   ├── ReferenceUnavailable      no reference records and no reference/ (a RuntimeError)
    │   └── WorkerError               a warm worker died or stopped answering (a RuntimeError)
    ├── Interrupted              130  Ctrl-C or SIGTERM: what was finished is kept
    │   └── ParseInterrupted          ... while a notebook was being read
    ├── ImplementationError        2  the implementation under test cannot be loaded
    ├── RecordError                1  a record breaks its schema or caps (a ValueError)
    └── CheckFailed                1  inside a check: 0 points, the message is the student's

Two live outside it on purpose, raised *into* the submission's code by the offline stand-ins
of a top-level run: :class:`OfflineError` is a ``ConnectionError`` (what a failed download
raises, so the handout's code handles it as it would a real one) and :class:`RunTimeout` a
``BaseException`` (so the submission's ``except Exception`` does not swallow it).

The second bases keep every ``except ValueError`` / ``except RuntimeError`` that caught these
before this module existed working.
"""

from __future__ import annotations


class Lab3Error(Exception):
    """Base of the grader's own errors."""

    exit_code = 1
    label = "grader problem"


class UsageError(Lab3Error):
    """A bad command line, file or environment; the message says what to change."""

    exit_code = 2
    label = "error"


class CourseError(UsageError, ValueError):
    """The course file cannot be used; the message says what to change."""


class SecretError(UsageError, ValueError):
    """The course secret file is unreadable or malformed; the message says what to do."""


class WeightsError(UsageError, RuntimeError):
    """The requested weights cannot be used; the message says what to change."""


class SandboxError(UsageError, RuntimeError):
    """The requested sandbox cannot be used here; the message says why and what to do."""


class GraderError(Lab3Error):
    """The grader itself cannot work: no reference records, broken checks."""


class ReleaseError(GraderError, RuntimeError):
    """The release cannot be built (no reference records, or the audit found a leak)."""

    label = "error"


class ReferenceUnavailable(GraderError, RuntimeError):
    """No reference records exist for these weights and reference/ is not importable."""


class WorkerError(GraderError, RuntimeError):
    """The warm process could not be started or stopped answering; the message says why."""


class Interrupted(Lab3Error):
    """The batch was interrupted (Ctrl-C, SIGTERM); finished submissions are kept."""

    exit_code = 130
    label = "interrupted"


class ParseInterrupted(Interrupted):
    """Raised from :func:`grader.submission.notebook.build_package` when ``should_stop``
    says so."""


class ImplementationError(Lab3Error):
    """The implementation under test could not be imported; the message says why."""

    exit_code = 2
    label = "error"


class RecordError(Lab3Error, ValueError):
    """A record is malformed or over its caps; the message says which part."""


class CheckFailed(Lab3Error):
    """Raised inside a check: 0 points, ``str(exc)`` is the student's message."""


class OfflineError(ConnectionError):
    """A URL the grader's offline stand-ins do not answer."""


class RunTimeout(BaseException):
    """Raised inside the submission's code when its time budget is spent (a BaseException,
    so ``except Exception`` in the submission does not swallow it)."""
