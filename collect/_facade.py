"""The facade: choose one backend for this platform (psutil style), run it, write meta.json.

Every backend returns a Plan (collect/_common.py); this module is the only one that starts
the tracer, holds and releases a command, stops an attach, and records how it all ended.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from syspage.collect import _bpftrace, _dtrace, _ktrace, _perf, _strace, _truss, meta as _meta
from syspage.collect._common import SCRIPTS, Plan, Target, which
from syspage.errors import CollectError

BACKENDS = {
    "strace": _strace,
    "perf": _perf,
    "bpftrace": _bpftrace,
    "ktrace": _ktrace,
    "truss": _truss,
    "dtrace": _dtrace,
    "dtruss": _dtrace.dtruss,
}
# --tool's default: the first tool found on PATH, in this order of preference per OS.
PREFERENCE = {
    "linux": ("strace", "perf", "bpftrace"),
    "freebsd": ("ktrace", "truss", "dtrace"),
    "macos": ("dtruss", "dtrace"),
}
READY_TIMEOUT_S = 180      # bpftrace compiles its script before attaching: seconds on a busy machine
STOP_TIMEOUT_S = 30
_LOST = re.compile(r"(?:Lost|LOST) (\d+) events")


@dataclass
class RunInfo:
    """What collect() produced: the RUNDIR, the trace to parse, and the meta.json contents."""

    rundir: Path
    trace_path: Path
    format: str
    meta: dict

    @property
    def meta_path(self) -> Path:
        return self.rundir / _meta.META_FILE


class TracedCommandFailed(CollectError):
    """The traced command was killed by a signal (crash, kill): the trace is kept, see .run."""

    def __init__(self, message: str, run: RunInfo):
        super().__init__(message)
        self.run = run


def available_tools(os_name: str | None = None) -> list[str]:
    """Tools for this OS that are on PATH, best first."""
    os_name = os_name or _meta.os_name()
    return [t for t in PREFERENCE.get(os_name, ()) if shutil.which(BACKENDS[t].EXECUTABLE)]


def default_tool(os_name: str | None = None) -> str:
    os_name = os_name or _meta.os_name()
    tools = available_tools(os_name)
    if not tools:
        wanted = ", ".join(PREFERENCE.get(os_name, ())) or "none known"
        raise CollectError(f"no tracer found on PATH for {os_name} (looked for: {wanted})")
    return tools[0]


def ensure_new_rundir(rundir) -> None:
    """Refuse a RUNDIR that already holds a run: its trace and meta.json would be overwritten."""
    if (Path(rundir) / _meta.META_FILE).exists():
        raise CollectError(f"{rundir}: already holds a collect run (meta.json); choose another -o")


def collect(tool: str | None, rundir, cmd=None, pid: int | None = None, duration: float | None = None,
            progress=None, summary: bool = False, overhead_reps: int = 0,
            stdout=None, stdin=None) -> RunInfo:
    """Trace ``cmd`` (a list of strings) or attach to ``pid`` for ``duration`` seconds.

    Writes the raw trace and meta.json into ``rundir`` and returns a RunInfo. ``stdout`` /
    ``stdin`` go to the traced command (default: inherited). Raises CollectError with one line
    when the tracer is missing or denied, the command cannot be found, or the command was
    killed by a signal (TracedCommandFailed, whose .run has the kept trace); meta.json is
    written in every case once RUNDIR exists.
    """
    target = _target(cmd, pid, duration)
    os_name = _meta.os_name()
    tool = tool or default_tool(os_name)
    if tool not in BACKENDS:
        raise CollectError(f"--tool {tool}: unknown tracer (known: {', '.join(BACKENDS)})")
    backend = BACKENDS[tool]
    if os_name not in backend.PLATFORMS:
        raise CollectError(f"--tool {tool}: runs on {', '.join(backend.PLATFORMS)}, this machine is {os_name}"
                           + (f" (here: {', '.join(PREFERENCE.get(os_name, ()))})" if os_name in PREFERENCE else ""))
    rundir = Path(rundir)
    ensure_new_rundir(rundir)
    rundir.mkdir(parents=True, exist_ok=True)

    meta = _meta.new(tool, target, rundir)
    info = RunInfo(rundir=rundir, trace_path=rundir / backend.TRACE_FILE, format=backend.FORMAT, meta=meta)
    try:
        _collect_into(meta, backend, target, rundir, info, summary, overhead_reps, progress, stdout, stdin)
    except CollectError as exc:
        meta["error"] = str(exc)
        _finish_trace_facts(meta, info)
        _meta.write(rundir, meta)
        raise
    except KeyboardInterrupt:
        # Ctrl-C reaches the tracer and the command too; keep what was traced, say so.
        meta["error"] = "interrupted (SIGINT) before the command ended; the trace up to then is kept"
        _finish_trace_facts(meta, info)
        _meta.write(rundir, meta)
        raise
    _meta.write(rundir, meta)
    if meta["exit"] and meta["exit"].get("signal") is not None:
        message = (f"traced command was {_meta.describe_exit(meta['exit'])}; the trace up to then is kept "
                   f"in {info.trace_path}")
        meta["error"] = message
        _meta.write(rundir, meta)
        raise TracedCommandFailed(message, info)
    return info


def _target(cmd, pid, duration) -> Target:
    if (cmd is None or len(cmd) == 0) == (pid is None):
        raise CollectError("give either a command (-- CMD ARGS) or -p PID, not both or neither")
    if pid is not None:
        if duration is None or duration <= 0:
            raise CollectError(f"-p {pid}: --duration S (seconds, > 0) is required when attaching")
        return Target(pid=int(pid), duration_s=float(duration))
    if duration is not None:
        raise CollectError("--duration applies to -p PID only; a command is traced until it exits")
    return Target(argv=tuple(str(a) for a in cmd))


def _resolve_executable(target: Target) -> str:
    if target.mode == "attach":
        try:
            os.kill(target.pid, 0)
        except ProcessLookupError:
            raise CollectError(f"-p {target.pid}: no such process") from None
        except PermissionError:
            raise CollectError(f"-p {target.pid}: not permitted to trace this process (another user's)") from None
        exe = Path(f"/proc/{target.pid}/exe")
        try:
            return os.readlink(exe)
        except OSError:
            return None
    name = target.argv[0]
    found = shutil.which(name)
    if found is None:
        where = "not found" if "/" in name else "not found on PATH"
        raise CollectError(f"{name}: command {where}")
    return os.path.abspath(found)


def _collect_into(meta, backend, target, rundir, info, summary, overhead_reps, progress, stdout, stdin):
    meta["tool"]["path"] = exe = which(backend.EXECUTABLE)
    meta["tool"]["version"], meta["tool"]["version_text"] = backend.version(exe)
    meta["target"]["executable"] = executable = _resolve_executable(target)
    meta["target"]["interpreter"] = _meta.script_interpreter(executable)
    meta["elf"], meta["elf_error"] = _meta.elf_identity(executable)
    backend.check(exe)
    plan = backend.plan(exe, rundir, target, summary)
    meta["tool"]["argv"] = plan.argv
    meta["tool"]["flags"] = plan.flags
    meta["tool"]["script"] = plan.script
    meta["extra_files"] = list(plan.extra_files) + [
        {"file": _meta.STDERR_FILE, "role": "the tracer's stderr (and the traced command's, which it inherits)"}]

    meta["started"] = _meta.wall_clock()
    result = _run(plan, target, rundir, rundir / _meta.STDERR_FILE, progress, stdout, stdin)
    meta["ended"] = _meta.wall_clock()
    meta["wall_s"] = (meta["ended"]["epoch_ns"] - meta["started"]["epoch_ns"]) / 1e9
    meta["tool"]["argv"] = result.argv
    if target.mode == "command" and plan.launch == "release":
        meta["target"]["pid"] = result.root_pid
    tail = _meta.stderr_tail(rundir / _meta.STDERR_FILE)
    meta["tracer_exit"] = {"returncode": result.returncode, "stderr_tail": tail}

    if plan.postprocess is not None:
        plan.postprocess(rundir)
    _finish_trace_facts(meta, info, plan)
    if meta["trace"] is None:
        raise CollectError(f"{backend.NAME} wrote no trace ({info.trace_path} missing); "
                           f"it said: {_last_line(tail) or 'nothing'}")
    meta["exit"] = _exit_status(plan, target, result, info.trace_path)
    if target.mode == "command" and meta["exit"] is None and plan.exit_from == "trace":
        raise CollectError(f"{info.trace_path}: no exit of the command in the trace (killed by a signal, "
                           f"which {backend.NAME} does not record, or {backend.NAME} failed: "
                           f"{_last_line(tail) or 'it said nothing'}); the trace is kept")
    if target.mode == "command" and meta["exit"] is None and plan.exit_from != "unknown":
        raise CollectError(f"{backend.NAME} failed (exit {result.returncode}) before the command ended: "
                           f"{_last_line(tail) or 'no message'}; see {rundir / _meta.STDERR_FILE}")

    if overhead_reps > 0:
        if target.mode == "attach":
            meta["overhead_skipped"] = "attach mode: the running process cannot be re-run untraced"
        else:
            from syspage.collect import overhead
            meta["overhead"] = overhead.measure(backend, exe, target, summary, overhead_reps, progress)
            meta["overhead_skipped"] = None


def _finish_trace_facts(meta, info, plan: Plan | None = None):
    path = info.trace_path
    if not path.exists():
        return
    facts = _meta.file_facts(path)
    in_stderr = _LOST.findall((meta.get("tracer_exit") or {}).get("stderr_tail") or "")
    if in_stderr:
        facts["lost_events"] = (facts["lost_events"] or 0) + sum(int(n) for n in in_stderr)
    meta["trace"] = {"file": path.name, "format": info.format, **facts,
                     "summary_in_trace": bool(plan and plan.summary_in_trace)}


def _exit_status(plan: Plan, target: Target, result, trace_path: Path) -> dict | None:
    if target.mode == "attach":
        return None
    from_trace = plan.exit_from_trace(trace_path) if plan.exit_from_trace else None
    if plan.exit_from == "tracer":
        if plan.exit_from_trace is not None and from_trace is None:
            return None        # the command never ended in the trace: the tracer failed
        return _meta.exit_info(result.returncode, "tracer")
    if plan.exit_from == "launcher":
        return _meta.exit_info(result.launcher_returncode, "waitpid")
    if plan.exit_from == "trace":
        return from_trace
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


@dataclass
class _Result:
    argv: list[str]
    returncode: int | None
    launcher_returncode: int | None = None
    root_pid: int | None = None
    workload_s: float | None = None    # start (or release) of the command to its end
    cpu_s: float | None = None         # user+system CPU of the waited process and its reaped descendants


def _run(plan: Plan, target: Target, rundir: Path, stderr_path: Path, progress, stdout, stdin) -> _Result:
    """Run one Plan to the end; the trace lands in rundir / plan.trace_file."""
    env = {**os.environ, **plan.env}
    trace_path = rundir / plan.trace_file
    with open(stderr_path, "wb") as err:
        if plan.launch == "release":
            return _run_released(plan, target, trace_path, err, env, progress, stdout, stdin)
        out = stdout
        errf = err
        trace_fh = None
        if plan.trace_stream in ("stdout", "stderr"):
            trace_fh = open(trace_path, "wb")
            if plan.trace_stream == "stdout":
                out = trace_fh
            else:
                errf = trace_fh
        try:
            started = time.perf_counter()
            cpu = None
            try:
                proc = subprocess.Popen(plan.argv, stdout=out, stderr=errf, stdin=stdin, env=env)
            except OSError as exc:
                raise CollectError(f"{plan.argv[0]}: cannot start: {exc.strerror or exc}") from None
            try:
                if target.mode == "attach":
                    if plan.ready_text:
                        # The duration counts from when the tracer is attached (bpftrace compiles first).
                        _wait_ready(proc, trace_path, plan.ready_text, progress)
                        started = time.perf_counter()
                    _wait_attached(proc, target, plan, progress)
                else:
                    cpu = _wait(proc, progress)
            except BaseException:
                if proc.poll() is None:
                    _stop(proc, plan)      # detach and flush what was traced so far
                raise
            elapsed = time.perf_counter() - started
        finally:
            if trace_fh:
                trace_fh.close()
    return _Result(argv=plan.argv, returncode=proc.returncode, workload_s=elapsed,
                   cpu_s=cpu if target.mode == "command" else None)


def _wait(proc, progress, total: float = 0) -> float:
    """Block in wait4 (exact end time); tick the progress callback from a helper thread.

    Returns the user+system CPU seconds of proc and of the descendants it reaped (wait4(2)
    reports both), e.g. strace plus the traced command.
    """
    stop = threading.Event()
    ticker = None
    if progress is not None:
        started = time.monotonic()

        def tick():
            while not stop.wait(0.2):
                progress(int(time.monotonic() - started), int(total))

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        stop.set()
        if ticker is not None:
            ticker.join()
    return usage.ru_utime + usage.ru_stime


def _wait_attached(proc, target: Target, plan: Plan, progress):
    """Stay attached for the duration (or until the target exits), then stop the tracer."""
    deadline = time.monotonic() + target.duration_s
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() < deadline:
        if not _alive(target.pid):
            break
        if progress:
            progress(int(time.monotonic() - started), int(target.duration_s))
        time.sleep(0.1)
    if proc.poll() is None:
        _stop(proc, plan)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): look at its state where /proc exists.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _stop(proc, plan: Plan):
    """Detach: the tool's own stop command (ktrace -c), else SIGINT (strace, perf, bpftrace and
    dtrace all detach and flush on SIGINT); SIGKILL only if it does not end in time."""
    if plan.stop_argv:
        subprocess.run(plan.stop_argv, capture_output=True)
    else:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run_released(plan: Plan, target: Target, trace_path: Path, err, env, progress, stdout, stdin) -> _Result:
    """Hold the command on a FIFO, attach the tracer to its pid, release it once the tracer is ready."""
    holder = SCRIPTS / "hold-until-released.sh"
    with tempfile.TemporaryDirectory(prefix="syspage-collect-") as tmp:
        fifo = Path(tmp) / "release"
        os.mkfifo(fifo)
        held = subprocess.Popen(["/bin/sh", str(holder), str(fifo), *target.argv], stdout=stdout, stdin=stdin,
                                stderr=err)
        argv = [a.replace("{ROOT_PID}", str(held.pid)) for a in plan.argv]
        tracer = None
        try:
            with open(trace_path, "wb") as trace_fh:
                tracer = subprocess.Popen(argv, stdout=trace_fh, stderr=err, stdin=subprocess.DEVNULL, env=env)
                _wait_ready(tracer, trace_path, plan.ready_text, progress)
                started = time.perf_counter()
                with open(fifo, "w") as release:
                    release.write("go\n")
                cpu = _wait(held, progress)
                elapsed = time.perf_counter() - started
                # Let the tracer drain its ring buffer, then stop it (bpftrace flushes on SIGINT).
                time.sleep(0.5)
                _stop(tracer, plan)
        except BaseException:
            _kill_held(held, fifo)
            if tracer is not None and tracer.poll() is None:
                tracer.kill()
                tracer.wait()
            raise
    return _Result(argv=argv, returncode=tracer.returncode, launcher_returncode=held.returncode,
                    root_pid=held.pid, workload_s=elapsed, cpu_s=cpu)


def _wait_ready(tracer, trace_path: Path, ready_text: str, progress):
    started = time.monotonic()
    while True:
        if tracer.poll() is not None:
            said = _last_line(_meta.stderr_tail(trace_path.parent / _meta.STDERR_FILE))
            raise CollectError(f"{tracer.args[0]} exited ({tracer.returncode}) before it was ready to trace: "
                               f"{said or 'no message'}")
        try:
            with open(trace_path, "rb") as fh:
                if ready_text.encode() in fh.read(4096):
                    return
        except OSError:
            pass
        if time.monotonic() - started > READY_TIMEOUT_S:
            raise CollectError(f"{tracer.args[0]} did not get ready within {READY_TIMEOUT_S} s")
        if progress:
            progress(int(time.monotonic() - started), 0)
        time.sleep(0.1)


def _kill_held(held, fifo: Path):
    """The command must not run untraced: kill it while it still waits on the FIFO."""
    if held.poll() is None:
        held.kill()
        held.wait()
