"""Self-study, workshop and instructor modes (research/teaching.md §4.2).

- self-study (default): hints and solutions on demand, progress kept locally;
- workshop: the same, but hints stay locked until the learner is told to unlock them;
- instructor: solutions notebooks with instructor notes, autopilot, fault buttons, large fonts.

Chosen by `MESHKIT_MODE` or `meshkit lab --mode`.
"""

from __future__ import annotations

import os
from pathlib import Path

SELF_STUDY = "self-study"
WORKSHOP = "workshop"
INSTRUCTOR = "instructor"
MODES = (SELF_STUDY, WORKSHOP, INSTRUCTOR)
UNLOCK_FILE = "hints-unlocked"

PROJECTION_CSS = """
<style>
.jp-Notebook, .jp-RenderedHTMLCommon, .jp-OutputArea-output pre, .CodeMirror, .cm-editor
  { font-size: 135% !important; line-height: 1.45 !important; }
</style>
"""


def resolve(mode: str | None = None) -> str:
    chosen = (mode or os.environ.get("MESHKIT_MODE") or SELF_STUDY).strip().lower()
    if chosen not in MODES:
        raise ValueError(f"unknown mode {chosen!r}; choose one of {', '.join(MODES)}")
    return chosen


def hints_allowed(mode: str, home: Path) -> bool:
    return mode != WORKSHOP or (home / UNLOCK_FILE).exists()


def unlock_hints(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / UNLOCK_FILE).touch()


def enable_projection() -> None:
    """Large fonts for a projector (instructor mode); a no-op outside Jupyter."""
    try:
        from IPython.display import HTML, display
    except ImportError:
        return
    display(HTML(PROJECTION_CSS))
