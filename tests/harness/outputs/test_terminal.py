"""Text from submissions is printed as what it contains, never as terminal commands."""

from __future__ import annotations

import pytest

from grader.outputs.terminal import printable


@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b[2J\x1b[Halice", "\\x1b[2J\\x1b[Halice"),      # clear screen, cursor home
    ("bob: 3/10\rbob: 10/10", "bob: 3/10\\x0dbob: 10/10"),  # a carriage return fakes a line
    ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),             # window title
    ("mallory\u202eftx.exe", "mallory\\u202eftx.exe"),      # right-to-left override
    ("\x9b31m", "\\x9b31m"),                                # C1 control sequence introducer
    ("\x00nul", "\\x00nul"),
])
def test_control_and_bidi_characters_are_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_plain_text_tabs_newlines_and_accents_are_kept() -> None:
    text = "Zoë Łukasz\tT5: 16/16\nsecond line"
    assert printable(text) == text


def test_newlines_can_be_escaped_for_one_line_fields() -> None:
    assert printable("fake\nline", newlines=False) == "fake\\nline"
