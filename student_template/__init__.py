"""Laboratory 3 — your implementation. Fill in every ``TODO`` and run ``pytest --impl student_template``."""
