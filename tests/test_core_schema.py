"""The events/summary/rejects schemas: round trip, version and shape checks, and the docs."""
import re

import polars as pl
import pytest

from syspage import schema
from syspage.errors import SchemaError

from conftest import REPO


def _one_event():
    return schema.EVENTS.conform(pl.DataFrame({
        "source_format": ["strace"], "os": ["linux"], "source_file": ["t.txt"],
        "line_no": [1], "line_no_end": [1], "ts_ns": [1_700_000_000_000_000_000], "ts_clock": ["epoch"],
        "pid": [42], "tid": [42], "kind": ["call"], "syscall": ["getpid"], "syscall_raw": ["getpid"],
        "args_raw": [""], "ret": [42], "ret_raw": ["42"], "duration_ns": [1500], "incomplete": [False],
        "page_class": ["proc_ro"], "page_access": ["read"],
    }))


def test_round_trip_keeps_rows_and_tag(tmp_path):
    df = _one_event()
    path = schema.EVENTS.write(df, tmp_path / "e.parquet", extra_metadata={"trace_sha256": "abc"})
    assert schema.read_tag(path) == "events/1"
    assert schema.read_metadata(path)["trace_sha256"] == "abc"
    back = schema.EVENTS.read(path)
    assert back.equals(df)


def test_other_version_is_rejected_with_clear_message(tmp_path):
    path = tmp_path / "old.parquet"
    _one_event().write_parquet(path, metadata={schema.METADATA_KEY: "events/0"})
    with pytest.raises(SchemaError, match=r"holds a events/0 table, this syspage reads events/1.*re-run"):
        schema.EVENTS.read(path)


def test_other_table_is_rejected(tmp_path):
    path = schema.REJECTS.write(schema.REJECTS.empty(), tmp_path / "r.parquet")
    with pytest.raises(SchemaError, match="holds a rejects/1 table"):
        schema.EVENTS.read(path)


def test_untagged_parquet_is_rejected(tmp_path):
    path = tmp_path / "plain.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(path)
    with pytest.raises(SchemaError, match="untagged"):
        schema.EVENTS.read(path)


def test_right_tag_wrong_shape_is_rejected(tmp_path):
    path = tmp_path / "shape.parquet"
    _one_event().drop("errno").write_parquet(path, metadata={schema.METADATA_KEY: "events/1"})
    with pytest.raises(SchemaError, match=r"missing \['errno'\]"):
        schema.EVENTS.read(path)


def test_not_parquet_and_missing_file(tmp_path):
    bogus = tmp_path / "x.parquet"
    bogus.write_text("hello")
    with pytest.raises(SchemaError, match="not a Parquet file"):
        schema.EVENTS.read(bogus)
    with pytest.raises(SchemaError, match="no such file"):
        schema.EVENTS.read(tmp_path / "absent.parquet")


def test_conform_refuses_unknown_columns():
    with pytest.raises(SchemaError, match="unexpected columns"):
        schema.EVENTS.conform(pl.DataFrame({"bogus": [1]}))


@pytest.mark.parametrize("spec", list(schema.TABLES.values()), ids=lambda s: s.tag)
def test_every_column_is_documented(spec):
    doc = (REPO / "docs" / "schema.md").read_text()
    section = doc.split(f"## `{spec.tag}`", 1)
    assert len(section) == 2, f"docs/schema.md has no section for {spec.tag}"
    body = section[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \| ([\w()]+) \|", body, flags=re.M)
    assert [name for name, _ in documented] == list(spec.columns)
    for name, dtype in documented:
        assert dtype == str(spec.columns[name]), f"{name}: docs say {dtype}, code says {spec.columns[name]}"
