"""Probe variants: the published practice inputs and the graded inputs of a course secret.

Students check themselves with ``pytest --impl`` on the **practice** variant
(:data:`grader.settings.DEFAULT_SETTINGS`), whose inputs and reference records ship in the
release. ``lab3 grade`` and the Gradescope bundle probe a **graded** variant derived from
a course secret: another photo and crop, other seeds, and per task other filter numbers,
targets, baselines, ... (each task draws them from :meth:`ProbeSettings.rng`). Its
reference records are built from ``reference/`` and cached like the practice ones, so an
answer looked up in the release's records is the answer to another question.

The secret is 32 random bytes in a file that the instructor's checkout creates once
(:func:`load_or_create_secret`, mode 0600, under ``.lab3/`` which git and the release
ignore). Instructors of one course share it by copying that file (or pointing
``LAB3_COURSE_SECRET`` / ``--secret`` at a copy), so every grader derives the same variant.
The secret never reaches a child process: the child receives the derived settings only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import secrets
from dataclasses import replace
from pathlib import Path

from grader.errors import SecretError
from grader.paths import PROJECT_ROOT
from grader.settings import DEFAULT_SETTINGS, ProbeSettings

DEFAULT_SECRET_PATH = PROJECT_ROOT / ".lab3" / "course-secret"
SECRET_ENV = "LAB3_COURSE_SECRET"
SECRET_BYTES = 32
# Bump when the derivation changes: a new version means new graded inputs for every course.
_DERIVATION = b"lab3 graded variant v1"


def secret_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the course secret is: ``explicit``, else ``$LAB3_COURSE_SECRET``, else the
    checkout's ``.lab3/course-secret``."""
    chosen = explicit or os.environ.get(SECRET_ENV) or DEFAULT_SECRET_PATH
    return Path(chosen).expanduser()


def load_or_create_secret(path: Path) -> tuple[bytes, bool]:
    """The course secret at ``path``, created (0600) when the file does not exist.

    Returns:
        ``(secret, created)``: the secret's bytes and whether this call created it.

    Raises:
        SecretError: the file exists but is not a secret this module wrote.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = secrets.token_hex(SECRET_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_secret(path)  # another grader created it first
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return bytes.fromhex(value), True
    try:
        text = path.read_text(encoding="ascii").strip()
        value = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SecretError(f"course secret {path} is unreadable ({exc}); restore it from a "
                          "co-instructor's copy, or delete it to start a new graded variant "
                          "(already graded submissions keep their grades)") from exc
    if len(value) < 16:
        raise SecretError(f"course secret {path} holds {len(value)} bytes; it needs at least 16 "
                          "(hex); restore the file or delete it to make a new one")
    return value, False


def graded_settings(secret: bytes, base: ProbeSettings = DEFAULT_SETTINGS) -> ProbeSettings:
    """The graded variant of ``secret``: ``base`` with the inputs a student never saw.

    The photo is never the practice photo; the crop is an off-centre square of 70-90% of the
    short side; seeds are drawn far from the small numbers a student might hard-code.
    """
    from grader.probe.inputs import image_paths

    digest = hmac.new(secret, _DERIVATION, hashlib.sha256).digest()
    rng = random.Random(digest)
    photos = [p.name for p in image_paths("photo") if p.name != DEFAULT_SETTINGS.photo]
    return replace(
        base,
        variant=f"graded-{digest.hex()[:8]}",
        variant_seed=rng.randrange(1, 2**31),
        photo=rng.choice(photos),
        crop_x=round(rng.uniform(0.42, 0.58), 3),
        crop_y=round(rng.uniform(0.42, 0.58), 3),
        crop_side=round(rng.uniform(0.7, 0.9), 3),
        seed=rng.randrange(1000, 2**31),
    )


def course_settings(secret_file: str | os.PathLike[str] | None = None,
                    notes: list[str] | None = None) -> ProbeSettings:
    """The graded variant of this checkout's course secret (created on first use).

    ``notes`` receives one line when the secret was created, saying where it is and how
    co-instructors share it.

    Raises:
        SecretError: the secret file is malformed.
    """
    path = secret_path(secret_file)
    secret, created = load_or_create_secret(path)
    if created and notes is not None:
        notes.append(f"created the course secret {path}: keep it, and give co-instructors a "
                     f"copy (or set {SECRET_ENV}) so that everyone grades the same variant")
    return graded_settings(secret)
