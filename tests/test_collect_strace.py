"""collect with strace, for real: programs with a known number of getpid calls, a shell pipeline,
threads, attach, meta.json, overhead, and every bad-input path (docs/collect.md)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter

import pytest

from syspage.collect import META_FORMAT, TracedCommandFailed, collect, read_meta
from syspage.errors import CollectError
from test_collect_programs import programs, python_getpid_cmd, strace_getpids  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")


def test_c_program_shows_exactly_n_getpid_calls(programs, tmp_path):
    info = collect("strace", tmp_path / "run", cmd=[str(programs["getpid_n"]), "250"])
    calls = strace_getpids(info.trace_path)
    assert len(calls) == 250
    # One process: getpid returns the same pid each time, and it is the traced command's.
    assert len({ret for _, ret in calls}) == 1
    assert info.meta["exit"] == {"status": 0, "signal": None, "signal_name": None, "source": "tracer"}
    assert info.trace_path.name == "trace.strace.txt" and info.format == "strace"


def test_python_program_shows_exactly_n_getpid_calls(tmp_path):
    info = collect("strace", tmp_path / "run", cmd=python_getpid_cmd(321))
    assert len(strace_getpids(info.trace_path)) == 321


def test_shell_pipeline_is_followed_into_every_process(programs, tmp_path):
    gp = programs["getpid_n"]
    info = collect("strace", tmp_path / "run", cmd=["/bin/sh", "-c", f"{gp} 30 | {gp} 70 | cat >/dev/null"])
    calls = strace_getpids(info.trace_path)
    per_process = Counter(ret for _, ret in calls)
    # Each getpid_n process made exactly its N calls, seeing its own pid (= strace's prefix);
    # the only other caller is the shell itself (dash asks for its pid once at start-up).
    execs = _execs(info.trace_path)
    gp_pids = {pid: int(argv.rsplit(" ", 1)[1]) for pid, argv in execs.items() if argv.startswith(f"{gp} ")}
    assert sorted(gp_pids.values()) == [30, 70]
    assert {pid: per_process[pid] for pid in gp_pids} == gp_pids
    assert set(per_process) - set(gp_pids) <= {pid for pid, argv in execs.items() if argv.startswith("/bin/sh")}
    assert all(prefix == ret for prefix, ret in calls)


def _execs(path) -> dict[int, str]:
    """pid -> "arg0 arg1 ..." of every execve in an strace -f -xx trace (finished or cut by another line)."""
    execs = {}
    for line in path.read_text().splitlines():
        match = re.match(r'^(\d+) +[\d.]+ execve\("[^"]*", \[(.*?)\], ', line)
        if match:
            args = re.findall(r'"((?:\\x[0-9a-f]{2})*)"', match.group(2))
            execs[int(match.group(1))] = " ".join(bytes.fromhex(a.replace("\\x", "")).decode() for a in args)
    return execs


def test_threads_are_followed_with_their_tids(programs, tmp_path):
    info = collect("strace", tmp_path / "run", cmd=[str(programs["threads"]), "4", "50"])
    calls = strace_getpids(info.trace_path)
    assert len(calls) == 200
    per_thread = Counter(prefix for prefix, _ in calls)
    assert sorted(per_thread.values()) == [50, 50, 50, 50]
    # getpid returns the thread group id, which is none of the four threads' ids.
    (pid,) = {ret for _, ret in calls}
    assert pid not in per_thread


def test_meta_json_records_machine_tool_date_and_command(programs, tmp_path):
    before = time.time_ns()
    info = collect("strace", tmp_path / "run", cmd=[str(programs["getpid_n"]), "5"])
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta == info.meta == read_meta(tmp_path / "run")
    assert meta["format"] == META_FORMAT == "collect-meta/1"
    assert meta["os"] == "linux"
    assert meta["machine"]["kernel"] == os.uname().release
    assert meta["machine"]["cpu_model"] and isinstance(meta["machine"]["mitigations"], dict)
    strace_v = subprocess.run(["strace", "-V"], capture_output=True, text=True).stdout.splitlines()[0]
    assert meta["tool"]["version_text"] == strace_v and meta["tool"]["version"] in strace_v
    assert meta["tool"]["argv"][:9] == [shutil.which("strace"), "-f", "-ttt", "-T", "-xx", "-s", "128", "-o",
                                        str(info.trace_path)]
    assert meta["tool"]["argv"][9:] == ["--", str(programs["getpid_n"]), "5"]
    assert meta["target"]["executable"] == str(programs["getpid_n"])
    # The date strace -ttt carries is within the recorded run.
    started = meta["started"]["epoch_ns"]
    assert before <= started <= meta["ended"]["epoch_ns"] <= time.time_ns()
    assert meta["started"]["utc"].endswith("Z")
    first_ts = float(re.search(r"\b\d{9,}\.\d{6}\b", info.trace_path.read_text()).group())
    assert abs(first_ts * 1e9 - started) < 5e9
    trace_bytes = info.trace_path.read_bytes()
    assert meta["trace"]["bytes"] == len(trace_bytes) and meta["trace"]["lines"] == trace_bytes.count(b"\n")
    assert meta["trace"]["format"] == "strace" and meta["error"] is None
    assert meta["overhead"] is None and "--overhead" in meta["overhead_skipped"]


def test_meta_records_elf_identity_of_the_traced_program(programs, tmp_path):
    info = collect("strace", tmp_path / "run", cmd=[str(programs["getpid_n"]), "1"])
    meta = info.meta
    try:
        from syspage.collect import elfinfo  # noqa: F401  (issue 9, written in parallel)
    except ImportError:
        assert meta["elf"] is None and "elfinfo" in meta["elf_error"]
        return
    readelf = subprocess.run(["readelf", "-n", str(programs["getpid_n"])], capture_output=True, text=True).stdout
    build_id = re.search(r"Build ID: ([0-9a-f]+)", readelf).group(1)
    assert meta["elf"]["build_id"] == build_id
    assert meta["elf"]["machine"] == "EM_X86_64" or os.uname().machine != "x86_64"


def test_script_command_records_its_interpreter(tmp_path):
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hello >/dev/null\n")
    script.chmod(0o755)
    info = collect("strace", tmp_path / "run", cmd=[str(script)])
    assert info.meta["target"]["interpreter"] == "/bin/sh"


def test_nonzero_exit_status_is_recorded_not_an_error(tmp_path):
    info = collect("strace", tmp_path / "run", cmd=["/bin/sh", "-c", "exit 3"])
    assert info.meta["exit"]["status"] == 3 and info.meta["error"] is None


def test_summary_is_appended_to_the_trace(programs, tmp_path):
    info = collect("strace", tmp_path / "run", cmd=[str(programs["getpid_n"]), "40"], summary=True)
    text = info.trace_path.read_text()
    assert "-C" in info.meta["tool"]["flags"] and info.meta["trace"]["summary_in_trace"] is True
    row = re.search(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+getpid$", text, re.M)
    assert row and int(row.group(1)) == 40
    assert re.search(r"^100\.00\s.*\stotal$", text, re.M)


def test_crashing_program_keeps_its_trace_and_says_so(tmp_path):
    with pytest.raises(TracedCommandFailed, match="killed by SIGSEGV") as caught:
        collect("strace", tmp_path / "run", cmd=["/bin/sh", "-c", "kill -SEGV $$"])
    meta = read_meta(tmp_path / "run")
    assert meta["exit"]["signal"] == 11 and meta["exit"]["signal_name"] == "SIGSEGV"
    assert "killed by SIGSEGV" in meta["error"]
    assert "+++ killed by SIGSEGV" in (tmp_path / "run" / "trace.strace.txt").read_text()
    assert caught.value.run.trace_path.exists()


def test_killed_program_keeps_its_trace(programs, tmp_path):
    gp = programs["getpid_n"]
    with pytest.raises(TracedCommandFailed, match="killed by SIGKILL"):
        collect("strace", tmp_path / "run", cmd=["/bin/sh", "-c", f"{gp} 10; kill -KILL $$"])
    trace = tmp_path / "run" / "trace.strace.txt"
    (gp_pid,) = [pid for pid, argv in _execs(trace).items() if argv.startswith(f"{gp} ")]
    assert Counter(ret for _, ret in strace_getpids(trace))[gp_pid] == 10
    assert "+++ killed by SIGKILL +++" in trace.read_text()


def test_command_not_found_is_one_clear_error_with_meta(tmp_path):
    with pytest.raises(CollectError, match=r"^no-such-command-xyz: command not found on PATH$"):
        collect("strace", tmp_path / "run", cmd=["no-such-command-xyz"])
    assert "command not found" in read_meta(tmp_path / "run")["error"]


def test_rundir_with_a_run_is_not_overwritten(programs, tmp_path):
    collect("strace", tmp_path / "run", cmd=[str(programs["getpid_n"]), "1"])
    with pytest.raises(CollectError, match="already holds a collect run"):
        collect("strace", tmp_path / "run", cmd=[str(programs["getpid_n"]), "1"])


def test_tool_of_another_platform_is_refused(tmp_path):
    with pytest.raises(CollectError, match=r"--tool ktrace: runs on freebsd.*this machine is linux"):
        collect("ktrace", tmp_path / "run", cmd=["true"])


def test_usage_errors(tmp_path):
    with pytest.raises(CollectError, match="either a command"):
        collect("strace", tmp_path / "a", cmd=None)
    with pytest.raises(CollectError, match="--duration"):
        collect("strace", tmp_path / "b", pid=os.getpid())
    with pytest.raises(CollectError, match="no such process"):
        collect("strace", tmp_path / "c", pid=2**22 + 12345, duration=1)


def test_attach_to_a_running_process_for_a_duration(tmp_path):
    loop = subprocess.Popen([sys.executable, "-c",
                             "import os, time\nwhile True:\n    os.getpid(); time.sleep(0.01)"])
    try:
        time.sleep(0.3)
        ticks = []
        info = collect("strace", tmp_path / "run", pid=loop.pid, duration=1.0,
                       progress=lambda done, total: ticks.append((done, total)))
        assert ticks and {total for _, total in ticks} == {1} and ticks[-1][0] <= 1
        calls = strace_getpids(info.trace_path)
        # About 100 calls in one second; the process keeps running after strace detached.
        assert 20 <= len(calls) <= 200 and {ret for _, ret in calls} == {loop.pid}
        assert loop.poll() is None
        meta = info.meta
        assert meta["target"]["mode"] == "attach" and meta["target"]["pid"] == loop.pid
        assert meta["exit"] is None and meta["tool"]["argv"][-2:] == ["-p", str(loop.pid)]
        assert 0.9 <= meta["wall_s"] < 10
        assert meta["target"]["executable"] == os.path.realpath(sys.executable)
    finally:
        loop.kill()
        loop.wait()


def test_overhead_is_measured_and_recorded(programs, tmp_path):
    info = collect("strace", tmp_path / "run", cmd=[str(programs["getpid_n"]), "20000"], overhead_reps=3)
    over = info.meta["overhead"]
    assert over["repetitions"] == 3 and len(over["untraced_s"]) == len(over["traced_s"]) == 3
    # 20,000 ptrace stops cost far more than 20,000 plain getpid calls (~10 ms in all).
    assert over["slowdown_median"] > 3
    assert over["slowdown_min"] <= over["slowdown_median"] <= over["slowdown_max"]
    # CPU time (wait4: strace + command) tells the same story, less disturbed by a busy machine.
    assert over["cpu_slowdown_median"] > 3 and len(over["traced_cpu_s"]) == 3
    assert over["tracer_startup_s"] and len(over["tracer_startup_s"]) == 3
    assert info.meta["overhead_skipped"] is None
    # The overhead runs' traces were temporary: only this run's files are in RUNDIR.
    assert sorted(p.name for p in info.rundir.iterdir()) == ["meta.json", "trace.strace.txt", "tracer.stderr.txt"]


def test_missing_tracer_is_one_line_exit_2(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}   # no strace on this PATH
    res = subprocess.run([sys.executable, "-m", "syspage", "collect", "--tool", "strace", "-o", str(tmp_path / "run"),
                          "--", "/bin/true"], capture_output=True, text=True, env=env)
    assert res.returncode == 2
    assert res.stderr == "syspage: error: strace: not found on PATH (install it, e.g. see tools/debian-packages.txt)\n"
    assert "not found on PATH" in read_meta(tmp_path / "run")["error"]


def test_cli_prints_rundir_and_trace(run_cli, programs, tmp_path):
    # No --tool: strace is the default on Linux.
    res = run_cli("collect", "-o", tmp_path / "run", "--", programs["getpid_n"], "7")
    assert res.returncode == 0, res.stderr
    assert "with strace" in res.stdout
    assert f"rundir: {tmp_path / 'run'}" in res.stdout
    assert f"trace:  {tmp_path / 'run' / 'trace.strace.txt'}" in res.stdout
    assert "exit status 0" in res.stdout
    assert len(strace_getpids(tmp_path / "run" / "trace.strace.txt")) == 7


def test_interrupted_collection_keeps_trace_and_meta(programs, tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) mid-trace."""
    script = (f"import sys\nfrom syspage.collect import collect\n"
              f"collect('strace', {str(tmp_path / 'run')!r}, cmd=['/bin/sh', '-c', "
              f"'{programs['getpid_n']} 5; sleep 30'])")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    trace = tmp_path / "run" / "trace.strace.txt"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not ("nanosleep" in (trace.read_text() if trace.exists() else "")):
        time.sleep(0.1)
    os.killpg(proc.pid, 2)
    _, err = proc.communicate(timeout=60)
    assert b"KeyboardInterrupt" in err
    meta = read_meta(tmp_path / "run")
    assert meta["error"].startswith("interrupted (SIGINT)")
    (gp_pid,) = [pid for pid, argv in _execs(trace).items() if argv.startswith(f"{programs['getpid_n']} ")]
    assert meta["trace"]["lines"] > 0 and Counter(ret for _, ret in strace_getpids(trace))[gp_pid] == 5


def test_cli_crash_is_one_error_line_exit_2(run_cli, tmp_path):
    res = run_cli("collect", "--tool", "strace", "-o", tmp_path / "run", "--", "/bin/sh", "-c", "kill -ABRT $$")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "killed by SIGABRT" in res.stderr
    assert f"trace:  {tmp_path / 'run' / 'trace.strace.txt'}" in res.stdout


def test_cli_refuses_a_used_rundir_before_it_says_it_traces(run_cli, tmp_path):
    first = run_cli("collect", "--tool", "strace", "-o", tmp_path / "run", "--", "/bin/true")
    assert first.returncode == 0, first.stderr
    again = run_cli("collect", "--tool", "strace", "-o", tmp_path / "run", "--", "/bin/true")
    assert again.returncode == 2
    assert again.stderr == f"syspage: error: {tmp_path / 'run'}: already holds a collect run (meta.json); choose another -o\n"
    assert "tracing" not in again.stdout
