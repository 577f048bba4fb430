"""perf trace's exit status is read from the command's exit_group, not the first tid printed."""
from syspage.collect import _perf

from conftest import DATA


def test_a_thread_printed_first_is_not_taken_for_the_command():
    trace = DATA / "perf_trace_threads_thread_first.txt"
    first_tid = trace.read_text().splitlines()[0].split("/")[1].split()[0]
    assert first_tid == "16954"                      # a thread, not the command (16953)
    assert _perf.exit_status_from_trace(trace) == {"status": 0, "signal": None, "signal_name": None,
                                                   "source": "trace"}


def test_the_exec_tid_decides_when_present(tmp_path):
    trace = tmp_path / "t.txt"
    trace.write_text(
        "     0.010 ( 0.100 ms): sh/100 execve(filename: 0x1)                                  = 0\n"
        "     0.500 (         ): child/101 exit_group(error_code: 3)                           = ?\n"
        "     0.400 (         ): sh/100 exit_group(error_code: 7)                              = ?\n")
    assert _perf.exit_status_from_trace(trace)["status"] == 7


def test_no_exit_group_is_none(tmp_path):
    trace = tmp_path / "t.txt"
    trace.write_text("     0.010 ( 0.100 ms): sh/100 getpid()      = 100\n")
    assert _perf.exit_status_from_trace(trace) is None


def test_independent_getpid_count_survives_lost_perf_events(tmp_path):
    """The count collect's perf tests use (tests/test_collect_perf.py) on a real trace where perf
    lost both a [continued] line and a start: still exactly the 20,000 calls made."""
    import gzip

    from test_collect_perf import perf_getpids

    trace = tmp_path / "t.txt"
    trace.write_bytes(gzip.decompress((DATA / "perf_trace_linux_syspage-getpid-lost-continued.txt.gz").read_bytes()))
    assert len(perf_getpids(trace)) == 20000
