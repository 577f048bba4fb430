"""kdump: the regex fast path equals the Lark grammar (every corpus line, generated lines and
mutated lines), generated valid lines parse back to what was generated, and no input crashes."""
from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings, strategies as st

from syspage.parse._base import ParseContext
from syspage.parse._kdump import FORMAT, grammar_line, read_line
from syspage.parse._kdump_records import _fast_record

DATA = Path(__file__).parent / "data"
CORPUS = [line for p in sorted(DATA.glob("*.txt")) if not p.name.endswith(".source.txt")
          for line in p.read_text(errors="replace").splitlines()]


def test_fast_path_equals_grammar_on_every_corpus_line():
    fast_hits = 0
    for line in CORPUS:
        fast = _fast_record(line)
        if fast is not None:
            fast_hits += 1
            assert fast == grammar_line(line), line
    assert fast_hits > 300          # the fast path does carry the kdump files


# -- generated lines, built with kdump.c's formats ------------------------------------------
names = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
comms = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,18}", fullmatch=True)
numbers = st.one_of(st.integers(0, 2**40).map(str), st.integers(0, 2**48).map(hex))
args = st.lists(st.one_of(numbers, st.sampled_from(["AT_FDCWD", "0x3<PROT_READ|PROT_WRITE>", "<unused>0",
                                                    "2.12<vm.malloc_conf>", "-1"])), max_size=6).map(",".join)


@st.composite
def kdump_lines(draw):
    pid = draw(st.integers(1, 99999))
    tid = draw(st.none() | st.integers(100000, 999999))
    comm = draw(comms)
    nstamps = draw(st.integers(0, 3))
    stamps = [f"{draw(st.integers(0, 2**31))}.{draw(st.integers(0, 999999)):06d}" for _ in range(nstamps)]
    rtype = draw(st.sampled_from(["CALL", "RET", "NAMI", "GIO", "SCTL", "CAP", "CSW", "EMUL", "STRU", "PSIG"]))
    expect = {}
    if rtype == "CALL":
        name = draw(names)
        a = draw(st.none() | args)
        body = name + (f"({a})" if a is not None else "")
        expect = {"name": name, "text": f"({a})" if a is not None else None}
    elif rtype == "RET":
        name = draw(names)
        kind = draw(st.sampled_from(["value", "hex", "errno", "JUSTRETURN", "RESTART"]))
        if kind == "value":
            v = draw(st.integers(-(2**40), 2**40))
            body, expect = f"{name} {v}", {"ret": str(v)}
        elif kind == "hex":
            v = draw(st.integers(10, 2**46))
            body, expect = f"{name} {v}/{hex(v)}", {"ret": str(v), "text": f"{v}/{hex(v)}"}
        elif kind == "errno":
            e = draw(st.integers(1, 97))
            body, expect = f"{name} -1 errno {e} Some message", {"ret": "-1", "errno": str(e), "errmsg": "Some message"}
        else:
            body, expect = f"{name} {kind}", {"ret": kind}
        expect["name"] = name
    elif rtype in ("NAMI", "SCTL", "EMUL"):
        body = '"' + draw(st.from_regex(r"[a-z./_0-9]{1,30}", fullmatch=True)) + '"'
        expect = {"text": body}
    elif rtype == "GIO":
        body = f"fd {draw(st.integers(0, 999))} {draw(st.sampled_from(['read', 'wrote']))} {draw(st.integers(0, 10**6))} bytes"
        expect = {"text": body}
    elif rtype == "CSW":
        body = f'{draw(st.sampled_from(["stop", "resume"]))} {draw(st.sampled_from(["user", "kernel"]))} "select"'
        expect = {"text": body}
    else:
        body = draw(st.from_regex(r"[a-zA-Z][a-zA-Z0-9 :,{}=_.]{0,40}[a-z0-9}]", fullmatch=True))
        expect = {"text": body}
    line = f"{pid:6d} " + (f"{tid:6d} " if tid else "") + f"{comm:<8} " + "".join(s + " " for s in stamps)
    line += f"{rtype:<4}  {body}"
    return line, dict(rtype=rtype, pid=pid, tid=tid, comm=comm, stamps=tuple(stamps), **expect)


@settings(max_examples=400, deadline=None)
@given(kdump_lines())
def test_generated_lines_parse_back(case):
    line, expect = case
    got = grammar_line(line)
    assert not isinstance(got, str), (line, got)
    for key, value in expect.items():
        assert getattr(got, key) == value, (line, key, getattr(got, key), value)
    fast = _fast_record(line)
    assert fast is None or fast == got


# -- fuzz: mutated lines give a record or a reject reason, never an exception -----------------
def mutate(rng: random.Random, line: str) -> str:
    op = rng.randrange(5)
    i = rng.randrange(len(line) + 1)
    if op == 0:
        return line[:i]                                            # cut off
    if op == 1:
        return line[:i] + rng.choice(" \t\"()<>/:0aZ\x00é") + line[i:]
    if op == 2:
        return line[:i] + line[i + 1:]
    if op == 3:
        return line.replace(" ", "\t", 1)
    return "".join(rng.sample(line, len(line)))


def test_fuzzed_lines_never_crash_and_fast_agrees():
    rng = random.Random(1234)
    kdump = [l for p in sorted(DATA.glob("kdump_*.txt")) if not p.name.endswith(".source.txt")
             for l in p.read_text().splitlines() if l.strip()]
    for _ in range(4000):
        line = mutate(rng, rng.choice(kdump))
        got = read_line(line)
        assert isinstance(got, str) or got.rtype
        fast = _fast_record(line)
        if fast is not None:
            assert fast == grammar_line(line), line


def test_fuzzed_files_account_for_every_line():
    rng = random.Random(99)
    lines = (DATA / "kdump_openbsd_cY81x-attended-w.txt").read_text().splitlines()
    for _ in range(20):
        mutated = [mutate(rng, l) if rng.random() < 0.2 else l for l in lines]
        out = FORMAT.parse(mutated, ParseContext(source_file="fuzz"))
        covered = {r[0] for r in out.rejects}
        for a, b in out.events.select("line_no", "line_no_end").iter_rows():
            covered.update(range(a, b + 1))
        blank = sum(1 for l in mutated if not l.strip())
        assert len(covered) + blank == len(mutated) and out.ignored == blank
        assert all(isinstance(r[2], str) and r[2] for r in out.rejects)


def test_binary_junk_is_rejected_not_fatal():
    junk = ["\x00\x01\x02", "\udcff\udcfe", "   755 uul      CALL  chdir(0x6002", "é" * 5000]
    out = FORMAT.parse(junk, ParseContext(source_file="junk"))
    assert len(out.rejects) == 4 and out.events.height == 0
    assert out.rejects[-1][2] == "prose around a pasted trace"
    assert out.rejects[2][2].startswith("kdump CALL record")


def test_long_adversarial_lines_are_read_in_linear_time():
    # shapes that made unbounded patterns backtrack (a 10 kB line of numbers took 12 s before the
    # header's command name and timestamps were bounded); each of these must come back promptly
    from syspage.parse import _dtrace, _dtruss, _truss
    n = 200_000
    lines = ["1 " + "a b " * (n // 4), "  123 " + "1.5 " * (n // 4), "  123 " + "1 " * (n // 2),
             "   755 uul      CALL  write(" + "x" * n, "f(" + ") " * (n // 2), "sp1\t" + "1\t" * (n // 2),
             "f(x)" + " = 1" * (n // 4), '   755 uul      NAMI  "' + '"' * n]
    for mod in (read_line, _truss.read_line, _dtruss.read_line, _dtrace.read_line):
        for line in lines:
            got = mod(line)
            assert got is not None
