"""Build hook: what pyproject.toml cannot say declaratively.

* ``conf/`` (the Hydra configs, at the top level of the repository) ships inside the wheel as
  the package data ``wgf_cli/conf`` (a ``package_dir`` mapping); an installed ``wgf`` finds it
  through Hydra's ``pkg://wgf_cli.conf`` search path (:mod:`wgf_cli.catalog`).
* The one C extension, the GDELT reader's fast path: ``optional=True``, so without a C
  compiler the package still installs and the reader uses its pure Arrow path (same results,
  slower).
"""

from pathlib import Path

from setuptools import Extension, find_namespace_packages, setup

packages = [p for p in find_namespace_packages(include=["wgf_cli", "wgf_cli.*"]) if "__pycache__" not in p]
# conf/ and each of its folders (config groups) as data-only packages under wgf_cli.conf
conf = ["wgf_cli.conf", *sorted("wgf_cli.conf." + ".".join(d.relative_to("conf").parts)
                                for d in Path("conf").rglob("*") if d.is_dir() and "__pycache__" not in d.parts)]

setup(
    packages=[*packages, *conf],
    package_dir={"wgf_cli.conf": "conf"},
    package_data={**{c: ["*.yaml"] for c in conf},
                  "wgf_cli.gdelt": ["lookups/*"], "wgf_cli.gdelt.lookups": ["*"]},
    ext_modules=[Extension("wgf_cli.gdelt._fastread", ["wgf_cli/gdelt/_fastread.c"],
                           extra_compile_args=["-O3"], optional=True)],
)
