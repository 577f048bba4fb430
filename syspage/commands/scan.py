"""syspage scan: find ELF binaries that call what a shared page would serve (issue 9)."""
from __future__ import annotations

HELP = "scan ELF binaries for the page-eligible calls they import or define"
EXAMPLE = ("  syspage scan /usr/bin /usr/lib -o scan.parquet\n"
           "  syspage scan --all ./build/myprog")


_OLD_PATH_SHORT = {
    "static binary: its embedded libc makes the system calls itself": "static",
    "imports sysctl(3) directly: the MIB names are only known at run time": "sysctl(3)",
    "imports syscall(2): may issue eligible calls by number": "syscall(2)",
}


def _names(symbols: list[str]) -> str:
    return " ".join(sorted({s.split("@", 1)[0] for s in symbols}))


def add_arguments(p):
    p.add_argument("paths", nargs="+", help="files or directories (recursive; symlinked directories are not followed)")
    p.add_argument("-o", "--output", help="write the table as .parquet (scan/1, problems beside it) or .csv")
    p.add_argument("--all", action="store_true", help="list every ELF file, not only those that use page calls")
    p.add_argument("-j", "--jobs", type=int, default=None, help="worker processes (default: one per CPU)")


def run(args, ui):
    import os

    from syspage.collect.scan import scan_paths, write
    from syspage.errors import ScanError

    # A path named on the command line that does not exist is a usage error (exit 2); what a
    # walk finds broken inside a directory is a warning line and the scan goes on.
    for path in args.paths:
        if not os.path.lexists(path):
            raise ScanError(f"{path}: no such file or directory")

    with ui.progress("scanning") as progress:
        result = scan_paths(args.paths, workers=args.jobs, progress=progress)
    b = result.binaries
    shown = b if args.all else b.filter(b["uses_page_calls"] | b["old_path"].is_not_null() | (b["defines"].list.len() > 0))
    rows = [[r["path"], f"{r['kind']} {r['elf_class']}-bit {r['endian'][0]}e {r['os']}",
             _names(r["imports"]) or ("(static: imports unseen)" if r["static"] else ""),
             _names(r["defines"]), _OLD_PATH_SHORT.get(r["old_path"], r["old_path"] or "")]
            for r in shown.iter_rows(named=True)]
    ui.table("ELF binaries and the page-eligible functions they use (versions and build-ids: -o FILE)",
             ["path", "kind", "imports", "defines", "old path"], rows)
    benefit = int(b["uses_page_calls"].sum()) if b.height else 0
    old = int(b["old_path"].is_not_null().sum()) if b.height else 0
    ui.info(f"{result.files_seen} files: {b.height} ELF, {result.not_elf} not ELF, {result.problems.height} unreadable; "
            f"{benefit} import page-eligible functions, {old} would keep the old path")
    for row in result.problems.head(20).iter_rows(named=True):
        ui.warn(f"{row['path']}: {row['reason']}")
    if result.problems.height > 20:
        ui.warn(f"... and {result.problems.height - 20} more problems" + (f" (all in {args.output})" if args.output else ""))
    if args.output:
        for path in write(result, args.output):
            ui.info(f"wrote {path}")
    return 0
