"""C extensions only; all metadata lives in pyproject.toml.

The replay engine is a small C module (see replay/engine/). Python plans, C runs
the loop. The per-OS C files are chosen here at build time, as psutil does
(https://github.com/giampaolo/psutil/blob/master/setup.py): the syscall implementation
is sp_host_linux.c on Linux and sp_host_freebsd.c on FreeBSD.
"""
import sys

from setuptools import Extension, setup

# Bump together with EXPECTED_ENGINE_VERSION in replay/engine.py when the plan format or API changes.
SP_ENGINE_VERSION = "3"

if sys.platform.startswith("linux"):
    HOST_SOURCE = "replay/engine/sp_host_linux.c"
elif sys.platform.startswith("freebsd"):
    HOST_SOURCE = "replay/engine/sp_host_freebsd.c"
else:
    HOST_SOURCE = None  # no syscall implementation for this OS: the engine is not built

ENGINE_SOURCES = [
    "replay/engine/sp_module.c",
    "replay/engine/sp_plan.c",
    "replay/engine/sp_run.c",
    "replay/engine/sp_kside.c",
    "replay/engine/sp_bench.c",
    "replay/engine/sp_page.c", "replay/engine/sp_torture.c", "replay/engine/sp_page_py.c",  # the pages and their locking (issue 8)
]

ext_modules = []
if HOST_SOURCE:
    ext_modules.append(Extension(
        "syspage.replay._engine",
        sources=ENGINE_SOURCES + [HOST_SOURCE],
        depends=["replay/engine/sp_engine.h", "replay/engine/sp_page.h"],
        # -falign-loops=64: every hot loop starts a cache line, so its speed does not follow
        # unrelated edits. Unaligned, a change elsewhere in sp_run.c moved the page-read loop
        # and getpid's page read went from 0.52 to 0.68 ns (same plan, side by side; the bare
        # loop in sp_bench.c stayed at 0.5): the engine-vs-bare-loop target measured the
        # linker's layout. docs/replay.md "Limits".
        extra_compile_args=["-O2", "-falign-loops=64", "-std=gnu11", "-Wall", "-Wextra",
                            "-Wno-unused-parameter"],
        extra_link_args=["-pthread"],
        define_macros=[("SP_ENGINE_VERSION", f'"{SP_ENGINE_VERSION}"')],
    ))

setup(ext_modules=ext_modules)
