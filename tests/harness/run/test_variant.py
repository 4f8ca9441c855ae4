"""Probe variants: practice inputs are published, graded inputs come from the course secret."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import torch

from grader.probe.inputs import probe_inputs
from grader.run.variant import (
    SECRET_ENV,
    SecretError,
    course_settings,
    graded_settings,
    load_or_create_secret,
    secret_path,
)
from grader.settings import DEFAULT_SETTINGS

SECRETS = [bytes(range(32)), bytes(range(1, 33))]


@pytest.mark.parametrize("secret", SECRETS)
def test_graded_variant_is_a_function_of_the_secret(secret: bytes) -> None:
    assert graded_settings(secret) == graded_settings(secret)


def test_two_secrets_give_two_variants() -> None:
    first, second = (graded_settings(s) for s in SECRETS)
    assert first.variant != second.variant
    assert first.variant_seed != second.variant_seed
    assert first.seed != second.seed


@pytest.mark.parametrize("secret", SECRETS)
def test_graded_inputs_are_never_the_practice_inputs(secret: bytes) -> None:
    graded = graded_settings(secret)
    assert graded.variant != DEFAULT_SETTINGS.variant
    assert graded.photo != DEFAULT_SETTINGS.photo
    assert graded.seed != DEFAULT_SETTINGS.seed
    assert (graded.crop_x, graded.crop_y, graded.crop_side) != (
        DEFAULT_SETTINGS.crop_x, DEFAULT_SETTINGS.crop_y, DEFAULT_SETTINGS.crop_side)
    practice_image, _ = probe_inputs(64, DEFAULT_SETTINGS)
    graded_image, _ = probe_inputs(64, graded)
    assert graded_image.shape == practice_image.shape == (1, 3, 64, 64)
    assert not torch.allclose(graded_image, practice_image, atol=0.1)


@pytest.mark.parametrize("secret", SECRETS)
def test_per_task_streams_differ_between_variants_and_tasks(secret: bytes) -> None:
    graded = graded_settings(secret)
    draw = lambda settings, task: settings.rng(task).randrange(2**31)  # noqa: E731
    assert draw(graded, "filters") != draw(DEFAULT_SETTINGS, "filters")
    assert draw(graded, "filters") != draw(graded, "comparison")
    assert draw(graded, "filters") == draw(graded, "filters")


def test_secret_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / ".lab3" / "course-secret"
    secret, created = load_or_create_secret(path)
    assert created and len(secret) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_secret(path)
    assert again == secret and not created_again


def test_creating_the_secret_says_where_it_is_and_how_to_share_it(tmp_path: Path) -> None:
    notes: list[str] = []
    settings = course_settings(tmp_path / "secret", notes)
    assert settings.variant.startswith("graded-")
    assert len(notes) == 1 and str(tmp_path / "secret") in notes[0] and SECRET_ENV in notes[0]
    notes.clear()
    assert course_settings(tmp_path / "secret", notes) == settings
    assert notes == []


@pytest.mark.parametrize("content", ["not hex at all\n", "abcd\n"])
def test_a_malformed_secret_is_refused_with_what_to_do(tmp_path: Path, content: str) -> None:
    path = tmp_path / "secret"
    path.write_text(content)
    with pytest.raises(SecretError, match="restore"):
        load_or_create_secret(path)


def test_secret_path_prefers_the_explicit_file_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, str(tmp_path / "from-env"))
    assert secret_path() == tmp_path / "from-env"
    assert secret_path(tmp_path / "explicit") == tmp_path / "explicit"
