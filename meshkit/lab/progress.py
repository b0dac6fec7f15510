"""Self-study progress, kept locally in the mesh's home folder (`progress.json`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

FILE = "progress.json"


def record(home: Path, lab: str, exercise: str, outcome: str) -> None:
    """Remember the latest outcome of an exercise; 'done' is never downgraded by a later run."""
    data = load(home)
    entry = data.setdefault(lab, {}).get(exercise, {})
    if entry.get("outcome") == "done" and outcome != "done":
        entry["last"] = outcome
    else:
        entry.update(outcome=outcome, last=outcome)
    entry["time"] = time.strftime("%Y-%m-%d %H:%M:%S")
    data[lab][exercise] = entry
    home.mkdir(parents=True, exist_ok=True)
    (home / FILE).write_text(json.dumps(data, indent=2, sort_keys=True))


def load(home: Path) -> dict:
    try:
        return json.loads((home / FILE).read_text())
    except (OSError, ValueError):
        return {}


def table(home: Path) -> pd.DataFrame:
    """One row per lab and exercise with its best outcome so far."""
    rows = [
        {"LAB": lab, "EXERCISE": exercise, "OUTCOME": entry.get("outcome", ""), "WHEN": entry.get("time", "")}
        for lab, exercises in sorted(load(home).items())
        for exercise, entry in sorted(exercises.items())
    ]
    return pd.DataFrame(rows, columns=["LAB", "EXERCISE", "OUTCOME", "WHEN"])
