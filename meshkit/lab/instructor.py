"""Instructor demo mode: step through a lab's solutions (autopilot) and break the mesh on cue.

>>> lab = meshkit.lab("07")
>>> lab.autopilot()        # a "Next step" button: apply the next solution, then run its check
>>> lab.faults()           # buttons: stop/restore the boss, a 2 s delay, a bad config, clear

Both also work without a widget front end: `Autopilot.step()` and `Faults.run(name)` print
what happened, so a projected terminal or an nbconvert export still tells the story.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import MeshError
from .i18n.ui import say

if TYPE_CHECKING:
    from ..client import Mesh
    from .session import CheckResult, Lab

DELAY_FAULT = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: instructor-delay, namespace: default}
spec:
  hosts: [ratings]
  http:
  - fault:
      delay: {fixedDelay: 2s, percentage: {value: 100}}
    route:
    - destination: {host: ratings}
"""

BAD_LISTENER = """
"@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: instructor-broken
address: {socket_address: {address: 0.0.0.0, port_value: 7777}}
bind_to_port: false
filter_chains:
- filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: a, cluster: BlackHoleCluster}}]
- filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: b, cluster: BlackHoleCluster}}]
"""  # noqa: E501 - two identical chains: Envoy NACKs it, which is the point


class Autopilot:
    """Applies a lab's reference solutions one exercise at a time, checking each."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.position = 0
        self.log: list[str] = []

    def step(self) -> CheckResult | None:
        """Apply the next exercise's solution and return its check (None when all are done)."""
        exercises = self.lab.spec.exercises
        if self.position >= len(exercises):
            self.log.append(self.lab.say("autopilot: every exercise of this lab is done"))
            return None
        exercise = exercises[self.position]
        self.position += 1
        exercise.apply(self.lab.mesh)
        result = self.lab.check(exercise.id)
        self.log.append(f"autopilot {self.position}/{len(exercises)}: {self.lab.t(exercise.title)} → {result}")
        return result

    def widget(self) -> object:
        import ipywidgets as w

        button = w.Button(description=self.lab.say("Next step"), button_style="primary", icon="forward")
        output = w.Output()

        def on_click(_: object) -> None:
            with output:
                result = self.step()
                print(self.log[-1] if result is None else result)

        button.on_click(on_click)
        title = self.lab.say("Autopilot: {0}", self.lab.t(self.lab.spec.title))
        return w.VBox([w.HTML(f"<b>{title}</b>"), button, output])

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        return _bundle(self.widget(), f"Autopilot for {self.lab.spec.name}: call .step() to advance")


class Faults:
    """Ways to break the mesh in front of a room, and to mend it."""

    def __init__(self, mesh: Mesh, lang: str = "en") -> None:
        self.mesh = mesh
        self.lang = lang
        self.actions: dict[str, Callable[[], str]] = {
            "stop the boss": self._stop,
            "restore the boss": self._start,
            "2 s delay on ratings": self._delay,
            "push a bad config": self._bad_config,
            "clear faults": self._clear,
        }

    def run(self, name: str) -> str:
        """Do the fault called `name` (its English name) and say what happened, in the lab's language."""
        try:
            return say(self.lang, self.actions[name]())
        except MeshError as exc:  # a NACK is an expected outcome here
            return f"{say(self.lang, name)}: {exc}"

    def _stop(self) -> str:
        self.mesh.stop_boss()
        return "the boss is down: sidecars keep their last orders (try a request)"

    def _start(self) -> str:
        self.mesh.start_boss()
        return "the boss is back: sidecars reconnect and resync"

    def _delay(self) -> str:
        self.mesh.apply(DELAY_FAULT)
        return "every call to ratings now waits 2 s (VirtualService instructor-delay)"

    def _bad_config(self) -> str:
        self.mesh.apply(BAD_LISTENER, pods=["reviews-v1"])
        return "unexpected: Envoy accepted the bad listener"

    def _clear(self) -> str:
        self.mesh.start_boss()
        self.mesh.revert(["reviews-v1"])
        if any(vs["metadata"]["name"] == "instructor-delay" for vs in self.mesh.get("VirtualService")):
            self.mesh.delete(DELAY_FAULT)
        return "faults cleared"

    def widget(self) -> object:
        import ipywidgets as w

        output = w.Output()
        buttons = []
        for name in self.actions:
            button = w.Button(description=say(self.lang, name),
                              button_style="danger" if "bad" in name or "stop" in name else "")

            def on_click(_: object, name: str = name) -> None:
                with output:
                    print(self.run(name))

            button.on_click(on_click)
            buttons.append(button)
        return w.VBox([w.HTML(f"<b>{say(self.lang, 'Fault buttons')}</b>"), w.HBox(buttons), output])

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        return _bundle(self.widget(), "Fault buttons: " + ", ".join(self.actions) + " (call .run(name))")


def _bundle(widget: object, text: str) -> dict:
    bundle = widget._repr_mimebundle_() if hasattr(widget, "_repr_mimebundle_") else {}
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    return {**(data or {}), "text/plain": text}
