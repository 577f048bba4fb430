"""kdump: golden rows from real traces (checked by hand against the text), header variants built
to FreeBSD kdump.c's printf formats, and the driver's detection and classification."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from syspage import schema
from syspage.parse import parse_file
from syspage.parse._base import ParseContext
from syspage.parse._kdump import FORMAT

DATA = Path(__file__).parent / "data"
KDUMP_FILES = sorted(p for p in DATA.glob("kdump_*.txt") if not p.name.endswith(".source.txt"))


def run(lines, os=None):
    out = FORMAT.parse(lines, ParseContext(source_file="t", os=os))
    return out, schema.EVENTS.conform(out.events)


def row(events, line_no):
    got = events.filter(pl.col("line_no") == line_no)
    assert got.height >= 1, f"no row at line {line_no}"
    return got.row(0, named=True)


def test_freebsd_uul_rows_by_hand():
    out, ev = run((DATA / "kdump_freebsd_linuxthor-uul-excerpt.txt").read_text().splitlines())
    assert out.os == "freebsd"
    assert out.rejects == [(1, "root@freebsd:~ # kdump", "prose around a pasted trace")]
    # "755 uul CALL chdir(0x60022c)" / NAMI "/system" / "RET chdir -1 errno 2 No such file or directory"
    r = row(ev, 9)
    assert (r["kind"], r["syscall"], r["args_raw"], r["ret"], r["errno"], r["errno_name"], r["line_no_end"]) == \
        ("call", "chdir", "0x60022c", -1, 2, "ENOENT", 11)
    assert r["ret_raw"] == "-1 errno 2 No such file or directory" and r["incomplete"] is False
    assert row(ev, 10)["kind"] == "namei" and row(ev, 10)["args_raw"] == '"/system"'
    # execve returns JUSTRETURN in the new image (comm changed from ktrace to uul)
    r = row(ev, 3)
    assert (r["syscall"], r["comm"], r["ret"], r["ret_raw"], r["errno_name"], r["line_no_end"]) == \
        ("execve", "ktrace", None, "JUSTRETURN", "EJUSTRETURN", 5)
    # write with its GIO record and the two visdump lines: the GIO row covers them, the call too
    assert row(ev, 12)["line_no_end"] == 16 and row(ev, 12)["ret"] == 4
    gio = row(ev, 13)
    assert (gio["kind"], gio["args_raw"], gio["line_no_end"]) == ("genio", "fd 1 wrote 4 bytes", 15)
    # exit never returns; the first RET (of the ktrace call that started tracing) has no CALL
    assert row(ev, 17)["incomplete"] is True and row(ev, 17)["syscall"] == "exit"
    assert row(ev, 2)["syscall"] == "ktrace" and row(ev, 2)["args_raw"] is None


def test_sctl_names_attach_to_their_sysctl_call():
    _, ev = run((DATA / "kdump_hardenedbsd_issue144-chunk2.txt").read_text().splitlines())
    call = row(ev, 4)   # __sysctl(...,0x3,...) then SCTL "hardening.secadm.integriforce_so", NAMI, RET
    assert (call["syscall"], call["syscall_raw"], call["sysctl_name"], call["line_no_end"], call["ret"]) == \
        ("sysctl", "__sysctl", "hardening.secadm.integriforce_so", 7, 0)
    sctl = row(ev, 5)
    assert (sctl["kind"], sctl["sysctl_name"], sctl["syscall"]) == ("sysctl", "hardening.secadm.integriforce_so", None)
    assert row(ev, 1)["sysctl_name"] == "sysctl.name2oid"


def test_openbsd_decoded_mib_and_os():
    out, ev = run((DATA / "kdump_openbsd_cY81x-attended-w.txt").read_text().splitlines())
    assert out.os == "openbsd"
    calls = ev.filter(pl.col("syscall") == "sysctl")
    assert calls["sysctl_name"].to_list() == ["vm.malloc_conf", "vm.loadavg", "kern.proc.all", "kern.proc.all"]
    first = calls.row(0, named=True)
    assert first["args_raw"] == "2.12<vm.malloc_conf>,0x7f7ffffd2140,0x7f7ffffd2158,0,0" and first["ret"] == 0
    mmap = ev.filter(pl.col("syscall") == "mmap").row(0, named=True)
    assert mmap["ret"] == 18999612608512 and mmap["ret_raw"] == "18999612608512/0x1147b1291000"
    assert ev.filter(pl.col("syscall") == "set_tcb").height == 1        # __set_tcb normalized
    # 146 events: every CALL joined with its RET except exit(0) and the leading RET ktrace
    assert ev.height == 146 and ev.filter(pl.col("incomplete")).height == 2


def test_netbsd_dragonfly_cheribsd():
    out, ev = run((DATA / "kdump_netbsd_linuxthor-uul-excerpt.txt").read_text().splitlines())
    assert out.os == "netbsd"
    assert row(ev, 2)["kind"] == "emul" and row(ev, 2)["pid"] == 147 and row(ev, 2)["tid"] == 1
    assert row(ev, 13)["args_raw"] == "1,0x60023f,4" and row(ev, 14)["line_no_end"] == 15   # GIO "BSD\n"
    out, ev = run((DATA / "kdump_dragonfly_linuxthor-uul-excerpt.txt").read_text().splitlines())
    assert out.os == "dragonfly" and row(ev, 2)["tid"] == 1 and row(ev, 2)["pid"] == 877
    out, ev = run((DATA / "kdump_cheribsd_issue223-chunk.txt").read_text().splitlines())
    mmap = ev.filter(pl.col("syscall") == "mmap").row(0, named=True)
    # CheriBSD's errno 97 is "Memory protection violation", FreeBSD's 97 is EINTEGRITY: no name
    assert (mmap["errno"], mmap["errno_name"], mmap["ret"]) == (97, None, -1)
    assert ev.filter(pl.col("errno") == 2)["errno_name"].to_list() == ["ENOENT", "ENOENT"]


def test_capsicum_doc_prose_rejected_line_by_line():
    lines = (DATA / "kdump_freebsd_freebsd-doc-capsicum-ktracing.adoc.txt").read_text().splitlines()
    out, ev = run(lines)
    assert out.os == "freebsd"
    caps = ev.filter(pl.col("kind") == "capability")
    assert caps.row(0, named=True)["args_raw"] == "system call not allowed: execve"
    assert {r[2] for r in out.rejects} == {"prose around a pasted trace"}
    # every line is accounted for: a row, a reject or an ignored blank line
    covered = set()
    for a, b in ev.select("line_no", "line_no_end").iter_rows():
        covered.update(range(a, b + 1))
    covered.update(r[0] for r in out.rejects)
    blank = {i + 1 for i, l in enumerate(lines) if not l.strip()}
    assert covered | blank == set(range(1, len(lines) + 1))
    assert len(blank) == out.ignored


# Header variants: lines built with kdump.c dumpheader()'s formats ("%6jd %6jd %-8.*s " with -H,
# "%jd.%06ld " per -T/-E/-R timestamp in that order, then "%s  " the record type): no real sample
# has them (docs/formats-bsd.md).
def hdr(pid, comm, rtype, body, tid=None, stamps=(), cpu=None):
    h = f"{pid:6d} " + (f"{tid:6d} " if tid is not None else "") + f"{comm:<8} "
    h += "".join(f"{s} " for s in stamps) + (f"{cpu:3d} " if cpu is not None else "")
    return h + f"{rtype:<4}  " + body


def test_absolute_timestamps_threads_and_duration():
    lines = [
        hdr(1234, "sh", "CALL", "__sysctl(0x7fffffffe4a0,0x2,0x7fffffffe4bc,0x7fffffffe4b0,0,0)", tid=100234,
            stamps=["1700000000.000100"]),
        hdr(1234, "sh", "SCTL", '"kern.hostname"', tid=100234, stamps=["1700000000.000150"]),
        hdr(1234, "sh", "CALL", "getpid", tid=100235, stamps=["1700000000.000160"]),
        hdr(1234, "sh", "RET", "__sysctl 0", tid=100234, stamps=["1700000000.000180"]),
        hdr(1234, "sh", "RET", "getpid 1234/0x4d2", tid=100235, stamps=["1700000000.000170"]),
    ]
    out, ev = run(lines)
    assert out.rejects == []
    s = row(ev, 1)
    assert (s["ts_ns"], s["ts_clock"], s["duration_ns"], s["tid"], s["sysctl_name"], s["line_no_end"]) == \
        (1_700_000_000_000_100_000, "epoch", 80_000, 100234, "kern.hostname", 4)
    g = row(ev, 3)
    assert (g["syscall"], g["ret"], g["duration_ns"], g["tid"], g["line_no_end"]) == ("getpid", 1234, 10_000, 100235, 5)


def test_relative_and_elapsed_timestamps_and_cpu():
    # -R: deltas since the previous record (they go down as well as up): accumulated
    lines = [hdr(7, "a", "CALL", "getppid", stamps=["0.000000"]),
             hdr(7, "a", "RET", "getppid 1", stamps=["0.000020"]),
             hdr(7, "a", "CALL", "getuid", stamps=["0.000005"]),
             hdr(7, "a", "RET", "getuid 0", stamps=["0.000003"])]
    _, ev = run(lines)
    assert ev["ts_ns"].to_list() == [0, 25_000] and ev["duration_ns"].to_list() == [20_000, 3_000]
    assert ev["ts_clock"].to_list() == ["relative", "relative"]
    # -E: since the first record (never decreasing), with -c's CPU column after it
    lines = [hdr(7, "a", "CALL", "getppid", stamps=["0.000000"], cpu=1),
             hdr(7, "a", "RET", "getppid 1", stamps=["0.000020"], cpu=1),
             hdr(7, "a", "CALL", "getuid", stamps=["0.000025"], cpu=0),
             hdr(7, "a", "RET", "getuid 0", stamps=["0.000028"], cpu=0)]
    _, ev = run(lines)
    assert ev["ts_ns"].to_list() == [0, 25_000] and ev["duration_ns"].to_list() == [20_000, 3_000]
    # -T -E -R together (kdump.c prints them in this order): the absolute one is used
    lines = [hdr(7, "a", "CALL", "getppid", stamps=["1700000000.000000000", "0.000000000", "0.000000000"]),
             hdr(7, "a", "RET", "getppid 1", stamps=["1700000000.000002000", "0.000002000", "0.000002000"])]
    _, ev = run(lines)
    assert ev["ts_ns"].to_list() == [1_700_000_000_000_000_000] and ev["duration_ns"].to_list() == [2_000]


def test_other_records_psig_csw_pflt_user_restart_hexdump():
    lines = [
        hdr(9, "a", "CALL", "read(0x3,0x7fffffffe000,0x10)"),
        hdr(9, "a", "GIO", "fd 3 read 16 bytes"),
        "       0x0000 7f45 4c46 0201 0109 0000 0000 0000 0000  |.ELF............|",
        hdr(9, "a", "RET", "read 16/0x10"),
        hdr(9, "a", "CALL", "nanosleep(0x7fffffffe0b0,0)"),
        hdr(9, "a", "CSW", 'stop kernel "nanslp"'),
        hdr(9, "a", "PSIG", "SIGINT caught handler=0x401a30 mask=0x0 code=SI_NOINFO"),
        hdr(9, "a", "RET", "nanosleep RESTART"),
        hdr(9, "a", "PFLT", "0x801234000 VM_PROT_READ"),
        hdr(9, "a", "PRET", "KERN_SUCCESS"),
        hdr(9, "a", "USER", "RTLD: loaded   0x800a00000 @ 0x800200000 - 0x8002fffff (/lib/libc.so.7)"),
    ]
    out, ev = run(lines)
    assert out.rejects == []
    assert row(ev, 1)["line_no_end"] == 4 and row(ev, 2)["line_no_end"] == 3
    assert [row(ev, i)["kind"] for i in (6, 7, 9, 10, 11)] == ["csw", "signal", "fault", "fault", "user"]
    r = row(ev, 5)
    assert (r["ret_raw"], r["errno_name"], r["ret"], r["line_no_end"]) == ("RESTART", "ERESTART", None, 8)


def test_setproctitle_and_hostname_classified_through_the_driver(tmp_path):
    # setproctitle(3): sysctl {kern.proc.args, pid} with a new value (newp, argument 5, not NULL)
    trace = tmp_path / "k.txt"
    trace.write_text("\n".join([
        hdr(501, "daemon", "CALL", "__sysctl(0x7fffffffe3a0,0x4,0,0,0x800a0b000,0x1e)"),
        hdr(501, "daemon", "SCTL", '"kern.proc.args.501"'),
        hdr(501, "daemon", "RET", "__sysctl 0"),
        hdr(501, "daemon", "CALL", "__sysctl(0x7fffffffe4a0,0x2,0x7fffffffe4bc,0x7fffffffe4b0,0,0)"),
        hdr(501, "daemon", "SCTL", '"kern.hostname"'),
        hdr(501, "daemon", "RET", "__sysctl 0"),
        hdr(501, "daemon", "CALL", "getpid"),
        hdr(501, "daemon", "RET", "getpid 501/0x1f5"),
    ]) + "\n")
    res = parse_file(trace, cache=False)
    assert res.format == "kdump" and res.os == "freebsd" and res.rejects.height == 0
    got = res.events.filter(pl.col("kind") == "call").select("syscall", "sysctl_name", "page_class", "page_access").rows()
    assert got == [("sysctl", "kern.proc.args", "proc_rw", "write"), ("sysctl", "kern.hostname", "sys_ro", "read"),
                   ("getpid", None, "proc_ro", "read")]


@pytest.mark.parametrize("path", KDUMP_FILES, ids=lambda p: p.name)
def test_every_kdump_file_through_the_driver(path):
    res = parse_file(path, cache=False)
    assert res.format == "kdump"
    assert res.events.height > 0
    schema.EVENTS.validate(res.events)
    # rejects are the shell prompts and prose the documents wrap the traces in, each with a reason
    assert all(res.rejects["reason"].is_in(["prose around a pasted trace"]))
    assert not any(t.lstrip()[:1].isdigit() and ("CALL" in t or "RET" in t) for t in res.rejects["text"])


def test_openbsd_thread_ids_via_syscall_and_start_record():
    # OpenBSD kdump.c dumpheader(): "%6ld" "/%-7ld" (-H) " %-8s ", then "(via syscall) " for
    # calls made through syscall(2) and STRT for KTR_START
    lines = ["   613/264235  w        STRT  ",
             "   613/264235  w        CALL  (via syscall) getpid()",
             "   613/264235  w        RET   getpid 613/0x265"]
    out, ev = run(lines)
    assert out.rejects == [] and out.os == "openbsd"
    assert ev.select("kind", "pid", "tid", "syscall", "ret", "line_no_end").rows() == [
        ("info", 613, 264235, None, None, 1), ("call", 613, 264235, "getpid", 613, 3)]
