"""A lab session in a notebook: start, reset, skip ahead, check, hint, solution.

>>> lab = meshkit.lab("04-rds")    # lang="ko" for Korean (a notebook in labs/ko/ speaks it already)
>>> lab.start()            # boots or attaches to the mesh, restores this lab's starting state
>>> lab.check("ex1")       # done / not yet / wrong / rejected / environment problem
>>> lab.hint("ex1")        # one tier more each time
>>> lab.solution("ex1")    # show the reference answer (apply=True to apply it)
>>> lab.projector()        # instructor: MeshGraph + SyncTable in large type for the wall

Every method can be run again at any time and in any order.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from .. import client, i18n
from ..client import Mesh
from ..errors import MeshError
from . import modes, progress
from .catalog import load_spec
from .i18n import Texts
from .i18n.ui import say
from .instructor import Autopilot, Faults
from .spec import Exercise, LabSpec, Outcome, Verdict
from .waiting import poll

SYNC_DEADLINE_S = 10.0

_ICONS = {
    Outcome.DONE: "✅", Outcome.NOT_YET: "⏳", Outcome.WRONG: "❌",
    Outcome.REJECTED: "⛔", Outcome.ENVIRONMENT: "⚠️", Outcome.ELSEWHERE: "↪️",
}
_COLOURS = {
    Outcome.DONE: "#1a7f37", Outcome.NOT_YET: "#6e7781", Outcome.WRONG: "#cf222e",
    Outcome.REJECTED: "#8250df", Outcome.ENVIRONMENT: "#9a6700", Outcome.ELSEWHERE: "#6e7781",
}


@dataclass(frozen=True)
class CheckResult:
    """A check's outcome as the learner sees it (plain text, or a coloured badge in Jupyter)."""

    lab: str
    exercise: str
    outcome: Outcome
    message: str
    lang: str = i18n.EN

    @property
    def done(self) -> bool:
        return self.outcome is Outcome.DONE

    @property
    def outcome_text(self) -> str:
        return say(self.lang, self.outcome.value)

    def __str__(self) -> str:
        text = f"{_ICONS[self.outcome]} {self.exercise}: {self.outcome_text}"
        return f"{text} — {self.message}" if self.message else text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = _COLOURS[self.outcome]
        message = html.escape(self.message).replace("\n", "<br>")
        return (
            f'<div style="border-left:4px solid {colour};padding:4px 10px;margin:4px 0">'
            f'<b style="color:{colour}">{_ICONS[self.outcome]} {self.exercise}: {self.outcome_text}</b>'
            + (f"<br>{message}" if message else "") + "</div>"
        )


@dataclass(frozen=True)
class Reveal:
    """A hint or a solution, shown as text (and as a styled block in Jupyter)."""

    title: str
    body: str

    def __str__(self) -> str:
        return f"{self.title}\n{self.body}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return (f'<div style="border-left:4px solid #0969da;padding:4px 10px"><b>{html.escape(self.title)}</b>'
                f"<pre style='white-space:pre-wrap'>{html.escape(self.body)}</pre></div>")


class Lab:
    """One lab, bound to the mesh at `home` (default: `$MESHKIT_HOME` or ~/.meshkit), speaking
    `lang` (default: the notebook's edition folder, else `$MESHKIT_LANG`, else English)."""

    def __init__(self, spec: LabSpec, home: str | None = None, mode: str | None = None,
                 lang: str | None = None) -> None:
        self.spec = spec
        self.home = client.home_dir(home)
        self.mode = modes.resolve(mode)
        self.lang = i18n.use(lang)  # the widgets of this kernel follow the lab's language
        self.texts = Texts(spec.name, self.lang)
        self._mesh: Mesh | None = None
        self._hint_level: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Lab({self.spec.name!r}: {self.t(self.spec.title)}, mode={self.mode}, lang={self.lang})"

    def t(self, english: str) -> str:
        """A text of this lab's spec or checks in the lab's language."""
        return self.texts.t(english)

    def say(self, english: str, *values: object) -> str:
        """One of the session's own sentences in the lab's language."""
        return say(self.lang, english, *values)

    @property
    def mesh(self) -> Mesh:
        if self._mesh is None:
            self._mesh = client.up(self.home)
        return self._mesh

    @property
    def runtime(self) -> str:
        """Where the mesh runs: "local" or "kind" (labs say what differs there)."""
        return runtime_of(self.mesh)

    def _runs_here(self, exercise: Exercise) -> bool:
        return self.runtime in exercise.runtimes

    # -- state -------------------------------------------------------------------------------
    def start(self) -> Reveal:
        """Boot or attach to the mesh and restore this lab's starting state (idempotent)."""
        self.reset()
        lines = [self.say("{0} — about {1} minutes, mode: {2}", self.t(self.spec.title), self.spec.minutes, self.mode)]
        lines += [f"  • {self.t(objective)}" for objective in self.spec.objectives]
        summary = sync_summary(self.mesh, lang=self.lang)
        lines.append(self.say("mesh: {0} pods, {1} ({2} runtime)", len(self.mesh.pods()), summary, self.runtime))
        lines += [self.say("  on {0}: {1}", self.runtime, note) for note in self.notes_here()]
        if self.mode == modes.INSTRUCTOR:
            modes.enable_projection()
        return Reveal(self.say("Lab {0} is ready", self.spec.name), "\n".join(lines))

    def notes_here(self) -> list[str]:
        """`spec.notes_for(runtime)` in the lab's language."""
        runtime = self.runtime
        notes = [self.t(note) for where, note in self.spec.runtime_notes if where == runtime]
        notes += [self.say("{0} runs on {1} only: {2}", e.id, self.say(" or ").join(e.runtimes),
                           self.t(e.elsewhere) or self.say("skip it here"))
                  for e in self.spec.exercises if runtime not in e.runtimes]
        return notes

    def reset(self) -> None:
        """Back to this lab's starting state: default mesh plus the lab's own setup."""
        mesh = self.mesh
        restore_default(mesh)
        if self.spec.setup is not None:
            self.spec.setup(mesh)
        wait_synced(mesh)

    def skip_to(self, exercise: int | str) -> list[str]:
        """Reset, then apply the reference solutions of every exercise before `exercise`."""
        index = exercise - 1 if isinstance(exercise, int) else self._index(exercise)
        self.reset()
        applied = []
        for earlier in self.spec.exercises[:index]:
            if self._runs_here(earlier):
                earlier.apply(self.mesh)
                applied.append(earlier.id)
        wait_synced(self.mesh)
        return applied

    # -- exercises ---------------------------------------------------------------------------
    def check(self, exercise_id: str) -> CheckResult:
        """Judge an exercise from live state, waiting for the mesh to converge first."""
        exercise = self.spec.exercise(exercise_id)
        mesh = self.mesh_or_none()
        if mesh is not None and runtime_of(mesh) not in exercise.runtimes:
            return CheckResult(self.spec.name, exercise.id, Outcome.ELSEWHERE,
                               self.say("runs on {0} only: {1}", self.say(" or ").join(exercise.runtimes),
                                        self.t(exercise.elsewhere)), self.lang)
        verdict = run_check(mesh, exercise, self.lang)
        progress.record(self.home, self.spec.name, exercise.id, verdict.outcome.value)
        return CheckResult(self.spec.name, exercise.id, verdict.outcome, self.t(verdict.message), self.lang)

    def mesh_or_none(self) -> Mesh | None:
        try:
            return self.mesh
        except MeshError:
            return None

    def hint(self, exercise_id: str, level: int | None = None) -> Reveal:
        """The next hint tier (or tier `level`, 1-based) for an exercise."""
        exercise = self.spec.exercise(exercise_id)
        if not modes.hints_allowed(self.mode, self.home):
            return Reveal(self.say("Hints are locked"), self.say(
                "Your instructor unlocks hints during the workshop (`meshkit hints unlock`). "
                "Try the prediction prompts meanwhile."))
        shown = level if level is not None else self._hint_level.get(exercise_id, 0) + 1
        shown = max(1, min(shown, len(exercise.hints)))
        self._hint_level[exercise_id] = shown
        more = self.say(" (run again for a stronger hint)") if shown < len(exercise.hints) else ""
        title = self.say("Hint {0}/{1} for {2}", shown, len(exercise.hints), exercise_id) + more
        return Reveal(title, self.t(exercise.hints[shown - 1]))

    def solution(self, exercise_id: str, apply: bool = False) -> Reveal:
        """Show the reference solution; with apply=True also put it into the mesh."""
        exercise = self.spec.exercise(exercise_id)
        progress.record(self.home, self.spec.name, exercise.id, "solution shown")
        applied = apply and self._runs_here(exercise)
        if applied:
            exercise.apply(self.mesh)
            wait_synced(self.mesh)
        title = self.say("Solution for {0}: {1}", exercise_id, self.t(exercise.title))
        title += self.say(" (applied)") if applied else ""
        if apply and not applied:
            title += self.say(" (not applied: runs on {0} only)", self.say(" or ").join(exercise.runtimes))
        return Reveal(title, exercise.solution)

    # -- instructor mode ---------------------------------------------------------------------
    def autopilot(self) -> Autopilot:
        """Step through this lab's solutions one at a time (instructor demo)."""
        return Autopilot(self)

    def faults(self) -> Faults:
        """Buttons that break and mend the mesh on cue (instructor demo)."""
        return Faults(self.mesh, lang=self.lang)

    def progress(self) -> object:
        """This machine's self-study progress, every lab, in the lab's language (a pandas table)."""
        table = progress.table(self.home)
        table["OUTCOME"] = [self.say(outcome) for outcome in table["OUTCOME"]]
        return table.rename(columns={column: self.say(column) for column in table.columns})

    def projector(self, scale: float = 1.6) -> object:
        """The wall view for the room: MeshGraph and SyncTable side by side in large type."""
        from ..widgets.projector import Projector  # ipywidgets only when a picture is asked for

        return Projector(self.mesh, scale=scale)

    def _index(self, exercise_id: str) -> int:
        return [e.id for e in self.spec.exercises].index(self.spec.exercise(exercise_id).id)


def runtime_of(mesh: Mesh | None) -> str:
    """"kind" for the mesh `connect(runtime="kind")` returns, "local" otherwise."""
    return mesh.runtime if mesh is not None else "local"


def lab(name: str, home: str | None = None, mode: str | None = None, lang: str | None = None) -> Lab:
    """The lab called `name` (e.g. "04-rds" or just "04"), in `lang` ("en" or "ko")."""
    return Lab(load_spec(name), home=home, mode=mode, lang=lang)


def run_check(mesh: Mesh | None, exercise: Exercise, lang: str = i18n.EN) -> Verdict:
    """Wait for convergence, run the check, and explain environment trouble instead of crashing
    (those explanations in `lang`; the check's own message is translated by the caller)."""
    if mesh is None:
        return Verdict(Outcome.ENVIRONMENT, say(lang, "no mesh answers; run `meshkit up` (or `meshkit doctor`)"))
    try:
        wait_synced(mesh, exercise.deadline_s)
        verdict = exercise.check(mesh)
    except MeshError as exc:
        return Verdict(Outcome.ENVIRONMENT, say(lang, "{0} — try `meshkit doctor`", exc))
    if verdict.outcome in (Outcome.NOT_YET, Outcome.WRONG):
        errors = nack_errors(mesh)
        if errors:
            return Verdict.rejected(say(lang, "Envoy rejected the last config you pushed: {0}", "; ".join(errors)))
    return verdict


def wait_synced(mesh: Mesh, deadline_s: float = SYNC_DEADLINE_S) -> bool:
    """Wait until no sidecar is STALE (an ERROR counts as settled: Envoy answered)."""
    states = poll(lambda: {s["state"] for row in mesh.status_rows() for s in row["types"].values()},
                  lambda states: "STALE" not in states, deadline_s, every=0.05)
    return "STALE" not in states


def sync_summary(mesh: Mesh, wait_s: float = 3.0, lang: str = i18n.EN) -> str:
    """"all sidecars SYNCED", or who is not (a DISCONNECTED sidecar, a stopped boss) as status says;
    sidecars get `wait_s` to find a just-restarted boss again."""
    rows = poll(mesh.status_rows, lambda rows: not _away(rows) or _boss_stopped(rows), wait_s, every=0.1)
    away = _away(rows)
    if _boss_stopped(rows):
        return say(lang, "the boss is stopped: the sidecars keep their last config (mesh.start_boss())")
    if away:
        return say(lang, "{0} sidecars not connected to the boss: {1}", len(away), ", ".join(away))
    unsynced = sorted({row["pod"] for row in rows for s in row["types"].values()
                       if s["state"] not in ("SYNCED", "NOT SENT")})
    if unsynced:
        return say(lang, "sidecars not yet SYNCED: {0}", ", ".join(unsynced))
    return say(lang, "all sidecars SYNCED")


def _away(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The sidecars of `rows` not connected to the boss."""
    return [row["pod"] or row["name"] for row in rows if not row.get("connected", True)]


def _boss_stopped(rows: Sequence[Mapping[str, Any]]) -> bool:
    return any(row.get("state") == "BOSS STOPPED" for row in rows)


def nack_errors(mesh: Mesh) -> list[str]:
    return [f"{row['pod']} {kind}: {state['error']}" for row in mesh.status_rows()
            for kind, state in row["types"].items() if state["state"] == "ERROR"]


def restore_default(mesh: Mesh) -> None:
    """Bring the boss back if a lab stopped it, drop raw overrides and Istio resources, and set
    the mesh back to ALLOW_ANY."""
    mesh.start_boss()
    mesh.revert()
    for kind in ("VirtualService", "DestinationRule", "ServiceEntry", "PeerAuthentication", "AuthorizationPolicy",
                 "HTTPRoute", "GRPCRoute", "TCPRoute", "KubernetesGateway", "Gateway"):
        items = mesh.get(kind)
        if items:
            mesh.delete(yaml.safe_dump_all(items, sort_keys=False))
    mesh.set_outbound_traffic_policy("ALLOW_ANY")




