"""The catalog classifies real call shapes the way docs/catalog.md says."""
import polars as pl
import pytest

from syspage import catalog, schema


def _events(rows):
    return schema.EVENTS.conform(pl.DataFrame(rows, schema_overrides={"pid": pl.Int64}))


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


@pytest.mark.parametrize("os_, syscall, args, sysctl, want_class, want_page, want_access", [
    ("linux", "getpid", "", None, "getpid", "proc_ro", "read"),
    ("linux", "getuid32", "", None, "getuid", "proc_ro", "read"),
    ("linux", "uname", "{sysname=\"Linux\", ...}", None, "uname", "sys_ro", "read"),
    ("linux", "prctl", "PR_SET_NAME, \"worker\"", None, "prctl(PR_SET_NAME)", "proc_rw", "write"),
    ("linux", "prctl", "PR_GET_NAME, 0x7ffd", None, "prctl(PR_GET_NAME)", "proc_rw", "read"),
    ("linux", "prctl", "PR_SET_PDEATHSIG, SIGKILL", None, None, None, None),
    ("linux", "read", "3, \"\", 4096", None, None, None, None),
    ("linux", "issetugid", "", None, None, None, None),          # not a Linux syscall name
    ("freebsd", "issetugid", "", None, "issetugid", "proc_ro", "read"),
    ("linux", "sethostname", "\"x\", 1", None, "sethostname", "sys_ro", "follow"),
    ("linux", "clone", "child_stack=NULL", None, "clone", "proc_ro", "follow"),
    # kdump: __sysctl normalized to sysctl, the name from its SCTL record
    ("freebsd", "sysctl", "0x7fffffffe890,0x2,0x7fffffffe8a0,0x7fffffffe888,0,0", "kern.hostname",
     "sysctl kern.hostname", "sys_ro", "read"),
    ("freebsd", "sysctl", "0x7fff,0x4,0,0,0x8000,0x20", "kern.proc.args",
     "sysctl kern.proc.args (write)", "proc_rw", "write"),
    ("freebsd", "sysctl", "0x7fff,0x4,0x8000,0x7ff0,0,0", "kern.proc.args",
     "sysctl kern.proc.args", "proc_rw", "read"),
    ("freebsd", "sysctl", "0x7fff,0x2,0,0,0x8000,0x9", "kern.hostname",
     "sysctl kern.hostname (write)", "sys_ro", "follow"),
    ("freebsd", "sysctl", "0x7fff,0x2,0x7ff,0x7f0,0x30d68a18b77,0x20", "sysctl.name2oid", None, None, None),
    ("freebsd", "sysctl", "0x7fff,0x2,0x7ff,0x7f0,0x1,0x4", "kern.ostype", None, None, None),  # write to read-only
    # OpenBSD kdump decodes the MIB into the first argument; newp is the 4th
    ("openbsd", "sysctl", "1.10<kern.hostname>,0x7f7f,0x7f7e,0,0", "kern.hostname",
     "sysctl kern.hostname", "sys_ro", "read"),
    # macOS dtruss prints the MIB as a bracketed list with commas of its own
    ("macos", "sysctl", "[CTL_KERN, 10, 0, 0, 0, 0] (2), 0x7FF7B4DCE990, 0x7FF7B4DCE988, 0x0, 0x0", "kern.hostname",
     "sysctl kern.hostname", "sys_ro", "read"),
    ("macos", "sysctl", "[CTL_KERN, 10, 0, 0, 0, 0] (2), 0x0, 0x0, 0x7FF7B4DCE990, 0x9", "kern.hostname",
     "sysctl kern.hostname (write)", "sys_ro", "follow"),
])
def test_classify(cat, os_, syscall, args, sysctl, want_class, want_page, want_access):
    df = _events({"os": [os_], "kind": ["call"], "syscall": [syscall], "args_raw": [args], "sysctl_name": [sysctl]})
    out = cat.with_call_class(cat.classify(df))
    assert out["call_class"][0] == want_class
    assert out["page_class"][0] == want_page
    assert out["page_access"][0] == want_access


def test_signals_are_never_classified(cat):
    df = _events({"os": ["linux"], "kind": ["signal"], "syscall": ["getpid"]})
    assert cat.classify(df)["page_class"][0] is None


def test_every_issue_name_is_in_the_catalog(cat):
    classes = set(cat.by_class())
    for name in "getpid getppid getuid geteuid getgid getegid getpgrp getsid issetugid getlogin gethostname getdomainname uname".split():
        assert name in classes
    for mib in ("kern.hostname kern.domainname kern.ostype kern.osrelease kern.osrevision kern.version "
                "kern.osreldate kern.ps_strings kern.usrstack kern.boottime hw.pagesize hw.ncpu hw.machine "
                "hw.machine_arch kern.proc.args").split():
        assert f"sysctl {mib}" in classes
    assert "sysctl kern.proc.args (write)" in classes
    for name in ("sethostname", "setdomainname", "setuid", "fork", "exit"):
        assert cat.by_class()[name].page_access == "follow"


def test_host_ops_are_known(cat):
    assert cat.host_op("gethostname", "linux") == "uname"
    assert cat.host_op("sysctl kern.proc.args (write)", "linux") == "prctl_set_name"
    assert cat.host_op("getpid", "freebsd") == "getpid"
    with pytest.raises(Exception, match="macos"):
        cat.host_op("getpid", "macos")


def test_scan_functions(cat):
    assert {"getpid", "setproctitle", "sysctlbyname", "gethostname", "uname"} <= set(cat.scan_functions)


def test_docs_list_every_class(cat):
    from conftest import REPO
    doc = (REPO / "docs" / "catalog.md").read_text()
    for c in cat.classes:
        assert f"| `{c.call_class}` | {c.page_class} | {c.page_access} |" in doc, c.call_class


def test_classify_keeps_row_order_and_count(cat):
    n = 10_000
    df = _events({"os": ["linux"] * n, "kind": ["call"] * n,
                  "syscall": ["getpid", "read", "prctl", "uname"] * (n // 4),
                  "line_no": list(range(n))})
    out = cat.classify(df)
    assert out["line_no"].to_list() == list(range(n))
    assert out["page_class"].to_list()[:4] == ["proc_ro", None, None, "sys_ro"]
