"""The collect scripts (shellcheck, the bpftrace name table) and the backends that cannot run here.

ktrace/kdump, truss, dtrace and dtruss have no FreeBSD or macOS machine in this environment:
their command lines are checked against what their man pages specify (collect/_ktrace.py,
_truss.py, _dtrace.py cite them), and their exit-status readers against a real truss trace.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from syspage.collect import BACKENDS
from syspage.collect._common import SCRIPTS, Target
from syspage.errors import CollectError

DATA = Path(__file__).resolve().parent / "data"
COMMAND = Target(argv=("/bin/echo", "hi"))
ATTACH = Target(pid=4242, duration_s=2.0)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shell_scripts_pass_shellcheck():
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert {p.name for p in scripts} >= {"hold-until-released.sh", "gen-syscalls-bt.sh"}
    res = subprocess.run(["shellcheck", "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def test_hold_until_released_keeps_the_pid_and_runs_the_command(tmp_path):
    fifo = tmp_path / "go"
    import os
    os.mkfifo(fifo)
    held = subprocess.Popen(["/bin/sh", str(SCRIPTS / "hold-until-released.sh"), str(fifo),
                             "/bin/sh", "-c", 'echo "$$"'], stdout=subprocess.PIPE, text=True)
    assert held.poll() is None          # still held
    with open(fifo, "w") as release:
        release.write("go\n")
    out, _ = held.communicate(timeout=10)
    assert held.returncode == 0 and int(out) == held.pid


def test_bpftrace_name_table_is_the_kernels_x86_64_table():
    text = (SCRIPTS / "syscalls.bt").read_text()
    table = dict((int(n), name) for n, name in re.findall(r'@name\[(\d+)\] = "(\w+)";', text))
    # Spot checks against arch/x86/entry/syscalls/syscall_64.tbl (linux 6.1).
    assert table[0] == "read" and table[39] == "getpid" and table[110] == "getppid"
    assert table[170] == "sethostname" and table[262] == "newfstatat" and table[334] == "rseq"
    assert len(table) > 350 and 512 not in table     # no x32 rows


def _plan(tool, target=COMMAND, summary=False, tmp_path=Path("/rundir")):
    return BACKENDS[tool].plan(f"/usr/bin/{BACKENDS[tool].EXECUTABLE}", tmp_path, target, summary)


def test_ktrace_plan_follows_ktrace1_and_kdump1():
    plan = _plan("ktrace")
    # ktrace(1): -i inherit to children, -t trace points (c n s t u y: calls, namei, signals,
    # structs, utrace, sysctl), -f file, then the command.
    assert plan.argv == ["/usr/bin/ktrace", "-i", "-t", "cnstuy", "-f", "/rundir/ktrace.out", "/bin/echo", "hi"]
    assert plan.format == "kdump" and plan.trace_file == "trace.kdump.txt"
    assert plan.flags[-3:] == ["kdump", "-H", "-T"]      # kdump(1): thread ids, absolute timestamps
    attach = _plan("ktrace", ATTACH)
    assert attach.argv[-2:] == ["-p", "4242"] and attach.stop_argv == ["/usr/bin/ktrace", "-c", "-f",
                                                                        "/rundir/ktrace.out"]


def test_truss_plan_and_exit_status_from_a_real_truss_trace():
    plan = _plan("truss")
    assert plan.argv == ["/usr/bin/truss", "-f", "-H", "-d", "-s", "128", "-o", "/rundir/trace.truss.txt",
                         "/bin/echo", "hi"]
    with pytest.raises(CollectError, match="truss -c"):
        _plan("truss", summary=True)
    # Real FreeBSD truss output (anton2920/rant, see its .source.txt) ends "process killed, signal = 2".
    status = BACKENDS["truss"].exit_status_from_trace(DATA / "truss_freebsd_anton2920-rant.txt")
    assert status == {"status": None, "signal": 2, "signal_name": None, "source": "trace"}


def test_dtrace_plan_runs_our_d_script(tmp_path):
    plan = _plan("dtrace")
    assert plan.argv[:3] == ["/usr/bin/dtrace", "-q", "-s"] and plan.argv[3].endswith("collect/scripts/syscalls.d")
    assert plan.argv[4:] == ["-o", "/rundir/trace.dtrace.txt", "-c", "/bin/echo hi"]
    assert _plan("dtrace", ATTACH).argv[-2:] == ["-p", "4242"]
    with pytest.raises(CollectError, match="blanks"):
        _plan("dtrace", Target(argv=("/bin/echo", "two words")))
    # The script prints sp1 lines and the sp1-exit header the exit reader looks for.
    script = (SCRIPTS / "syscalls.d").read_text()
    assert 'printf("sp1\\t%d\\t%d\\t%d\\t%s\\t%s\\t%d\\t%d\\t%d\\t0x%x,0x%x,0x%x,0x%x,0x%x,0x%x\\n"' in script
    assert 'printf("sp1-exit\\t%d\\t%d\\t%d\\n"' in script and "progenyof($target)" in script
    trace = tmp_path / "t.txt"
    trace.write_text("sp1-clock\tepoch\nsp1-start\t100\nsp1-exit\t101\t5\t7\nsp1-exit\t100\t3\t4\n")
    assert BACKENDS["dtrace"].exit_status_from_trace(trace)["status"] == 4


def test_dtruss_plan_sends_stderr_to_the_trace():
    plan = _plan("dtruss")
    assert plan.argv == ["/usr/bin/dtruss", "-f", "-d", "-e", "/bin/echo", "hi"]
    assert plan.trace_stream == "stderr" and plan.format == "dtruss"


def test_bpftrace_plan_holds_the_command_until_attached():
    plan = _plan("bpftrace")
    assert plan.launch == "release" and plan.argv[-1] == "{ROOT_PID}" and plan.trace_stream == "stdout"
    assert plan.argv[1:4] == ["-q", "-B", "line"]


def test_lost_event_reports_are_counted(tmp_path):
    from syspage.collect import meta
    trace = tmp_path / "t.txt"
    # The two tracers' own messages: perf trace "LOST %lu events!" and bpftrace "Lost %d events".
    trace.write_bytes(b"sp1\t1\t2\t2\tx\tread\t0\t0\t5\t0x0,0x0,0x0,0x0,0x0,0x0\nLOST 12 events!\n"
                      b"Lost 3 events\n" + b"x" * (1 << 20) + b"\nLOST 1 events!\n")
    facts = meta.file_facts(trace)
    assert facts["lost_events"] == 16 and facts["lines"] == 5
    trace.write_bytes(b"no loss here\n")
    assert meta.file_facts(trace)["lost_events"] is None
