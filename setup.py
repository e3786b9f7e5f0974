"""Build hook for the one C extension (the GDELT reader's fast path); everything else is in
pyproject.toml.  ``optional=True``: without a C compiler the package still installs and the
reader uses its pure Arrow path (same results, slower)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("wgf_cli.gdelt._fastread", ["wgf_cli/gdelt/_fastread.c"],
                             extra_compile_args=["-O3"], optional=True)])
