"""Laboratory 3 — the reference solution, one module per task, mirrored by ``student_template``."""
