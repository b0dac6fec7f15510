"""Lab sessions for the notebooks.

>>> import meshkit
>>> lab = meshkit.lab("04-rds")     # the package itself is callable: meshkit.lab(name)
>>> lab.start()
>>> lab.check("ex1")
"""

from __future__ import annotations

import sys
import types

from .session import CheckResult, Lab, lab
from .spec import Exercise, LabSpec, Outcome, Verdict

__all__ = ["CheckResult", "Exercise", "Lab", "LabSpec", "Outcome", "Verdict", "lab"]


class _CallableModule(types.ModuleType):
    """Lets `meshkit.lab("04-rds")` work while `meshkit.lab` stays a package."""

    def __call__(self, name: str, home: str | None = None, mode: str | None = None, lang: str | None = None) -> Lab:
        return lab(name, home=home, mode=mode, lang=lang)


sys.modules[__name__].__class__ = _CallableModule
