"""Text from submissions made safe to print on an instructor's terminal.

Folder names, exception messages and printed output come from students. A terminal obeys
control characters in them (ESC sequences clear the screen, move the cursor, set the window
title; a carriage return overwrites a line to fake another), and bidirectional-override
characters make a line read differently from what it holds. :func:`printable` shows each of
them as an escape instead, so what is printed is what the text contains.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, and the bidi embeddings/overrides/isolates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, newlines: bool = True) -> str:
    """``text`` with every control and bidi-override character written as an escape.

    Returns:
        the same text where ``\\x1b`` becomes the four characters ``\\x1b`` and so on; tabs
        stay, newlines stay unless ``newlines`` is False (then they become ``\\n``).
    """
    safe = _UNSAFE.sub(_escape, text)
    return safe if newlines else safe.replace("\n", "\\n")
