"""kdump: every fast path (the regular expressions in parse/_kdump_records.py, the C framer in
parse/native/kdump_frame.c) gives exactly what the Lark grammar (the parser of record) gives.

Line by line over every line of every trace in tests/data and ../shared/traces (not only the kdump
files: prose, strace and truss lines must be rejected with the grammar's reason too), over
mutated kdump lines, and file by file: FORMAT.parse with its fast paths equals FORMAT.parse with
``grammar_only`` (rows and rejects); the C framer record by record over the same corpus, over
mutated lines and over generated record headers (the variants kdump.c's dumpheader() prints).
"""
from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st
from polars.testing import assert_frame_equal

from syspage.parse import _kdump_join, _native
from syspage.parse._base import ParseContext
from syspage.parse._kdump import FORMAT, HEADER_RE, grammar_line, read_line

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces"


def _texts(directory: Path, pattern: str) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(pattern) if not p.name.endswith(".source.txt"))


ALL_FILES = _texts(DATA, "*.txt") + _texts(SHARED, "*.txt")
KDUMP_FILES = _texts(DATA, "kdump_*.txt") + _texts(SHARED, "kdump_*.txt")


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def test_fast_paths_equal_grammar_on_every_corpus_line():
    lines = [line for p in ALL_FILES for line in _lines(p) if line.strip()]
    assert len(lines) > 5000
    for line in lines:
        assert read_line(line) == grammar_line(line), line


def test_fast_paths_equal_grammar_on_mutated_lines():
    rng = random.Random(20261128)
    kdump = [line for p in KDUMP_FILES for line in _lines(p) if line.strip()]
    for _ in range(6000):
        line = rng.choice(kdump)
        i = rng.randrange(len(line) + 1)
        op = rng.randrange(4)
        if op == 0:
            line = line[:i]
        elif op == 1:
            line = line[:i] + rng.choice(' \t"()<>/:0x[]=aZ\x00é') + line[i:]
        elif op == 2:
            line = line[:i] + line[i + 1:]
        else:
            line = " " * rng.randrange(4) + line.lstrip()
        if line.strip():
            assert read_line(line) == grammar_line(line), line


@pytest.mark.parametrize("path", KDUMP_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_file_rows_equal_grammar_only(path):
    lines = _lines(path)
    fast = FORMAT.parse(lines, ParseContext(source_file=path.name))
    lark = FORMAT.parse(lines, ParseContext(source_file=path.name, grammar_only=True))
    assert fast.events.height > 0
    assert_frame_equal(fast.events, lark.events)
    assert fast.rejects == lark.rejects
    assert (fast.ignored, fast.os) == (lark.ignored, lark.os)


# -- the C framer (parse/native/kdump_frame.c) against the grammar, record by record ------------
def _framed_both(lines: list[str]):
    """The records of these lines from the C framer (with its Python fallback) and from the
    grammar alone, as the driver frames a file."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    c = FORMAT.frame_bytes(data, 0, len(data), ParseContext(source_file="c"))
    lark = FORMAT.frame(pl.Series(lines, dtype=pl.String), ParseContext(source_file="c", grammar_only=True))
    return c, lark


def _c_framed_count(lines: list[str]) -> int:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    framed, _other, n, _blank = _native.kdump_framer()(data, 0, len(data), 1)
    assert n == len(lines)
    return framed.count(b"\n")


needs_c = pytest.mark.skipif(_native.kdump_framer() is None,
                            reason="the C kdump framer is not built here (no C compiler, or SYSPAGE_NO_NATIVE is set)")


@needs_c
def test_c_framer_equals_grammar_on_every_corpus_line():
    lines = [line.removesuffix("\r") for p in ALL_FILES
             for line in p.read_bytes().decode("utf-8", errors="replace").split("\n")]
    c, lark = _framed_both(lines)
    assert_frame_equal(c.records, lark.records)
    assert (c.rejects, c.ignored, c.last_line_no) == (lark.rejects, lark.ignored, lark.last_line_no)
    # the C does carry the corpus: every kdump record and prose line but the rare shapes
    assert _c_framed_count(lines) > 0.9 * (len(lines) - c.ignored)


@needs_c
def test_c_framer_equals_grammar_on_mutated_lines():
    rng = random.Random(7)
    kdump = [line for p in KDUMP_FILES for line in _lines(p) if line.strip()]
    mutated = []
    for _ in range(20000):
        line = rng.choice(kdump)
        for _ in range(rng.randrange(1, 3)):
            i = rng.randrange(len(line) + 1)
            op = rng.randrange(5)
            if op == 0:
                line = line[:i]
            elif op == 1:
                line = line[:i] + rng.choice(' \t"()<>/:.-0123456789xXaZ[]=éJ') + line[i:]
            elif op == 2:
                line = line[:i] + line[i + 1:]
            elif op == 3:
                line = line[:i] + " " * rng.randrange(1, 4) + line[i:]
            else:
                line = line[:i] + rng.choice(["CALL ", "RET ", "1.5 ", "0x1234 ", "errno ", "/", "(via syscall) ",
                                              "JUSTRETURN", "bytes", "UNKNOWN(3) ", "123:4 ", "99999999999999999999 "]) + line[i:]
        mutated.append(line)
    c, lark = _framed_both(mutated)
    assert_frame_equal(c.records, lark.records)
    assert c.rejects == lark.rejects


# kdump.c dumpheader(): "%6jd %6jd %-8.*s " (-H: pid, tid), then -T/-E/-R stamps, -c cpu, the type.
comms = st.one_of(st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,18}", fullmatch=True),
                  st.from_regex(r"[a-z]{1,5} [a-z0-9]{1,5}", fullmatch=True),      # a name with a blank
                  st.sampled_from(["CALL", "1.5", "123", "RET x", "a" * 33]))
bodies = st.sampled_from([
    "chdir(0x60022c)", "getpid", "sysctl(2.12<vm.malloc_conf>,0x7f7ffffd2140,0,0)", "(via syscall) getpid()",
    "[512](0x1)", "foo(a) b)", "foo(", "foo  (x)  ", "chdir -1 errno 2 No such file or directory",
    "mmap 19001259081728/0x1148134c4000", "read 4 / 0x4", "execve JUSTRETURN", "select RESTART", "x 0x",
    "x -1 errno 4", "x -1 errno 4   ", "x 1errno 2", "x -1 errno 0x4 Interrupted  ", '"/etc/passwd"', '"a', '""',
    "fd 1 wrote 4 bytes", "fd 0x3 read 1 byte  ", "fd 1 wrote 4 bytesx", "struct stat {dev=1}", "", "   ",
    "stop user", 'resume kernel "select"', "SIGINT caught handler=0x1 mask=0x0", '"netbsd"',
    "stop userX", "resume  kernel", "stop kernel   ", "stop kernel\tx", "resume user  wait", "stopuser",
    "halt user", "stop", '"/usr/bin/w"', "0x0000 6865 6c6c  |hell|", "\tx", "RTLD: loaded",
])


@st.composite
def header_lines(draw):
    parts = [" " * draw(st.integers(0, 3)) + str(draw(st.integers(0, 10**20)))]
    tid = draw(st.sampled_from(["", ":", "/", " "]))
    if tid:
        parts[0] += (tid if tid != " " else " " * draw(st.integers(1, 6))) + str(draw(st.integers(0, 999999)))
    parts.append(" " * draw(st.integers(1, 3)) + draw(comms))
    for _ in range(draw(st.integers(0, 4))):
        parts.append(" " * draw(st.integers(1, 2)) + draw(st.sampled_from(["-", ""])) +
                     f"{draw(st.integers(0, 2**33))}.{draw(st.integers(0, 10**9))}")
    if draw(st.booleans()):
        parts.append(f" {draw(st.integers(0, 64))}")
    parts.append(" " * draw(st.integers(1, 2)) + draw(st.sampled_from(
        ["CALL", "RET", "NAMI", "GIO", "SCTL", "EMUL", "STRU", "CAP", "PFLT", "PRET", "PSIG", "CSW", "USER",
         "ARGS", "ARG", "ENV", "PLDG", "MISC", "MIB", "STRT", "UNKNOWN(7)", "UNKNOWN()", "CALLX", "call"])))
    parts.append(" " * draw(st.integers(0, 3)) + draw(bodies))
    return "".join(parts)


@needs_c
@settings(max_examples=600, deadline=None)
@given(st.lists(header_lines(), min_size=1, max_size=8))
def test_c_framer_equals_grammar_on_generated_headers(lines):
    c, lark = _framed_both(lines)
    assert_frame_equal(c.records, lark.records)
    assert c.rejects == lark.rejects


# -- the Polars join (join_frame) against the record-by-record join, on shuffled real lines ---------
def _with_stamps(rng: random.Random, lines: list[str], mode: str) -> list[str]:
    """The lines, their record headers given -T/-E/-R stamps as kdump.c dumpheader() prints them,
    and the pids of some changed to one of a few (threads that interleave)."""
    out, clock = [], 1_700_000_000.0
    for line in lines:
        m = HEADER_RE.match(line)
        if m is None:
            out.append(line)
            continue
        if rng.random() < 0.4:
            line = line[:m.start(1)] + str(rng.choice([755, 877, 3082])) + line[m.end(1):]
            m = HEADER_RE.match(line)
        step = rng.choice([0.0, 0.000001, 0.25, 3.0])
        clock += step
        stamps = {"T": f"{clock:.6f}", "E": f"{clock - 1_700_000_000:.6f}", "R": f"{step:.6f}"}
        text = "".join(stamps[f] + " " for f in mode)
        out.append(line[:m.start(5)] + text + line[m.start(5):] if mode and m else line)
    return out


def _shuffled_files(seed: int, count: int):
    rng = random.Random(seed)
    pool = [line for p in KDUMP_FILES for line in _lines(p)]
    for _ in range(count):
        start = rng.randrange(len(pool))
        lines = pool[start:start + rng.randrange(20, 120)]          # a real stretch of lines...
        lines += rng.sample(pool, rng.randrange(0, 60))              # ... and lines out of place
        if rng.random() < 0.5:
            rng.shuffle(lines)
        yield _with_stamps(rng, lines, rng.choice(["", "T", "E", "R", "TE", "TER", "ER"]))


@pytest.mark.parametrize("join_slice", [65_536, 7])        # 7: output columns built in many slices
def test_polars_join_equals_reference_join_on_shuffled_real_lines(join_slice, monkeypatch):
    monkeypatch.setattr(_kdump_join, "JOIN_SLICE", join_slice)
    for lines in _shuffled_files(11, 150):
        fast = FORMAT.parse(lines, ParseContext(source_file="s"))
        lark = FORMAT.parse(lines, ParseContext(source_file="s", grammar_only=True))
        assert_frame_equal(fast.events, lark.events)
        assert (fast.rejects, fast.ignored, fast.os) == (lark.rejects, lark.ignored, lark.os)


def test_unicode_digits_in_stamps_read_as_python_reads_them():
    lines = ["   755 uul      ١٧٠٠٠٠٠٠٠٠.٥ CALL  getpid", "   755 uul      ١٧٠٠٠٠٠٠٠١.٥ RET   getpid 12"]
    fast = FORMAT.parse(lines, ParseContext(source_file="u"))
    lark = FORMAT.parse(lines, ParseContext(source_file="u", grammar_only=True))
    assert_frame_equal(fast.events, lark.events)
    assert fast.events.select("ts_ns", "duration_ns").row(0) == (1_700_000_000_500_000_000, 1_000_000_000)


@needs_c
def test_chunks_assemble_to_the_whole(tmp_path, monkeypatch):
    """The driver frames big files in chunks on all cores: chunk boundaries change nothing, and
    parse_file gives the same tables as the grammar-only path."""
    import syspage.parse as parse_stage
    monkeypatch.setattr(parse_stage, "CHUNK_LINES", 40, raising=False)
    for i, lines in enumerate(_shuffled_files(5, 12)):
        path = tmp_path / f"t{i}.kdump.txt"
        path.write_text("\n".join(lines) + "\n")
        fast = parse_stage.parse_file(path, format="kdump", cache=False)
        lark = parse_stage.parse_file(path, format="kdump", cache=False, grammar_only=True)
        assert_frame_equal(fast.events, lark.events)
        assert_frame_equal(fast.rejects, lark.rejects)
        whole = FORMAT.parse(lines, ParseContext(source_file=str(path)))
        data = path.read_bytes()
        cut = data.index(b"\n", len(data) // 2) + 1
        first = data[:cut].count(b"\n") + 1
        parts = [FORMAT.frame_bytes(data[:cut], 0, cut, ParseContext(source_file="x")),
                 FORMAT.frame_bytes(data[cut:], 0, len(data) - cut, ParseContext(source_file="x", first_line_no=first))]
        out = FORMAT.assemble(parts, ParseContext(source_file="x"))
        assert_frame_equal(out.events, whole.events)
        assert (out.rejects, out.ignored) == (whole.rejects, whole.ignored)


@needs_c
def test_c_framer_on_long_adversarial_lines():
    # the shapes tests/test_parse_kdump_grammar.py feeds to the regular expressions, plus long
    # numbers and names where the C scans: same records as the grammar
    n = 50_000
    lines = ["1 " + "a b " * (n // 4), "  123 " + "1.5 " * (n // 4), "  123 " + "1 " * (n // 2),
             "   755 uul      CALL  write(" + "x" * n, "   755 uul      CALL  write(" + "x" * n + ")",
             '   755 uul      NAMI  "' + '"' * n, "   755 uul      RET   read " + "9" * n,
             "   755 uul      RET   read -1 errno 4 " + "Interrupted " * (n // 12),
             "   755 " + "u" * n + " CALL  getpid", "   755 uul      " + "C" * n, "0x" + "f" * n + " x"]
    c, lark = _framed_both(lines)
    assert_frame_equal(c.records, lark.records)
    assert c.rejects == lark.rejects


def test_visdump_lines_a_pager_turned_into_spaces_join_alike():
    # visdump continuation lines lose their TAB in a pasted trace: inside an open "..." block they
    # are data (their reject is dropped), outside it they stay rejected
    lines = ['   755 uul      GIO   fd 1 wrote 40 bytes', '       "hello', '        world é x', '        more"',
             '    garbage', '   755 uul      RET   write 40/0x28', '   755 uul      GIO   fd 1 wrote 4 bytes',
             '       "abc', '   not data"', '    also not', '       "orphan']
    fast = FORMAT.parse(lines, ParseContext(source_file="v"))
    lark = FORMAT.parse(lines, ParseContext(source_file="v", grammar_only=True))
    assert_frame_equal(fast.events, lark.events)
    assert fast.rejects == lark.rejects
    assert fast.events.select("line_no", "line_no_end").rows() == [(1, 4), (6, 6), (7, 9)]
    assert [r[0] for r in fast.rejects] == [5, 10, 11]
