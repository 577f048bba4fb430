"""Real programs with a known syscall behaviour, compiled once per test session, for the
collect tests (imported by tests/test_collect_*.py), and checks that they behave as claimed.

glibc has not cached getpid() since 2.25 (https://sourceware.org/glibc/wiki/Release/2.25,
"getpid ... no longer cached"), so each call is one system call; CPython's os.getpid() calls
getpid() each time too. The strace counts below verify both on this machine.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GETPID_N_C = r"""
#include <stdlib.h>
#include <unistd.h>
/* getpid_n N: call getpid() exactly N times, exit with status 0. */
int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 0;
    for (long i = 0; i < n; i++)
        getpid();
    return 0;
}
"""

THREADS_C = r"""
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
/* threads T M: T threads each call getpid() exactly M times; main calls it never. */
static long per_thread;
static void *work(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_thread; i++)
        getpid();
    return NULL;
}
int main(int argc, char **argv)
{
    int threads = atoi(argv[1]);
    per_thread = atol(argv[2]);
    pthread_t tids[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&tids[i], NULL, work, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    return 0;
}
"""

# strace -f -ttt -T, one call on one line, or cut in two by another thread's line
# (strace(1) "unfinished ... resumed"):
#   "[PID ]1795847928.059434 getpid() = 123 <0.000011>"
#   "PID 1795847928.059434 getpid( <unfinished ...>" ... "PID 1795847928.059501 <... getpid resumed>) = 123 <0.000070>"
_PID_TS = r"^(?:(?P<pid>\d+) +)?\d+\.\d{6} "
STRACE_GETPID = re.compile(_PID_TS + r"getpid\(\) += (?P<ret>\d+) <\d+\.\d{6}>$")
STRACE_GETPID_START = re.compile(_PID_TS + r"getpid\( <unfinished \.\.\.>$")
STRACE_GETPID_END = re.compile(_PID_TS + r"<\.\.\. getpid resumed>\) += (?P<ret>\d+) <\d+\.\d{6}>$")

@pytest.fixture(scope="session")
def programs(tmp_path_factory) -> dict[str, Path]:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (tools/debian-packages.txt lists it)")
    out = tmp_path_factory.mktemp("programs")
    built = {}
    for name, source, extra in (("getpid_n", GETPID_N_C, []), ("threads", THREADS_C, ["-pthread"])):
        src = out / f"{name}.c"
        src.write_text(source)
        subprocess.run([gcc, "-O2", "-Wall", "-o", str(out / name), str(src), *extra], check=True)
        built[name] = out / name
    return built


def python_getpid_cmd(n: int) -> list[str]:
    return [sys.executable, "-c", f"import os\nfor _ in range({n}): os.getpid()"]


def strace_getpids(path: Path) -> list[tuple[int | None, int]]:
    """(tid prefix, return value) of every getpid call in an strace -f -ttt -T trace.

    Every line that mentions getpid must match one of the three strict shapes; an
    unfinished call must be resumed by the same thread.
    """
    found = []
    pending: dict[int | None, int] = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if "getpid" not in line:
            continue
        if (match := STRACE_GETPID.match(line)):
            found.append((_pid(match), int(match["ret"])))
        elif (match := STRACE_GETPID_START.match(line)):
            pending[_pid(match)] = pending.get(_pid(match), 0) + 1
        elif (match := STRACE_GETPID_END.match(line)):
            assert pending.get(_pid(match)), f"resumed without unfinished: {line!r}"
            pending[_pid(match)] -= 1
            found.append((_pid(match), int(match["ret"])))
        else:
            raise AssertionError(f"getpid line in an unexpected shape: {line!r}")
    assert not any(pending.values()), f"getpid calls never resumed: {pending}"
    return found


def _pid(match) -> int | None:
    return int(match["pid"]) if match["pid"] else None


def test_programs_call_getpid_exactly_n_times(programs, tmp_path):
    """Untraced self-check of the test programs with plain strace -f -c."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    for argv, expected in (([str(programs["getpid_n"]), "123"], 123),
                           ([str(programs["threads"]), "3", "41"], 123),
                           (python_getpid_cmd(123), 123)):
        out = tmp_path / "count.txt"
        subprocess.run(["strace", "-f", "-ttt", "-T", "-qq", "-e", "trace=getpid", "-o", str(out), *argv],
                       check=True)
        assert len(strace_getpids(out)) == expected, argv
