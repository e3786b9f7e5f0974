"""The contract between `wgf gdelt-build` (ingestion, :mod:`wgf_cli.gdelt`) and the
forecaster (:mod:`wgf_cli.forecast`): the build folder's format version and file names, and
the 20 CAMEO root codes x 4 QuadClasses that every event cell is counted in.  It is the only
module both packages import.
"""

from __future__ import annotations

#: version of the build folder's layout (``manifest.json`` ``dataset.version``)
DATASET_VERSION = 1

MANIFEST = "manifest.json"
DESCRIPTORS = "descriptors/descriptors.npz"
STANDARD_EVENTS = "descriptors/standard_events.npz"
SEQUENCE_INDEX = "sequences/index.parquet"
SEQUENCES = "sequences/sequences.npz"
ORACLE = "oracle.npz"
EVENTS = "events/"
REJECTS = "rejects/"

#: the CAMEO root codes "01".."20"
ROOTS = [f"{r:02d}" for r in range(1, 21)]
#: QuadClass of each root code: 01-05 verbal cooperation, 06-08 material cooperation,
#: 09-13 verbal conflict, 14-20 material conflict
ROOT_QUAD = {f"{r:02d}": (1 if r <= 5 else 2 if r <= 8 else 3 if r <= 13 else 4) for r in range(1, 21)}
N_ROOT, N_QUAD = 20, 4
#: cells of a day's event histogram: root code x QuadClass, flattened root-major
N_CELLS = N_ROOT * N_QUAD

#: partners per (country, day) in ``descriptors.npz``: ``partners`` [C, D, N_PARTNERS] <U3 FIPS
#: codes of the actor geo countries the cell's events involve, most events first ("" where
#: fewer); the focal country's own code means **domestic** (an actor located in the country);
#: ``partner_counts`` [C, D, N_PARTNERS] int32: the cell's events involving each (0 where "")
N_PARTNERS = 3

#: how ``descriptors.npz`` attributes events to countries (``manifest.json`` dataset.country_by)
COUNTRY_BY = ("action", "actor", "any")

#: the command that makes the build `wgf gdelt-train` reads by default
BUILD_COMMAND = "wgf gdelt-build experiment=gdelt_synthetic"
