"""Editors that write Istio YAML from a few fields, show the xDS it becomes, push it and show the answer.

Widgets: `WeightSliders` (applies when a slider is released, never per pixel; the others follow
so the weights add up to 100), `HeaderMatchForm`, `FaultForm` and `YamlEditor` (a diff against
what is live, Apply, and the ACK/NACK panel with Envoy's own error text). Each has a
"show generated xDS" toggle that asks the boss what the YAML would become (`mesh.xds`). The
YAML itself comes from the pure functions in `builders.py`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ipywidgets as w
import yaml

from ..model.raw import is_raw_document, load_documents
from . import builders as yb  # the pure YAML builders these editors wire to fields
from .base import View, status_html
from .messages import t

__all__ = ["FaultForm", "HeaderMatchForm", "WeightSliders", "YamlEditor"]


class _Editor(View):
    """Fields → YAML → (preview xDS) → apply → ACK/NACK panel. Subclasses build `fields` and `yaml()`."""

    def __init__(self, mesh: Any, fields: list[w.Widget], preview_pod: str | None, apply_button: bool = True) -> None:
        super().__init__()
        self.mesh = mesh
        self.preview_pod = preview_pod
        self.applies = 0
        self.last_result: dict | None = None
        self.last_error: Exception | None = None
        self.outcome = ""
        self._yaml_view = w.HTML()
        self._result = w.HTML()
        self._xds = w.HTML()
        self._show_xds = w.ToggleButton(description=t("show generated xDS"), icon="code")
        self._show_xds.observe(lambda _: self.update_preview(), names="value")
        buttons = [self._show_xds]
        if apply_button:
            button = w.Button(description=t("Apply"), button_style="primary", icon="upload")
            button.on_click(lambda _: self.apply())
            buttons.insert(0, button)
        self.widget = w.VBox([*fields, w.HBox(buttons), self._result, self._yaml_view, self._xds])
        self.update_preview()

    def yaml(self) -> str:
        raise NotImplementedError

    def pods(self) -> list[str] | None:
        """Which proxies an apply targets (None: let the boss decide, i.e. all)."""
        return None

    def apply(self) -> dict | None:
        """Push `yaml()` and show how the proxies answered; returns the push record (None if refused)."""
        self.applies += 1
        self._result.value = status_html("pushing… (waiting for every proxy to ACK)", "busy")
        try:
            self.last_result, self.last_error = self.mesh.apply(self.yaml(), pods=self.pods()), None
        except Exception as exc:  # a NACK, a refusal or a mesh that is down: show it, never raise into the UI
            self.last_result, self.last_error = None, exc
        self.outcome, tone = yb.describe_outcome(self.last_result, self.last_error)
        self._result.value = status_html(self.outcome, tone)
        return self.last_result

    def update_preview(self) -> None:
        """Show the YAML the fields make, and (when toggled) the xDS it becomes for the preview pod."""
        try:
            text = self.yaml()
        except ValueError as exc:
            self._yaml_view.value = status_html(str(exc), "error")
            return
        self._yaml_view.value = f"<pre>{html.escape(text)}</pre>"
        if not self._show_xds.value:
            self._xds.value = ""
            return
        try:
            pod = self.preview_pod or self.mesh.pods()[0]
            shown = self.generated_xds(pod, text)
            self._xds.value = (f"<b>xDS {html.escape(pod)}'s Envoy would get</b>"
                               f"<pre>{html.escape(yaml.safe_dump(shown, sort_keys=False))}</pre>")
        except Exception as exc:
            self._xds.value = status_html(f"cannot preview: {exc}", "error")

    def generated_xds(self, pod: str, text: str) -> Any:
        return self.mesh.xds(pod, text)

    def text(self) -> str:
        try:
            text = self.yaml()
        except ValueError as exc:
            text = str(exc)
        return "\n".join(part for part in (self.summary(), text.rstrip(), self.outcome) if part)

    def summary(self) -> str:
        return type(self).__name__


class _HostEditor(_Editor):
    """An editor for one Service's VirtualService; adds a DestinationRule when the subsets lack one."""

    def __init__(self, mesh: Any, host: str, subsets: Sequence[str] | None, fields: list[w.Widget],
                 preview_pod: str | None, destination_rule: bool | None, apply_button: bool = True) -> None:
        self.host = host
        self.subsets = list(subsets) if subsets is not None else _known_subsets(mesh, host)
        if destination_rule is None:
            destination_rule = yb.needs_destination_rule(mesh.get("DestinationRule"), host, self.subsets)
        self.with_rule = destination_rule
        super().__init__(mesh, fields, preview_pod, apply_button)

    def yaml(self) -> str:
        vs = self.virtual_service()
        return (yb.destination_rule(self.host, self.subsets) + "---\n" + vs) if self.with_rule else vs

    def virtual_service(self) -> str:
        raise NotImplementedError

    def generated_xds(self, pod: str, text: str) -> Any:
        return yb.xds_for_host(self.mesh.xds(pod, text), self.host)

    def _watch_fields(self, fields: Iterable[w.Widget]) -> None:
        for field in fields:
            field.observe(lambda _: self.update_preview(), names="value")


def _known_subsets(mesh: Any, host: str) -> list[str]:
    """The `version` labels of the Service's pods: Bookinfo's subsets."""
    workloads = mesh.topology()["workloads"]
    return sorted({wl["labels"]["version"] for wl in workloads
                   if wl.get("labels", {}).get("app") == yb.short_host(host) and "version" in wl.get("labels", {})})


class WeightSliders(_HostEditor):
    """One slider per subset; releasing a slider applies a weighted VirtualService once.

    Sliders use `continuous_update=False`, so dragging sends nothing until release; the other
    sliders then move to keep the total at 100 without pushing themselves.

    >>> sliders = WeightSliders(mesh, "reviews", ["v1", "v2", "v3"])   # start from the live route
    >>> sliders.weights
    {'v1': 34, 'v2': 33, 'v3': 33}
    """

    def __init__(self, mesh: Any, host: str, subsets: Sequence[str] | None = None, *,
                 weights: Mapping[str, int] | None = None, preview_pod: str | None = None,
                 destination_rule: bool | None = None) -> None:
        self._adjusting = False
        names = list(subsets) if subsets is not None else _known_subsets(mesh, host)
        start = yb.normalise_weights(weights or dict.fromkeys(names, 1))
        self.sliders = {name: w.IntSlider(value=start.get(name, 0), min=0, max=100, description=name,
                                          continuous_update=False) for name in names}
        super().__init__(mesh, host, names, list(self.sliders.values()), preview_pod, destination_rule,
                         apply_button=False)
        for name, slider in self.sliders.items():
            slider.observe(lambda change, name=name: self._released(name), names="value")

    @property
    def weights(self) -> dict[str, int]:
        return {name: slider.value for name, slider in self.sliders.items()}

    def _released(self, name: str) -> None:
        if self._adjusting:
            return
        balanced = yb.normalise_weights(self.weights, changed=name)
        self._adjusting = True
        try:
            for other, slider in self.sliders.items():
                slider.value = balanced[other]
        finally:
            self._adjusting = False
        self.update_preview()
        self.apply()

    def virtual_service(self) -> str:
        return yb.weights_to_virtual_service(self.host, self.weights)

    def summary(self) -> str:
        return f"weights for {self.host}: " + ", ".join(f"{k}={v}%" for k, v in self.weights.items())


class HeaderMatchForm(_HostEditor):
    """Header name, match type (exact/prefix/regex), value and destination subset → a VirtualService."""

    def __init__(self, mesh: Any, host: str, subsets: Sequence[str] | None = None, *, header: str = "end-user",
                 value: str = "jason", preview_pod: str | None = None, destination_rule: bool | None = None) -> None:
        names = list(subsets) if subsets is not None else _known_subsets(mesh, host)
        self.header = w.Text(value=header, description=t("header"))
        self.match_type = w.Dropdown(options=yb.MATCH_TYPES, value="exact", description=t("match"))
        self.value = w.Text(value=value, description=t("value"))
        self.subset = w.Dropdown(options=names, value=names[-1] if names else None, description=t("send to"))
        self.default_subset = w.Dropdown(options=[("(all)", None), *((n, n) for n in names)],
                                         value=names[0] if names else None, description=t("others to"))
        fields = [self.header, self.match_type, self.value, self.subset, self.default_subset]
        super().__init__(mesh, host, names, fields, preview_pod, destination_rule)
        self._watch_fields(fields)

    def virtual_service(self) -> str:
        if not self.header.value.strip():
            raise ValueError("name the header to match (e.g. end-user or user-agent)")
        return yb.header_match_virtual_service(self.host, self.header.value, self.match_type.value, self.value.value,
                                            self.subset.value, self.default_subset.value)

    def summary(self) -> str:
        return (f"{self.host}: {self.header.value} {self.match_type.value} {self.value.value!r} → "
                f"{self.subset.value}, others → {self.default_subset.value or 'all'}")


class FaultForm(_HostEditor):
    """Delay / abort for a percentage of requests, a timeout and retries → a VirtualService."""

    def __init__(self, mesh: Any, host: str, subset: str | None = None, *, preview_pod: str | None = None) -> None:
        self.delay = w.BoundedFloatText(value=0, min=0, max=600, step=0.5, description=t("delay s"))
        self.abort = w.BoundedIntText(value=0, min=0, max=599, description=t("abort HTTP"))
        self.percentage = w.IntSlider(value=100, min=0, max=100, description=t("% of reqs"), continuous_update=False)
        self.timeout = w.BoundedFloatText(value=0, min=0, max=600, step=0.5, description=t("timeout s"))
        self.retries = w.BoundedIntText(value=0, min=0, max=10, description=t("retries"))
        self.per_try = w.BoundedFloatText(value=0, min=0, max=600, step=0.5, description=t("per try s"))
        self.subset = subset
        fields = [self.delay, self.abort, self.percentage, self.timeout, self.retries, self.per_try]
        super().__init__(mesh, host, [subset] if subset else [], fields, preview_pod,
                         None if subset else False)
        self._watch_fields(fields)

    def virtual_service(self) -> str:
        return yb.fault_virtual_service(self.host, delay_s=self.delay.value, abort_status=self.abort.value,
                                     percentage=self.percentage.value, timeout_s=self.timeout.value,
                                     retries=self.retries.value, per_try_timeout_s=self.per_try.value,
                                     subset=self.subset)

    def summary(self) -> str:
        return f"faults, timeout and retries for {self.host}"


class YamlEditor(_Editor):
    """Any YAML (Istio resources, or raw Envoy ones with `"@type"`), a diff against what is live,
    Apply, and the ACK/NACK panel.

    The diff compares what the boss would generate (`mesh.xds(pod, text)` vs `mesh.xds(pod)`) for
    Istio YAML, and the pod's own Envoy config dump for raw Envoy resources.
    """

    def __init__(self, mesh: Any, pods: Sequence[str] | None = None, text: str = "") -> None:
        self.targets = list(pods) if pods else None
        self.editor = w.Textarea(value=text, placeholder=t("paste or write YAML here"),
                                 layout=w.Layout(width="100%", height="16em"))
        self.diff_pod = w.Dropdown(options=self.targets or mesh.pods(), description=t("diff on"))
        diff_button = w.Button(description=t("Diff against live"), icon="exchange")
        diff_button.on_click(lambda _: self.show_diff())
        self._diff = w.HTML()
        self.last_diff = ""
        super().__init__(mesh, [self.editor, w.HBox([self.diff_pod, diff_button]), self._diff], None)

    def yaml(self) -> str:
        return self.editor.value

    def pods(self) -> list[str] | None:
        return self.targets

    def update_preview(self) -> None:
        self.preview_pod = self.diff_pod.value
        super().update_preview()
        self._yaml_view.value = ""  # the text area already shows it

    def diff(self) -> str:
        """What would change on the diff pod's Envoy ("" when nothing would)."""
        pod, text = self.diff_pod.value, self.yaml()
        docs = load_documents(text)
        if docs and all(is_raw_document(doc) for doc in docs):
            return yb.live_xds_diff(json.loads(self.mesh.admin(pod, "/config_dump?include_eds")), text)
        return yb.diff_resources(yb.xds_by_name(self.mesh.xds(pod)), yb.xds_by_name(self.mesh.xds(pod, text)))

    def show_diff(self) -> str:
        try:
            self.last_diff = self.diff() or "(no difference: the proxy already has this)"
            self._diff.value = f"<pre>{html.escape(self.last_diff)}</pre>"
        except Exception as exc:  # refused YAML, unknown field, mesh down: say it in place
            self.last_diff = f"cannot diff: {exc}"
            self._diff.value = status_html(self.last_diff, "error")
        return self.last_diff

    def summary(self) -> str:
        return f"YAML for {', '.join(self.targets) if self.targets else 'all proxies'}"

    def text(self) -> str:
        return "\n".join(part for part in (super().text(), self.last_diff) if part)
