"""Checks every parse format's tests can reuse (strace, perf trace, kdump, truss, DTrace ...).

- ``accounted_lines(result)``: the invariant of parse/_base.py: every input line is in exactly
  one place (an event's line_no..line_no_end, a summary row, a reject, or counted as ignored).
- ``parse_text(tmp_path, text, format)``: write text to a file and parse it (no cache).
- ``mutations()``: a hypothesis strategy of lines mutated from real ones (fuzzing), and
  ``assert_only_documented_errors``: parsing them may reject lines or raise the documented
  one-line errors (InputError, ParseError), nothing else.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl
from hypothesis import strategies as st

from syspage import parse
from syspage.errors import InputError, ParseError


def accounted_lines(result: parse.ParseResult) -> dict[tuple[str, int], str]:
    """Map (file, line) -> where it went; raises AssertionError if a line is in two places."""
    where: dict[tuple[str, int], str] = {}

    def claim(key, what):
        assert key not in where or where[key] == what, f"line {key} is in two places: {where[key]} and {what}"
        where[key] = what

    ev = result.events
    # several records may come from one line (strace: a clone cut by an attach message);
    # a joined call covers line_no and line_no_end (the lines between belong to others)
    for f, a, b in ev.select("source_file", "line_no", "line_no_end").unique().iter_rows():
        claim((f, a), "event")
        claim((f, b), "event")
    for f, a in result.summary.select("source_file", "line_no").iter_rows():
        claim((f, a), "summary")
    for f, a in result.rejects.select("source_file", "line_no").iter_rows():
        claim((f, a), "reject")
    return where


def assert_every_line_accounted(result: parse.ParseResult) -> None:
    """No line in two places, and every line somewhere: claimed by a row, inside a
    multi-line record (kdump GIO dump lines between line_no and line_no_end), or ignored."""
    where = accounted_lines(result)
    inside = set()
    for f, a, b in result.events.filter(pl.col("line_no_end") > pl.col("line_no") + 1).select(
            "source_file", "line_no", "line_no_end").iter_rows():
        inside.update((f, n) for n in range(a + 1, b))
    accounted = len(set(where) | inside)
    assert accounted + result.lines_ignored >= result.lines_total, (
        f"{result.lines_total - accounted - result.lines_ignored} lines are nowhere "
        f"(in rows/records: {accounted}, ignored: {result.lines_ignored}, total: {result.lines_total})"
    )


def parse_text(tmp_path: Path, text: str | bytes, format: str | None = None, name: str = "trace.txt", **kw):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return parse.parse_file(path, format=format, cache=False, **kw)


def mutations(seed_lines: list[str]):
    """Lines derived from real ones: cut, spliced, with bytes inserted or removed."""
    seeds = st.sampled_from(seed_lines)
    noise = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r\x00"), max_size=12)

    @st.composite
    def mutated(draw):
        line = draw(seeds)
        op = draw(st.sampled_from(["cut", "insert", "delete", "splice", "noise"]))
        if not line:
            return draw(noise)
        i = draw(st.integers(0, len(line)))
        j = draw(st.integers(i, len(line)))
        if op == "cut":
            return line[:i]
        if op == "insert":
            return line[:i] + draw(noise) + line[i:]
        if op == "delete":
            return line[:i] + line[j:]
        if op == "splice":
            other = draw(seeds)
            return line[:i] + other[draw(st.integers(0, len(other))):]
        return draw(noise)

    return mutated()


def assert_only_documented_errors(tmp_path: Path, lines: list[str], format: str) -> parse.ParseResult | None:
    """Parse lines as FORMAT; only rejects or the documented one-line errors may come out."""
    try:
        result = parse_text(tmp_path, "\n".join(lines) + "\n", format=format)
    except (InputError, ParseError) as exc:
        assert "\n" not in str(exc), f"error is not one line: {exc!r}"
        return None
    assert_every_line_accounted(result)
    assert (result.rejects["reason"].str.len_chars() > 0).all()
    return result


def late_resumption_lines() -> list[str]:
    """strace -f -tt lines whose calls resume many blocks later: a futex across the whole trace,
    a clone(CLONE_THREAD) whose return (and so thread 4's group) comes after thread 4's own
    calls, a read whose thread makes another call first (2's read never resumes: both halves
    stay incomplete), a midnight wrap, and a -k frame after a resumption."""
    lines = ["1 23:59:58.000000 futex(0x1, FUTEX_WAIT, 0, NULL <unfinished ...>",
             "2 23:59:58.100000 read(3,  <unfinished ...>",
             "2 23:59:58.200000 getpid() = 2"]
    lines += [f"3 23:59:59.{i:06d} getppid() = 1" for i in range(40)]
    lines += ["2 23:59:59.500000 <... read resumed>\"x\", 1) = 1",
              "3 00:00:00.100000 clone(child_stack=NULL, flags=CLONE_VM|CLONE_THREAD <unfinished ...>"]
    lines += [f"4 00:00:00.2{i:05d} gettid() = 4" for i in range(40)]
    lines += ["3 00:00:00.300000 <... clone resumed>) = 4",
              " > /usr/lib/libc.so.6(__clone+0x44) [0x10]",
              "1 00:00:01.000000 <... futex resumed>) = 0"]
    return lines
