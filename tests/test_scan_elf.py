"""syspage scan on real ELF files: system binaries checked against nm, and fixtures built
here by real toolchains (gcc, GNU as/ld, i686 and MIPS cross binutils)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from syspage import catalog
from syspage.collect import elfinfo
from syspage.collect.scan import scan_paths

from conftest import DATA

ELF = DATA / "elf"
FUNCTIONS = frozenset(catalog.load().scan_functions)


def _run(*cmd, cwd=None):
    subprocess.run(cmd, check=True, cwd=cwd, capture_output=True)


def _nm_names(path, defined: bool) -> set[str]:
    flag = "--defined-only" if defined else "--undefined-only"
    out = subprocess.run(["nm", "-D", flag, path], capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if not parts:
            continue
        sym_type = parts[-2] if len(parts) >= 2 else ""
        if defined and sym_type not in ("T", "W", "i"):   # functions (text, weak, ifunc)
            continue
        names.add(parts[-1].split("@", 1)[0])
    return names & FUNCTIONS


def _system_binaries(limit=40):
    picked = []
    for d in ("/usr/bin", "/usr/sbin"):
        for p in sorted(Path(d).iterdir()):
            if p.is_file() and not p.is_symlink() and elfinfo.is_elf(p):
                picked.append(str(p))
            if len(picked) >= limit:
                return picked
    return picked


@pytest.mark.parametrize("path", _system_binaries())
def test_imports_match_nm_on_system_binaries(path):
    ident = elfinfo.identify(path, FUNCTIONS)
    got = {s.split("@", 1)[0] for s in ident.imports}
    if ident.static:
        assert got == set()
    else:
        assert got == _nm_names(path, defined=False)


def test_libc_defines_match_nm():
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    ident = elfinfo.identify(libc, FUNCTIONS)
    assert ident.kind == "shared library" and ident.os == "linux"
    assert ident.abi_note.startswith("GNU/Linux")
    assert {s.split("@", 1)[0] for s in ident.defines} == _nm_names(libc, defined=True)
    assert "getpid@GLIBC_2.2.5" in ident.defines


def test_gcc_program_imports_with_versions(tmp_path):
    exe = tmp_path / "imports"
    _run("gcc", "-O1", "-Wl,--build-id=sha1", "-o", exe, ELF / "imports.c")
    ident = elfinfo.identify(exe, FUNCTIONS | {"syscall"})
    assert set(ident.imports) >= {"getpid@GLIBC_2.2.5", "gethostname@GLIBC_2.2.5", "uname@GLIBC_2.2.5"}
    assert ident.kind == "pie executable" and ident.elf_class == 64 and ident.endian == "little"
    readelf = subprocess.run(["readelf", "-n", exe], capture_output=True, text=True).stdout
    assert ident.build_id and ident.build_id in readelf
    row = scan_paths([exe], workers=1).binaries.row(0, named=True)
    assert row["uses_page_calls"] and row["old_path"] == "imports syscall(2): may issue eligible calls by number"


def test_static_program_says_imports_cannot_be_seen(tmp_path):
    exe = tmp_path / "static"
    try:
        _run("gcc", "-static", "-O1", "-o", exe, ELF / "imports.c")
    except subprocess.CalledProcessError:
        pytest.skip("gcc -static failed: libc6-dev static libraries are missing")
    row = scan_paths([exe], workers=1).binaries.row(0, named=True)
    assert row["static"] and row["imports"] == [] and row["old_path"].startswith("static binary")


def test_freebsd_abi_note_and_versioned_defines(tmp_path):
    obj, lib = tmp_path / "f.o", tmp_path / "libf.so"
    _run("as", "-o", obj, ELF / "freebsd_note.s")
    _run("ld", "-shared", "--build-id=sha1", "--hash-style=gnu", "--version-script", ELF / "freebsd_note.map",
         "-o", lib, obj)
    ident = elfinfo.identify(lib, FUNCTIONS)
    assert ident.os == "freebsd" and ident.abi_note == "FreeBSD 1400097"
    assert set(ident.imports) == {"getpid", "setproctitle"}     # unversioned: no verneed without a libc
    assert ident.defines == ("gethostname@FBSD_1.0",)


def test_sysv_hash_only_library(tmp_path):
    obj, lib = tmp_path / "f.o", tmp_path / "libf.so"
    _run("as", "-o", obj, ELF / "freebsd_note.s")
    _run("ld", "-shared", "--hash-style=sysv", "--version-script", ELF / "freebsd_note.map", "-o", lib, obj)
    ident = elfinfo.identify(lib, FUNCTIONS)
    assert set(ident.imports) == {"getpid", "setproctitle"}
    assert ident.defines == ("gethostname@FBSD_1.0",)


@pytest.mark.parametrize("prefix, endian", [("i686-linux-gnu", "little"), ("mips-linux-gnu", "big")])
def test_32_bit_both_endians(tmp_path, prefix, endian):
    if not shutil.which(f"{prefix}-as"):
        pytest.skip(f"{prefix}-as missing: apt-get install binutils-{prefix}")
    obj, lib = tmp_path / "c.o", tmp_path / "libc32.so"
    _run(f"{prefix}-as", "-o", obj, ELF / "cross.s")
    _run(f"{prefix}-ld", "-shared", "--build-id=sha1", "-o", lib, obj)
    ident = elfinfo.identify(lib, FUNCTIONS)
    assert (ident.elf_class, ident.endian) == (32, endian)
    assert set(ident.imports) == {"getpid", "uname"}
    assert ident.build_id and len(ident.build_id) == 40


@pytest.mark.parametrize("path", _system_binaries(60) + ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/python3"])
def test_build_id_matches_readelf(path):
    """SystemTap's stapsdt notes reuse note type 3 (NT_GNU_BUILD_ID): only the GNU owner counts."""
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    want = next((line.split(":", 1)[1].strip() for line in out.splitlines() if "Build ID:" in line), None)
    assert elfinfo.identify(path).build_id == want
