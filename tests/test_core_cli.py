"""The CLI: every subcommand has --help with an example; errors are one line and exit 2."""
import os
import subprocess
import sys

import pytest

from syspage.cli import COMMANDS


def test_top_level_help(run_cli):
    res = run_cli("--help")
    assert res.returncode == 0
    for name in COMMANDS:
        assert name in res.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_subcommand_help_has_an_example(run_cli, name):
    res = run_cli(name, "--help")
    assert res.returncode == 0, res.stderr
    assert "example:" in res.stdout
    assert f"syspage {name}" in res.stdout.split("example:", 1)[1]


def test_usage_error_is_one_line_exit_2(run_cli):
    res = run_cli("parse")  # missing the trace and -o
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("syspage: error:")


def test_library_error_is_one_line_exit_2(run_cli, tmp_path):
    res = run_cli("analyze", tmp_path / "absent.parquet", "-o", tmp_path / "r.html")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("syspage: error:")
    assert res.stdout == ""


def test_no_command_prints_help_and_exits_2(run_cli):
    res = run_cli()
    assert res.returncode == 2
    assert "COMMAND" in res.stdout


def test_engine_loads_and_matches_package():
    from syspage.replay import engine
    mod = engine.load()
    assert mod.clock_now_ns() > 0


@pytest.mark.parametrize("output", ["/proc/x.parquet", "/etc/passwd/x.parquet"])
def test_unwritable_output_is_one_line_exit_2(run_cli, output):
    res = run_cli("scan", "/bin/ls", "-o", output)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("syspage: error:") and output in res.stderr
    assert "Traceback" not in res.stderr


def test_schema_write_names_the_path(tmp_path):
    from syspage import schema
    from syspage.errors import SchemaError
    with pytest.raises(SchemaError, match=r"/proc/nope\.parquet: cannot write"):
        schema.REJECTS.write(schema.REJECTS.empty(), "/proc/nope.parquet")


def test_cli_sets_polars_allocator_before_polars_loads():
    """The jemalloc setting (syspage/cli.py) only works if Polars is loaded after it: importing the
    CLI must not load Polars, and a value the user set wins."""
    code = ("import os, sys; import syspage.cli; "
            "print('polars' in sys.modules); print(os.environ['_RJEM_MALLOC_CONF'])")
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    loaded, conf = out.split()
    assert loaded == "False"
    assert conf == f"narenas:{os.cpu_count()},dirty_decay_ms:1000,muzzy_decay_ms:0"
    env["_RJEM_MALLOC_CONF"] = "narenas:3"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[1] == "narenas:3"


def test_sigterm_cleans_up_a_parse_and_exits_143(tmp_path):
    """timeout(1) or kill in the middle of `syspage parse -o`: the spilled rows (a hidden
    directory beside the output) are removed, no output appears, one line on stderr, 128+15."""
    import itertools
    import time
    from pathlib import Path

    data = Path(__file__).parent / "data"
    body = [ln for p in sorted(data.glob("kdump_*.txt")) if not p.name.endswith(".source.txt")
            for ln in p.read_text().splitlines() if ln.strip()]
    trace = tmp_path / "big.kdump.txt"
    trace.write_text("\n".join(itertools.islice(itertools.cycle(body), 400_000)) + "\n")
    out = tmp_path / "out" / "events.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "syspage", "-q", "parse", str(trace), "--format", "kdump",
                             "-o", str(out), "--no-cache"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".events.parquet.*/kdump-rows-*.arrow")):
        assert proc.poll() is None, "the parse ended before it spilled anything"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.terminate()
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "syspage: error: terminated"
    assert list(out.parent.iterdir()) == []
