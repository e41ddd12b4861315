"""Untrusted text made inert for a terminal: control characters shown, never obeyed.

Job names, hosts, messages, argv, paths, dataset keys and log lines come from users, files and
processes. A terminal obeys the control characters in them (ESC sequences retitle the window,
clear the screen or write the clipboard with OSC 52; CR overwrites a line; C1 bytes act as ESC
on some terminals), so every face passes such text through here before printing it. Markup is a
separate matter: the result is still plain text for Rich/Textual to show as Text, not markup.
"""

from __future__ import annotations

import codecs
import re

TAB_SIZE = 8

# C0 controls, DEL and C1 controls; `_LINES` spares the newline (and the tab, expanded instead).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROLS_IN_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def inert(text: str) -> str:
    """One line of untrusted text with every control character written visibly (ESC as `\\x1b`)."""
    if text.isprintable():
        return text
    return _CONTROLS.sub(_visible, text)


def inert_lines(text: str) -> str:
    """Untrusted multi-line text (a log): newlines kept, tabs expanded, other controls visible."""
    if "\t" in text:
        text = "\n".join(line.expandtabs(TAB_SIZE) for line in text.split("\n"))
    return _CONTROLS_IN_LINES.sub(_visible, text)


def has_controls(text: str) -> bool:
    """True when `text` holds a control character other than newline (what a test checks)."""
    return any(ch != "\n" and _CONTROLS.match(ch) for ch in text)


class InertStream:
    """Log bytes in chunks -> inert UTF-8 bytes; a character split between chunks is kept whole."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> bytes:
        return inert_lines(self._decoder.decode(data)).encode()

    def finish(self) -> bytes:
        """What is left at the end (an incomplete character becomes U+FFFD)."""
        return inert_lines(self._decoder.decode(b"", final=True)).encode()


def _visible(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"
