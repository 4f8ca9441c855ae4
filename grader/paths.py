"""The project's folders, in one place; every module's paths derive from these.

The same layout holds in the instructor's checkout, a student release and the Gradescope
bundle: ``grader/`` beside ``student_template/`` and ``fixtures/`` (``reference/`` only at
home).
"""

from __future__ import annotations

from pathlib import Path

GRADER_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = GRADER_DIR.parent
FIXTURES_DIR = PROJECT_ROOT / "fixtures"
TEMPLATE_DIR = PROJECT_ROOT / "student_template"
TEMPLATE_ANSWERS = TEMPLATE_DIR / "answers.md"
SHIPPED_RECORDS_DIR = GRADER_DIR / "refdata" / "reference_records"
RELEASE_README = GRADER_DIR / "distribute" / "release_README.md"
BATCH_SOURCE = GRADER_DIR / "run" / "batch.py"
