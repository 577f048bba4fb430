"""The syspage kernel (replay/kernel/): built, booted under QEMU, checked from inside.

One boot runs every check (replay/kernel/user/sp_check.c prints what the page
says next to what the system calls say); these tests assert on those values.
The first run on a clean clone builds the kernel (10-20 minutes on 2 shared
cores); later runs reuse .cache/kernel/. Skipped only when QEMU, the kernel
source or a build tool is not installed.
"""
from __future__ import annotations

import errno
import re
import signal
from collections import defaultdict

import pytest

from syspage.replay import kernel
from syspage.replay.kernel import harness

LEAK_CYCLES = 100_000
ID_FIELDS = ("pid", "ppid", "pgid", "sid", "uid", "euid", "suid", "gid", "egid", "sgid")

SCRIPT = f"""
section check /bin/sp_check all {LEAK_CYCLES}
section ps ps
"""


@pytest.fixture(scope="module")
def vm():
    missing = kernel.missing_tools()
    if missing:
        pytest.skip("cannot build or boot the syspage kernel here, missing: " + ", ".join(missing))
    result = kernel.run_in_vm(SCRIPT, timeout=1800)
    assert result.finished, "the VM's command script did not finish:\n" + result.console[-3000:]
    return result


@pytest.fixture(scope="module")
def checks(vm):
    """check name -> role -> list of records."""
    section = vm.sections["check"]
    assert section.status == 0, "sp_check failed:\n" + "\n".join(section.lines[-40:])
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in section.json_lines():
        assert "error" not in record, record
        out[record["check"]][record.get("role", "")].append(record)
    assert "done" in out, "sp_check stopped early:\n" + "\n".join(section.lines[-40:])
    return out


def one(checks, check, role=""):
    records = checks[check][role]
    assert len(records) == 1, f"{check}/{role}: expected one record, got {records}"
    return records[0]


def assert_page_matches(record):
    """The page is present and valid, and says exactly what the system calls say."""
    assert record["present"] == 1, record
    assert record["valid"] == 1, record
    for field in ID_FIELDS:
        assert record["page"][field] == record["sys"][field], (field, record)
    assert_reader_matches(record)


def assert_reader_matches(record):
    """Whatever the page says, the reader (page or fallback) returns the system call's value."""
    assert record["reader"]["pid"] == record["sys"]["pid"], record
    assert record["reader"]["ppid"] == record["sys"]["ppid"], record
    assert record["reader"]["uid"] == record["sys"]["uid"], record


# ---- no VM needed --------------------------------------------------------------


def test_user_header_is_the_patch_uapi_header():
    """user/syspage.h must be byte-identical to the header patch 0001 adds."""
    patch = (harness.PATCH_DIR / "0001-syspage-uapi-layout-core-and-data-structures.patch").read_text()
    hunk = patch.split("+++ b/include/uapi/linux/syspage.h\n", 1)[1]
    lines = []
    for line in hunk.splitlines()[1:]:  # skip the @@ line
        if not line.startswith("+"):
            break
        lines.append(line[1:])
    assert "\n".join(lines) + "\n" == (harness.USER_DIR / "syspage.h").read_text()


def test_console_parser_keeps_sections_and_status():
    console = ("noise\r\n@@SYSPAGE-BOOTED 6.1.0@@\r\n@@SYSPAGE-BEGIN a@@\r\n{\"x\": 1}\r\n"
               "[  1.0] kernel says hi\r\n@@SYSPAGE-END a 3@@\r\n@@SYSPAGE-BEGIN b@@\r\npartial\r\n")
    sections, release, finished = harness.parse_console(console)
    assert release == "6.1.0" and not finished
    assert sections["a"].status == 3 and sections["a"].json_lines() == [{"x": 1}]
    assert sections["b"].status is None and sections["b"].lines == ["partial"]


# ---- in the VM ----------------------------------------------------------------



@pytest.mark.slow
def test_vm_booted_the_patched_kernel(vm):
    assert vm.kernel_release.startswith("6.1."), vm.kernel_release
    assert vm.accel in ("kvm", "tcg")


@pytest.mark.slow
def test_aux_vector_layout_and_maps(checks):
    a = one(checks, "auxv")
    assert a["proc"] and a["sys"] and a["title"]
    assert a["sys"] == a["proc"] + 4096  # page 1 of "[syspage]"
    assert a["proc_version"] == a["sys_version"] == a["title_version"] == 1
    assert a["proc_size"] == a["struct_proc_size"]
    assert a["sys_size"] == a["struct_sys_size"]
    assert a["title_size"] == a["struct_title_size"]
    assert a["title"] == a["proc"] + 8192  # page 2
    # at exec: one read-only shared VMA of three pages (one VMA: docs/kernel.md, fork+exec+exit)
    maps = a["maps"]
    assert re.fullmatch(rf"0*{a['proc']:x}-0*{a['proc'] + 3 * 4096:x} r--s [^;]*\[syspage\];", maps), maps
    # write access for the whole range is refused; for the title page alone it splits off
    assert (a["mprotect_all"], a["mprotect_all_errno"]) == (-1, errno.EACCES)
    assert (a["title_enable"], a["title_enable_errno"]) == (0, 0)
    titled = a["maps_titled"]
    assert re.search(rf"^0*{a['proc']:x}-0*{a['proc'] + 8192:x} r--s [^;]*\[syspage\];", titled), titled
    assert re.search(rf"0*{a['title']:x}-0*{a['title'] + 4096:x} rw-s [^;]*\[syspage-title\];", titled), titled


@pytest.mark.slow
def test_values_equal_syscalls_in_the_process_and_across_fork_and_exec(checks):
    assert_page_matches(one(checks, "basic", "self"))
    parent, child, grandchild = (one(checks, "fork", r) for r in ("parent", "child", "grandchild"))
    for r in (parent, child, grandchild):
        assert_page_matches(r)
    assert child["page"]["pid"] != parent["page"]["pid"]
    assert child["page"]["ppid"] == parent["page"]["pid"]
    assert grandchild["page"]["ppid"] == child["page"]["pid"]
    assert_page_matches(one(checks, "exec", "exec-child"))


@pytest.mark.slow
def test_threads_and_setuid_in_a_threaded_process(checks):
    threads = [r for role, rs in checks["threads"].items() for r in rs]
    assert len(threads) == 5
    for r in threads:
        assert_page_matches(r)
    assert len({r["page"]["pid"] for r in threads}) == 1
    changed = [r for role, rs in checks["setuid-threads"].items() for r in rs]
    assert len(changed) == 5
    for r in changed:
        assert_page_matches(r)
        assert (r["page"]["uid"], r["page"]["euid"], r["page"]["suid"]) == (1000, 1001, 1002)
        assert (r["page"]["gid"], r["page"]["egid"], r["page"]["sgid"]) == (2000, 2001, 2002)


@pytest.mark.slow
def test_setuid(checks):
    seteuid, after = one(checks, "setuid", "seteuid"), one(checks, "setuid", "after")
    assert_page_matches(seteuid)
    assert (seteuid["page"]["uid"], seteuid["page"]["euid"]) == (0, 5000)
    assert_page_matches(after)
    assert (after["page"]["uid"], after["page"]["gid"]) == (4000, 3000)


@pytest.mark.slow
def test_vfork_and_clone_vm_mark_the_page_invalid(checks):
    assert_page_matches(one(checks, "vfork", "before"))
    child = one(checks, "vfork", "child")
    assert child["present"] == 1 and child["valid"] == 0, child
    assert child["sys"]["pid"] != one(checks, "vfork", "before")["sys"]["pid"]
    assert_reader_matches(child)  # the fallback gives the child its own pid
    assert_page_matches(one(checks, "vfork", "after"))  # valid again once the child left

    vm_child = one(checks, "clone-vm", "child")
    during = one(checks, "clone-vm", "parent-during")
    assert vm_child["valid"] == 0 and during["valid"] == 0
    assert_reader_matches(vm_child)
    assert_reader_matches(during)
    assert_page_matches(one(checks, "clone-vm", "parent-after"))

    assert_page_matches(one(checks, "vfork-exec", "exec-child"))
    assert_page_matches(one(checks, "vfork-exec", "parent-after"))


@pytest.mark.slow
def test_reparenting_to_init_and_to_a_subreaper(checks):
    orphan = one(checks, "reparent-init", "orphan")
    assert_page_matches(orphan)
    assert orphan["page"]["ppid"] == 1
    subreaper = one(checks, "reparent-subreaper", "subreaper")
    adopted = one(checks, "reparent-subreaper", "orphan")
    assert_page_matches(adopted)
    assert adopted["page"]["ppid"] == subreaper["sys"]["pid"] != 1


@pytest.mark.slow
def test_setsid_and_setpgid(checks):
    before, after = one(checks, "setsid", "before"), one(checks, "setsid", "after")
    assert_page_matches(before)
    assert_page_matches(after)
    assert after["page"]["sid"] == after["page"]["pgid"] == after["page"]["pid"] != before["page"]["sid"]
    moved = one(checks, "setpgid", "moved-by-parent")
    assert_page_matches(moved)
    assert moved["page"]["pgid"] == moved["page"]["pid"] != one(checks, "setpgid", "before")["page"]["pgid"]


@pytest.mark.slow
def test_pid_namespace(checks):
    init = one(checks, "pidns", "init")
    assert_page_matches(init)
    assert (init["page"]["pid"], init["page"]["ppid"]) == (1, 0)
    child = one(checks, "pidns", "child")
    assert_page_matches(child)
    assert child["page"]["ppid"] == 1 and child["page"]["pid"] > 1
    exec_child = one(checks, "pidns", "exec-child")
    assert_page_matches(exec_child)
    assert exec_child["page"]["pid"] == child["page"]["pid"]


@pytest.mark.slow
def test_system_page_per_uts_namespace(checks):
    def names(check, role, nodename, domainname=None):
        r = one(checks, check, role)
        assert r["present"] == 1
        assert r["page"] == r["sys"], r
        assert r["page"]["nodename"] == nodename, r
        if domainname is not None:
            assert r["page"]["domainname"] == domainname, r
        return r

    root = names("uts", "root", "syspage-vm", "syspage.test")
    assert root["page"]["release"].startswith("6.1.") and root["page"]["sysname"] == "Linux"
    names("utsns-unshare", "child-before", "syspage-vm")
    names("utsns-unshare", "child-unshared", "syspage-vm")  # a copy of the parent's names
    names("utsns-unshare", "child-renamed", "inner-uts", "inner.dom")
    names("utsns-unshare", "child-exec", "inner-uts", "inner.dom")
    names("utsns-unshare", "root-after", "syspage-vm", "syspage.test")
    names("utsns-clone", "child-before", "syspage-vm")
    names("utsns-clone", "child-after", "clone-uts")
    names("utsns-clone", "root-after", "syspage-vm")


@pytest.mark.slow
def test_read_only_pages_refuse_writes_and_mprotect(checks):
    r = one(checks, "readonly")
    assert r["proc_write_signal"] == signal.SIGSEGV
    assert r["sys_write_signal"] == signal.SIGSEGV
    assert r["title_write_signal"] == 0 and r["title_write_exit"] == 0  # the title page is writable
    assert (r["mprotect_proc"], r["mprotect_proc_errno"]) == (-1, errno.EACCES)
    assert (r["mprotect_sys"], r["mprotect_sys_errno"]) == (-1, errno.EACCES)


@pytest.mark.slow
def test_title_in_proc_cmdline_and_ps(checks):
    t = one(checks, "title")
    assert t["present"] == 1
    assert t["cmdline_before"].startswith("/bin/sp_check|all|")
    assert t["cmdline_titled"] == t["title"] + "|"
    assert t["title"] in t["ps_line"], t["ps_line"]
    assert t["cmdline_forked_child"] == t["title"] + "|"  # inherited at fork
    assert t["cmdline_cleared"] == t["cmdline_before"]  # len 0: back to argv
    assert one(checks, "argv-title")["cmdline"].startswith("argv-title")  # the old path still works


@pytest.mark.slow
def test_hostile_title_writers_cannot_stall_or_tear(checks):
    modes = {r["mode"]: r for r in checks["hostile"][""]}
    assert set(modes) == {"stuck-odd", "huge-len", "flip"}
    for r in modes.values():
        assert r["other"] == 0, r  # never a torn or out-of-bounds title
        assert r["worst_ns"] < 100_000_000, r  # a bounded read, not a wait on the writer
    assert modes["stuck-odd"]["argv"] == modes["stuck-odd"]["reads"]
    assert modes["huge-len"]["title_a"] == modes["huge-len"]["reads"]
    flip = modes["flip"]
    assert flip["argv"] + flip["title_a"] + flip["title_b"] == flip["reads"]


@pytest.mark.slow
def test_no_page_leaks_over_fork_exit_cycles(checks):
    r = one(checks, "leak")
    assert r["cycles"] == LEAK_CYCLES
    assert r["pages_before"] > 0
    assert r["pages_after"] == r["pages_before"], r
    # 100,000 leaked cycles would be 800 MB; allow 4 MB of unrelated drift
    assert r["memfree_kb_after"] > r["memfree_kb_before"] - 4096, r


@pytest.mark.slow
def test_off_switch(checks):
    switch = one(checks, "off", "switch")
    assert switch["setting"] == 0
    assert switch["cmdline_self"].startswith("/bin/sp_check|all|")  # title ignored while off
    for role in ("exec", "exec-fork"):
        r = one(checks, "off", role)
        assert r["present"] == 0
        assert_reader_matches(r)
    aux = one(checks, "off", "auxv")
    assert (aux["proc"], aux["title"], aux["sys"]) == (0, 0, 0)
    back = one(checks, "off", "back-on")
    assert back["setting"] == 1 and back["cmdline_self"] == "title-while-off|"
    assert_page_matches(one(checks, "on-again", "exec"))
    assert_page_matches(one(checks, "on-again", "exec-fork"))
