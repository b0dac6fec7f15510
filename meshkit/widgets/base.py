"""What every meshkit widget shares: a plain-text view, a text-only switch, and a sync-event watcher.

A `View` wraps an ipywidgets container (`view.widget`) and knows how to describe itself in
text (`view.text()`). Displayed, it sends the live widget plus `text/html` and `text/plain`
snapshots, so nbconvert HTML and front ends without the widget extension still show something
useful. `fallback_only()` (or `MESHKIT_WIDGETS=text`) sends the text alone.

Live views call `self.watch(mesh)`: a daemon thread long-polls `mesh.events()` and hands each
batch of sync events to `on_events`. The thread holds only a weak reference to the view, so
a view that is closed or garbage-collected stops its thread.
"""

from __future__ import annotations

import html
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as w

from .messages import t

_text_only = os.environ.get("MESHKIT_WIDGETS", "").strip().lower() == "text"

POLL_S = 2.0  # longest wait of one events() call: how long a closed view's thread may linger
_watching: weakref.WeakSet[View] = weakref.WeakSet()  # views whose watcher thread runs (for stop_watching)


def fallback_only(on: bool = True) -> None:
    """Show every meshkit widget as plain text from now on (`on=False` switches widgets back).

    >>> import meshkit.widgets as mw
    >>> mw.fallback_only()          # e.g. for a slide deck or an nbconvert export
    """
    global _text_only
    _text_only = on


def stop_watching() -> int:
    """Stop the watcher thread of every live view (without waiting); the pictures stay as last drawn.

    Returns how many views were watching.

    A lab's last cell calls it: a MeshGraph polls the mesh twice a second for as long as it watches,
    and the next lab (or CI's next notebook) should not pay for it. Redraw buttons still work.

    >>> import meshkit.widgets as mw
    >>> mw.stop_watching()
    """
    views = [view for view in list(_watching) if not view.closed]
    for view in views:  # no join: each thread ends by itself when its current poll returns (≤ POLL_S)
        view._stop.set()
    _watching.clear()
    return len(views)


def text_only() -> bool:
    """True when widgets are switched off (`fallback_only()` or `MESHKIT_WIDGETS=text`)."""
    return _text_only


class View:
    """A widget with a text twin. Subclasses set `self.widget` and implement `text()`."""

    widget: w.Widget
    problem: str = ""  # why the last refresh could not read the mesh ("" when it could)

    def read_mesh(self, read: Callable[[], Any], keep: Any) -> Any:
        """`read()`, or `keep` (what the view showed) with `problem` saying why the mesh did not answer."""
        try:
            value, self.problem = read(), ""
        except Exception as exc:  # the mesh is not there (yet): keep the last picture, say why
            value, self.problem = keep, f"could not read the mesh: {exc}"
        return value

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()  # one redraw at a time (watcher thread vs. the notebook)
        weakref.finalize(self, self._stop.set)

    def text(self) -> str:
        """The view as plain text (what front ends without widgets show)."""
        raise NotImplementedError

    def html(self) -> str:
        """A static HTML snapshot, for nbconvert and front ends without the widget extension."""
        return f"<pre>{html.escape(self.text())}</pre>"

    def _repr_mimebundle_(self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
                          ) -> dict[str, Any]:
        text = self.text()
        if text_only() or self.closed:
            return {"text/plain": text}
        bundle = dict(self.widget._repr_mimebundle_() or {})
        bundle.update({"text/html": self.html(), "text/plain": text})
        return bundle

    def __repr__(self) -> str:
        return self.text()

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Stop the watcher thread and remove the widget from the page."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(POLL_S + 1.0)
        _close_tree(self.widget)

    # -- live updates ----------------------------------------------------------------------
    def watch(self, mesh: Any, poll_s: float = POLL_S) -> None:
        """Start the thread that feeds `on_events` with each batch of the mesh's sync events."""
        self._thread = threading.Thread(target=_watch, args=(weakref.ref(self), mesh, self._stop, poll_s),
                                        name=f"meshkit-{type(self).__name__}", daemon=True)
        self._thread.start()
        _watching.add(self)

    def on_events(self, events: list[dict]) -> None:
        """Called from the watcher thread with the events of one poll ([] when it timed out)."""

    def on_watch_error(self, error: Exception) -> None:
        """Called from the watcher thread when the mesh did not answer (it retries)."""


def _watch(ref: weakref.ref[View], mesh: Any, stop: threading.Event, poll_s: float) -> None:
    after: int | None = None
    while not stop.is_set():
        try:
            if after is None:
                after = int(mesh.events()["last"])  # only what happens from now on
            reply = mesh.events(after=after, timeout=poll_s)
        except Exception as exc:  # the mesh is down or restarting: say so, try again
            view = ref()
            if view is None:
                return
            view.on_watch_error(exc)
            del view
            stop.wait(poll_s)
            continue
        after = int(reply["last"])  # a restarted boss numbers from 0 again: follow it down
        view = ref()
        if view is None or stop.is_set():
            return
        view.on_events(list(reply.get("events", [])))
        del view


def weak_callback(method: Callable[[], object]) -> Callable[..., None]:
    """A widget callback that calls the bound `method` only while its view lives.

    A Button keeps its callbacks for as long as it exists; a weak one lets the view be collected.
    """
    ref = weakref.WeakMethod(method)  # type: ignore[arg-type]

    def call(*_: object) -> None:
        bound = ref()
        if bound is not None:
            bound()

    return call


def _close_tree(widget: w.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def status_html(text: str, tone: str = "") -> str:
    """One line of status: tone `ok` (green), `error` (red), `busy` (grey) or neutral; in the lab's language."""
    colour = {"ok": "#38761d", "error": "#cc0000", "busy": "#777777"}.get(tone, "inherit")
    return f'<div style="color:{colour};white-space:pre-wrap;font-family:monospace">{html.escape(t(text))}</div>'

