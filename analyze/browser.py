"""Open a report in a real headless Chromium and report what the browser saw.

Used by the tests and the benchmark to check the report for real: every figure drawn, no
console error, no network request, how long the page took to open, and a screenshot.
It talks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (fd 3 carries our
commands, fd 4 Chromium's replies, each message JSON ending in NUL), so it needs no
WebSocket library and no open port.
Protocol: https://chromedevtools.github.io/devtools-protocol/
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from syspage.errors import AnalyzeError

# Every network request must fail fast and be visible: send all traffic to a closed port.
_REFUSING_PROXY = "127.0.0.1:9"
_LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:", "chrome:", "devtools:")

# Counts the figure divs and those plotly has drawn (a drawn plot has an <svg class="main-svg">).
_FIGURES_JS = """(() => {
  const divs = [...document.querySelectorAll('.plotly-graph-div')];
  return JSON.stringify({
    ids: divs.map(d => d.id),
    drawn: divs.filter(d => d.querySelector('svg.main-svg')).map(d => d.id),
    sections: [...document.querySelectorAll('section[id], header[id]')].map(s => s.id),
  });
})()"""


def find_chromium() -> str | None:
    """The Chromium binary (Debian's launcher script, or chromium-browser / google-chrome)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    url: str
    open_s: float                       # navigate -> load event -> every figure drawn
    figure_ids: list[str]
    drawn_ids: list[str]
    section_ids: list[str]
    console_errors: list[str] = field(default_factory=list)
    network_requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    # Chromium's own counters for the page (Performance.getMetrics), less sensitive to other
    # processes on the machine than open_s: CPU time of the renderer's main thread, and the
    # time spent running script (plotly.js included).
    main_thread_cpu_s: float | None = None
    script_s: float | None = None

    @property
    def all_drawn(self) -> bool:
        return bool(self.figure_ids) and sorted(self.figure_ids) == sorted(self.drawn_ids)


class _Pipe:
    """One Chromium process and its CDP pipe."""

    def __init__(self, binary: str, profile: str):
        ours_read, chrome_write = os.pipe()
        chrome_read, ours_write = os.pipe()

        def child_fds():
            # dup first: dup2(fd, fd) would keep the close-on-exec flag when a pipe already is 3 or 4.
            a, b = os.dup(chrome_read), os.dup(chrome_write)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.stderr = tempfile.TemporaryFile()
        args = [binary, "--headless=new", "--remote-debugging-pipe", f"--user-data-dir={profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--mute-audio", f"--proxy-server={_REFUSING_PROXY}",
                "--proxy-bypass-list=<-loopback>", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root
        self.proc = subprocess.Popen(args, preexec_fn=child_fds, close_fds=False,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr)
        os.close(chrome_read)
        os.close(chrome_write)
        self.rfd, self.wfd = ours_read, ours_write
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise AnalyzeError(f"chromium: {method} failed: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            ev = self._read(deadline)
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read(deadline))
        except TimeoutError:
            pass

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.rfd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.rfd, 1 << 20)
            if not chunk:
                self.stderr.seek(0)
                tail = self.stderr.read()[-500:].decode(errors="replace")
                raise AnalyzeError(f"chromium exited (status {self.proc.poll()}): {tail}")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # already gone: nothing left to close
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.rfd)
        os.close(self.wfd)
        self.stderr.close()


def open_report(path: str | Path, screenshot: str | Path | None = None, timeout: float = 60,
                width: int = 1280, height: int = 900, figure_timeout: float | None = None) -> PageCheck:
    """Load the HTML file in headless Chromium, wait until every figure is drawn, and check it.

    ``timeout`` bounds the load; ``figure_timeout`` (default: ``timeout``) how long to wait
    after the load event for the figures to be drawn.
    """
    binary = find_chromium()
    if binary is None:
        raise AnalyzeError("chromium not found (Debian: apt-get install chromium)")
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="syspage-chromium-") as profile:
        pipe = _Pipe(binary, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            pipe.send("Performance.enable", {"timeDomain": "threadTicks"}, session=session)
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
            pipe.events.clear()
            t0 = time.perf_counter()
            pipe.send("Page.navigate", {"url": url}, session=session)
            pipe.wait_for("Page.loadEventFired", timeout)
            state = {}
            deadline = time.monotonic() + (timeout if figure_timeout is None else figure_timeout)
            while True:
                res = pipe.send("Runtime.evaluate", {"expression": _FIGURES_JS, "returnByValue": True}, session=session)
                state = json.loads(res["result"]["value"])
                if sorted(state["ids"]) == sorted(state["drawn"]) or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            open_s = time.perf_counter() - t0
            metrics = {m["name"]: m["value"] for m in pipe.send("Performance.getMetrics", session=session)["metrics"]}
            pipe.drain(0.3)  # late console messages and requests
            shot = None
            if screenshot is not None:
                data = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                 session=session)["data"]
                shot = Path(screenshot)
                shot.write_bytes(base64.b64decode(data))
            errors, requests = _problems(pipe.events)
            return PageCheck(url=url, open_s=open_s, figure_ids=state.get("ids", []), drawn_ids=state.get("drawn", []),
                             section_ids=state.get("sections", []), console_errors=errors,
                             network_requests=requests, screenshot=shot,
                             main_thread_cpu_s=metrics.get("ThreadTime"), script_s=metrics.get("ScriptDuration"))
        finally:
            pipe.close()


def _problems(events: list[dict]) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    requests: list[str] = []
    for ev in events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            req_url = params.get("request", {}).get("url", "")
            if not req_url.startswith(_LOCAL_SCHEMES):
                requests.append(req_url)
    return errors, requests
