"""Rows per second per core of the GDELT reader against pandas' defaults.

A full-volume synthetic GDELT 1.0 daily file (about 200k rows, 58 columns, zipped: the
volume of a real day) is written once.  Then, in alternating rounds in one process, both
contenders read it from the zip on one core:

* ``wgf``: :func:`wgf_cli.gdelt.reader.read_file` -- the zip inflated by libdeflate, the C pass
  over the rows (layout per row, the 20 kept columns typed), the declined lines through
  Arrow's reader, every cleaning rule, typed output; one thread (the md5 the build records
  for its manifest is left out);
* ``pandas``: ``pd.read_csv(path, sep="\\t", header=None)`` with every other option at its
  default (all 58 columns, type inference, default quoting), as common GDELT tools do.

Both run on one core, so rows per second per core is rows over the CPU time each read
consumes (``time.process_time``, medians): its ratio is the speed-up checked against the
target (at least 3x), on the zip (GDELT's form; inflation included) and on the unzipped
``.CSV`` (the parsing alone).  The ratio of median wall times is printed next to it; on a
shared machine it also counts the time a read waits for a core while other processes run.

    python benchmarks/bench_gdelt_reader.py [--quick] [--rounds R]
"""

from __future__ import annotations

import sys
import tempfile
import time

import common
import pandas as pd
import torch

from wgf_cli.gdelt import reader
from wgf_cli.gdelt import synthetic as S

TARGET = 3.0


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    device = common.setup(args)
    per_day = 20_000 if args.quick else 170_000   # x regime volume ~1.2 -> ~200k rows
    with tempfile.TemporaryDirectory() as tmp:
        cfg = S.SyntheticConfig(countries=40, days=1, start="2015-06-08", events_per_day=per_day, seed=0)
        t0 = time.perf_counter()
        _, _, _, files = S.generate(cfg, tmp)
        gen_s = time.perf_counter() - t0
        zipped = files[0].path
        plain = zipped.with_suffix("")          # YYYYMMDD.export.CSV, as GDELT's zip holds it
        plain.write_bytes(reader.read_bytes(zipped))
        rows = files[0].rows
        table = []
        times = {}
        for label, path in (("zip", zipped), ("csv", plain)):
            t_ours, t_theirs, c_ours, c_theirs = [], [], [], []
            for r in range(args.rounds):
                for name in (["wgf", "pandas"] if r % 2 == 0 else ["pandas", "wgf"]):
                    c = time.process_time()
                    t = time.perf_counter()
                    if name == "wgf":
                        out = reader.read_file(path, checksum=False)
                    else:
                        out = pd.read_csv(path, sep="\t", header=None)
                    (t_ours if name == "wgf" else t_theirs).append(time.perf_counter() - t)
                    (c_ours if name == "wgf" else c_theirs).append(time.process_time() - c)
                    if name == "wgf":
                        assert out[2].rows_read == rows, (out[2].rows_read, rows)
                    else:
                        assert len(out) == rows and out.shape[1] == 58
            mo, mt = common.median(t_ours), common.median(t_theirs)
            co, ct = common.median(c_ours), common.median(c_theirs)
            cpu_ratio = ct / co                                           # the rows/s/core ratio
            times[label] = {"wgf": t_ours, "pandas": t_theirs, "wgf_cpu": c_ours, "pandas_cpu": c_theirs}
            table.append({"input": label, "rows": rows, "bytes": path.stat().st_size, "wgf_s": mo, "pandas_s": mt,
                          "wgf_cpu_s": co, "pandas_cpu_s": ct,
                          "wgf_rows_per_s": rows / co, "pandas_rows_per_s": rows / ct, "ratio": mt / mo,
                          "cpu_ratio": cpu_ratio, "target_met": cpu_ratio >= TARGET,
                          "fast_path": reader._fastread is not None, "libdeflate": reader._deflate is not None})
    cols = [("input", "input"), ("rows", "rows"), ("wgf_rows_per_s", "wgf rows/s/core"),
            ("pandas_rows_per_s", "pandas rows/s/core"), ("cpu_ratio", "speed-up (CPU time)"),
            ("ratio", "wall-time ratio"), ("target_met", f">= {TARGET:g}x")]
    print(common.markdown_table(table, cols))
    payload = {"machine": common.machine_info(device, torch.float32), "quick": args.quick, "rounds": args.rounds,
               "generate_s": gen_s, "rows": table, "all_times": times,
               "tables_md": {"reader": common.markdown_table(table, cols)}}
    common.write_json(args.out, "gdelt_reader", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
