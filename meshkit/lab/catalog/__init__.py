"""The labs meshkit ships, one module per lab (`lab04_rds.py` defines `LAB` for "04-rds")."""

from __future__ import annotations

import importlib
import pkgutil

from ..spec import LabSpec


def names() -> list[str]:
    """All lab names, in story order ("00-welcome", "01-lieutenant", ...)."""
    return sorted(_specs())


def load_spec(name: str) -> LabSpec:
    """The lab called `name`; "04" is enough."""
    specs = _specs()
    matches = [full for full in specs if full == name or full.split("-", 1)[0] == name]
    if len(matches) != 1:
        raise KeyError(f"no lab {name!r}; labs are: {', '.join(sorted(specs))}")
    return specs[matches[0]]


def _specs() -> dict[str, LabSpec]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("lab"):
            spec = importlib.import_module(f"{__name__}.{info.name}").LAB
            found[spec.name] = spec
    return found
