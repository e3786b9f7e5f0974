"""Peak memory and time of `wgf gdelt-build` on an input whose SQLDATEs span 1979-2020, against
the same build without the spread rows.

Issue 19 observed a folder of a few MB (a daily file whose backfile rows were dated 1982) grow
to 23 GB: the day axis ran 1979-2020 for every country.  Here two inputs are built, each in a
fresh process (peak RSS from ``resource.getrusage``), alternating over rounds:

* ``core``: 31 synthetic GDELT 1.0 daily files of March 2020 (``--rows`` rows a day, the 40-country panel);
* ``spread``: the same files plus one file of 57-column backfile rows, ``--backfile`` rows a
  month from 1979-01 to 2019-12 (DATEADDED 20130203), each with its own SQLDATE.

With the automatic date window both builds have the same 31-day axis; the spread rows are
only counted (``rows_outside_window``), file by file from their date columns.  The ratio of
peak RSS (spread / core) is checked against 1.25: memory is bounded by one month of events
plus the output arrays, whatever the spread of the dates.

    python benchmarks/bench_gdelt_build_window.py [--quick] [--rounds R]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import torch

from wgf_cli.gdelt import reader
from wgf_cli.gdelt import synthetic as S

TARGET = 1.25

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from wgf_cli.gdelt import build as B, descriptors as Dm, embed
inputs = [Path(p) for p in json.loads(sys.argv[1])]
t = time.perf_counter()
vocab = Dm.vocabulary(embed.HashEmbedder(64))
res = B.build(inputs, B.BuildOptions(out_dir=Path(sys.argv[2]), countries=None, min_median_events=1, k=8,
                                     kmeans_iters=4, context=20, sequences=1000), vocab=vocab)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_s": time.perf_counter() - t, "peak_rss_mb": rss,
                  "days": res.summary["days"], "countries": res.summary["countries"],
                  "rows_read": res.summary["rows_read"], "rows_outside_window": res.summary["rows_outside_window"],
                  "descriptor_mb": sum(a.nbytes for a in res.descriptors.arrays().values()) / 2**20}))
"""


def _spread(path: Path, template: str, per_month: int) -> int:
    f0 = template.split("\t")[:57]
    f0[57 - 1] = "20130203"
    out, gid = [], 900_000_000
    for y in range(1979, 2020):
        for m in range(1, 13):
            for j in range(per_month):
                f = list(f0)
                day = y * 10000 + m * 100 + 1 + j % 28
                f[0], f[1], f[2], f[3], f[4] = str(gid), str(day), str(day // 100), str(y), f"{y}.5000"
                out.append("\t".join(f))
                gid += 1
    path.write_text("\n".join(out) + "\n")
    return len(out)


def _child(inputs: list[Path], out: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps([str(p) for p in inputs]), str(out)],
                         check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rows", type=int, default=None, help="events a day of the core files")
    p.add_argument("--backfile", type=int, default=None, help="backfile rows a month, 1979-2019")
    args = p.parse_args(argv)
    device = common.setup(args)
    per_day = args.rows or (300 if args.quick else 3000)
    per_month = args.backfile or (10 if args.quick else 100)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = S.SyntheticConfig(countries=40, days=31, start="2020-03-01", events_per_day=per_day, seed=0)
        _, _, _, files = S.generate(cfg, tmp / "raw")
        core = [f.path for f in files]
        template = reader.read_bytes(core[0]).split(b"\n", 1)[0].decode()
        spread_file = tmp / "backfile_1979_2019.tsv"
        n_spread = _spread(spread_file, template, per_month)
        runs: dict[str, list[dict]] = {"core": [], "spread": []}
        for r in range(args.rounds):
            for name in (["core", "spread"] if r % 2 == 0 else ["spread", "core"]):
                inputs = core + ([spread_file] if name == "spread" else [])
                runs[name].append(_child(inputs, tmp / f"{name}{r}"))
    table = []
    for name, rs in runs.items():
        table.append({"input": name, "rows_read": rs[0]["rows_read"], "days": rs[0]["days"],
                      "countries": rs[0]["countries"], "rows_outside_window": rs[0]["rows_outside_window"],
                      "descriptor_mb": rs[0]["descriptor_mb"],
                      "peak_rss_mb": common.median([x["peak_rss_mb"] for x in rs]),
                      "wall_s": common.median([x["wall_s"] for x in rs])})
    ratio = table[1]["peak_rss_mb"] / table[0]["peak_rss_mb"]
    for row in table:
        row["rss_ratio"] = row["peak_rss_mb"] / table[0]["peak_rss_mb"]
        row["target_met"] = row["rss_ratio"] <= TARGET
    cols = [("input", "input"), ("rows_read", "rows read"), ("rows_outside_window", "rows outside the window"),
            ("days", "day axis"), ("countries", "countries"), ("descriptor_mb", "descriptor arrays MB"),
            ("peak_rss_mb", "peak RSS MB"), ("rss_ratio", "RSS / core"), ("wall_s", "wall s"),
            ("target_met", f"<= {TARGET:g}x")]
    print(common.markdown_table(table, cols))
    payload = {"machine": common.machine_info(device, torch.float32), "quick": args.quick, "rounds": args.rounds,
               "rows_per_day": per_day, "backfile_rows_per_month": per_month, "spread_rows": n_spread,
               "rss_ratio": ratio, "rows": table, "runs": runs,
               "tables_md": {"window": common.markdown_table(table, cols)}}
    common.write_json(args.out, "gdelt_build_window", payload)
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    t0 = time.perf_counter()
    sys.exit(main())
