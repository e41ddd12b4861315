"""What the terminal is sent when a run ends or stalls out of sight: the bell and an OSC 9
desktop notification (`ESC ] 9 ; text BEL`), made safe and wrapped for tmux when needed."""

from __future__ import annotations

from collections.abc import Mapping

from tunedeck.core.text import inert

BELL = "\a"
MAX_TEXT = 200
# Terminals known to turn OSC 9 into a desktop notification ("auto").
DESKTOP_PROGRAMS = ("iTerm.app", "WezTerm", "ghostty")
DESKTOP_TERMS = ("xterm-kitty", "xterm-ghostty")


def desktop_supported(env: Mapping[str, str]) -> bool:
    """Whether the terminal (as its environment tells) shows OSC 9 as a desktop notification."""
    return env.get("TERM_PROGRAM") in DESKTOP_PROGRAMS or env.get("TERM") in DESKTOP_TERMS


def wants_desktop(setting: str, env: Mapping[str, str]) -> bool:
    """The `desktop` notice setting ("auto", "on", "off") for this terminal."""
    return setting == "on" or (setting == "auto" and desktop_supported(env))


def osc9(text: str, env: Mapping[str, str]) -> str:
    """The OSC 9 sequence for `text`: control characters written out (a job name cannot end the
    sequence or start another), cut to MAX_TEXT; inside tmux wrapped in its passthrough."""
    safe = inert(text).replace(";", ",")[:MAX_TEXT]
    sequence = f"\x1b]9;{safe}\a"
    if env.get("TMUX"):
        return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return sequence
