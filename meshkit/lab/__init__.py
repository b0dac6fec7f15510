"""Lab sessions for the notebooks: `lab = meshkit.lab("04-rds"); lab.start(); lab.check("ex1")`."""

from .session import CheckResult, Lab, lab
from .spec import Exercise, LabSpec, Outcome, Verdict

__all__ = ["CheckResult", "Exercise", "Lab", "LabSpec", "Outcome", "Verdict", "lab"]
