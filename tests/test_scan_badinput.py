"""A scan never crashes: corrupt, truncated, unreadable, special and looping paths are each
one problem line; every file is accounted for. Fuzzed with mutated real ELF files."""
import os
import random
import subprocess
import sys

import pytest

from syspage import catalog
from syspage.collect import elfinfo
from syspage.collect.scan import scan_paths

FUNCTIONS = frozenset(catalog.load().scan_functions)
SOURCES = ["/bin/ls", "/lib/x86_64-linux-gnu/libc.so.6"]


def _mutants(tmp_path, count):
    rng = random.Random(20071128)
    paths = []
    for src in SOURCES:
        data = open(src, "rb").read()
        for i in range(count):
            buf = bytearray(data[: rng.choice([16, 52, 64, 200, 4096, len(data) // 3, len(data)])])
            for _ in range(rng.randint(1, 40)):          # flip bytes, mostly in the headers
                pos = rng.randrange(min(len(buf), 8192 if rng.random() < 0.8 else len(buf)))
                buf[pos] = rng.randrange(256)
            buf[:4] = b"\x7fELF"
            p = tmp_path / f"{os.path.basename(src)}.{i}"
            p.write_bytes(bytes(buf))
            paths.append(p)
    return paths


def test_mutated_elf_files_never_crash_the_scan(tmp_path):
    paths = _mutants(tmp_path, 60)
    result = scan_paths([tmp_path], workers=2)
    assert result.binaries.height + result.problems.height + result.not_elf == len(paths)
    assert result.problems.height > 0
    for reason in result.problems["reason"]:
        assert "\n" not in reason and reason.startswith("truncated or corrupt ELF")


def test_identify_raises_only_documented_errors(tmp_path):
    for p in _mutants(tmp_path, 20):
        try:
            elfinfo.identify(p, FUNCTIONS)
        except Exception as exc:  # noqa: BLE001
            assert isinstance(exc, elfinfo.ELF_ERRORS + (elfinfo.NotElfError, OSError)), repr(exc)


def test_special_paths_are_one_line_problems(tmp_path):
    (tmp_path / "text.txt").write_text("not an elf\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "short").write_bytes(b"\x7fEL")
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    (tmp_path / "dangling").symlink_to(tmp_path / "absent")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to(tmp_path)            # a directory loop
    os.mkfifo(tmp_path / "fifo")                              # opening it would block: must be skipped
    huge = tmp_path / "huge"
    with open(huge, "wb") as fh:                              # sparse 4 GiB file that starts like ELF
        fh.write(b"\x7fELF\x02\x01\x01")
        fh.truncate(4 << 30)
    result = scan_paths([tmp_path, "/proc/self/mem"], workers=1)
    reasons = dict(zip(result.problems["path"], result.problems["reason"]))
    assert reasons[str(tmp_path / "loop_a")] == "symlink loop"
    assert reasons[str(tmp_path / "dangling")].startswith("no such file")
    assert reasons[str(tmp_path / "fifo")].startswith("not a regular file")
    assert reasons[str(huge)].startswith("truncated or corrupt ELF")
    assert reasons["/proc/self/mem"].startswith("unreadable")
    assert result.not_elf == 3                                # text.txt, empty, short
    assert result.binaries.height == 0


def test_cli_reports_problems_one_line_each(run_cli, tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "a")
    shutil_ls = tmp_path / "ls"
    shutil_ls.write_bytes(open("/bin/ls", "rb").read())
    res = run_cli("scan", tmp_path, "-o", tmp_path / "out.csv")
    assert res.returncode == 0, res.stderr
    assert "syspage: warning: " + str(tmp_path / "a") + ": symlink loop" in res.stderr
    assert "2 files" not in res.stdout  # the link is a problem, not a file
    csv = (tmp_path / "out.csv").read_text()
    assert str(shutil_ls) in csv and "gethostname" in csv
    assert (tmp_path / "out.problems.csv").read_text().count("symlink loop") == 1


def test_cli_parquet_round_trip(run_cli, tmp_path):
    from syspage import schema
    res = run_cli("scan", "/bin/ls", "-o", tmp_path / "s.parquet")
    assert res.returncode == 0, res.stderr
    table = schema.SCAN.read(tmp_path / "s.parquet")
    assert table["path"].to_list() == ["/bin/ls"]
    assert schema.read_metadata(tmp_path / "s.parquet")["files_seen"] == "1"


def test_cli_missing_path_is_exit_2(run_cli, tmp_path):
    res = run_cli("scan", tmp_path / "absent")
    assert res.returncode == 2
    assert res.stderr == f"syspage: error: {tmp_path / 'absent'}: no such file or directory\n"
