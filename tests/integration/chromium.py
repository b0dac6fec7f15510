"""Just enough of the Chrome DevTools protocol to drive Debian's headless Chromium from a test.

No browser download and no driver: Chromium is started with `--remote-debugging-port=0`, writes
the port it chose to `DevToolsActivePort` in its (fresh, temporary) profile, and we talk to its
page over one WebSocket with `websocket-client`.

    with Chromium(profile_dir) as browser:
        page = browser.page()
        page.navigate("http://127.0.0.1:8888/lab")
        page.wait_for("document.querySelector('svg') !== null", timeout=30)
        page.screenshot(Path("shot.png"))
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

# Without these, Chromium as root refuses to start (sandbox), or stalls on lookups to the outside.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    pass


class Page:
    """One tab, driven over its DevTools WebSocket."""

    def __init__(self, ws_url: str) -> None:
        self._ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self._next = 0
        self.console: list[str] = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params: Any) -> dict:
        self._next += 1
        ident = self._next
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)

    def _event(self, message: dict) -> None:
        if message.get("method") == "Runtime.consoleAPICalled":
            args = message["params"].get("args", [])
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
        elif message.get("method") == "Runtime.exceptionThrown":
            details = message["params"].get("exceptionDetails", {})
            self.console.append(f"exception: {details.get('exception', {}).get('description', details.get('text'))}")

    def evaluate(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            why = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{expression[:80]}: {why}")
        return reply.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout: float, what: str = "") -> Any:
        """Poll a JavaScript expression until it is truthy; raise with `what` after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(BrowserError):  # the page may be mid-navigation
                value = self.evaluate(expression)
                if value:
                    return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out after {timeout:.0f}s waiting for {what or expression}")
            time.sleep(0.1)

    def key(self, key: str, code: str, key_code: int, modifiers: int = 0) -> None:
        """Press and release one key (modifiers: 1 Alt, 2 Ctrl, 4 Meta, 8 Shift)."""
        common = {"key": key, "code": code, "windowsVirtualKeyCode": key_code, "modifiers": modifiers}
        self.call("Input.dispatchKeyEvent", type="rawKeyDown", **common)
        self.call("Input.dispatchKeyEvent", type="keyUp", **common)

    def click(self, selector: str) -> None:
        box = self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, path: Path, selector: str | None = None) -> None:
        """The viewport as a PNG, or only the element `selector` finds (scrolled into view first)."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": False}
        if selector is not None:
            box = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                                "e.scrollIntoView({block: 'start'}); const r = e.getBoundingClientRect(); "
                                "return [r.x, r.y, r.width, r.height]; })()")
            params.update(clip={"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1},
                          captureBeyondViewport=True)
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()


class Chromium:
    """A headless Chromium with a throwaway profile; stopped (its whole process group) on exit."""

    def __init__(self, profile: Path, executable: str | None = None, size: tuple[int, int] = (1400, 1000)) -> None:
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise BrowserError("chromium is not installed (apt-get install chromium)")
        self.profile = profile
        self.size = size
        self.process: subprocess.Popen | None = None
        self.port = 0
        self._pages: list[Page] = []

    def __enter__(self) -> Chromium:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> None:
        self.profile.mkdir(parents=True, exist_ok=True)
        args = [self.executable, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0", f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]
        self._log = open(self.profile.parent / f"{self.profile.name}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.profile.parent / f"{self.profile.name}.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise BrowserError(f"chromium did not open its DevTools port:\n{log}")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])

    def page(self) -> Page:
        """The first tab (about:blank at start)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as reply:
            targets = json.load(reply)
        target = next(t for t in targets if t.get("type") == "page")
        page = Page(target["webSocketDebuggerUrl"])
        self._pages.append(page)
        return page

    def new_page(self) -> Page:
        """A new tab (about:blank), brought to the front so it renders."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as reply:
            target = json.load(reply)
        page = Page(target["webSocketDebuggerUrl"])
        self._pages.append(page)
        page.call("Page.bringToFront")
        return page

    def stop(self) -> None:
        for page in self._pages:
            page.close()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if self.process is not None:
            # helpers (zygote, renderers) share the group; make sure none outlives the browser
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if getattr(self, "_log", None):
            self._log.close()
