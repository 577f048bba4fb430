"""C extensions only; all metadata lives in pyproject.toml.

The replay engine is a small C module (see replay/engine/). Python plans, C runs
the loop. The per-OS C files are chosen here at build time, as psutil does
(https://github.com/giampaolo/psutil/blob/master/setup.py).
"""
import sys

from setuptools import Extension, setup

ENGINE_SOURCES = ["replay/engine/sp_module.c"]
ENGINE_SOURCES += ["replay/engine/sp_page.c"]  # page layout and locking schemes (issue 8)

engine = Extension(
    "syspage.replay._engine",
    sources=ENGINE_SOURCES,
    depends=["replay/engine/sp_engine.h"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    define_macros=[("SP_ENGINE_VERSION", '"1"')],
)

setup(ext_modules=[engine])
