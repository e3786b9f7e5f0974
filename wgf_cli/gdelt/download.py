"""Download GDELT 1.0 event files for a date range, verified against GDELT's own indexes.

GDELT publishes, next to the files (``http://data.gdeltproject.org/events/``), two indexes:
``md5sums`` (``<md5>  <file>``, the ``md5sum -c`` format) and ``filesizes``
(``<bytes> <file>``).  :func:`download`

1. reads both (fetched from ``base_url``, or a local copy in ``index_dir``);
2. plans the files of the range: ``YYYY.zip`` (1979-2005), ``YYYYMM.zip`` (2006-01 to
   2013-03), ``YYYYMMDD.export.CSV.zip`` (from 2013-04-01); a planned file absent from the
   index is a *known gap* (``unlisted``), not an error;
3. downloads in parallel (threads), resuming a partial ``.part`` file with an HTTP
   ``Range`` request, retrying transient failures with back-off;
4. verifies the size and the md5 before a file is used (a mismatch is retried, then
   reported as ``corrupt``); a listed file the server does not have (HTTP 404) is a known
   gap (``missing``).  A file already present with the right size and md5 is reused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_URL = "http://data.gdeltproject.org/events/"


def parse_md5sums(text: str) -> dict[str, str]:
    """``{file name: md5}`` from the text of GDELT's ``md5sums`` index."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) == 2 and len(parts[0]) == 32:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def parse_filesizes(text: str) -> dict[str, int]:
    """``{file name: size in bytes}`` from the text of GDELT's ``filesizes`` index."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) == 2 and parts[0].isdigit():
            out[parts[1]] = int(parts[0])
    return out


def parse_masterfilelist(text: str) -> dict[str, tuple[int, str, str]]:
    """GDELT 2.0 ``masterfilelist.txt``: file name -> (bytes, md5, url)."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) == 3 and parts[0].isdigit():
            out[parts[2].rsplit("/", 1)[-1]] = (int(parts[0]), parts[1].lower(), parts[2])
    return out


def file_names(start: dt.date, end: dt.date) -> list[str]:
    """The GDELT 1.0 files that cover the days ``start .. end`` (inclusive), in order."""
    names: list[str] = []
    day = start
    while day <= end:
        if day >= dt.date(2013, 4, 1):
            name = f"{day:%Y%m%d}.export.CSV.zip"
        elif day.year >= 2006:
            name = f"{day:%Y%m}.zip"
        else:
            name = f"{day:%Y}.zip"
        if not names or names[-1] != name:
            names.append(name)
        day += dt.timedelta(days=1)
    return names


@dataclass
class Planned:
    """A file to download: its name, URL, expected size and md5."""
    name: str
    url: str
    size: int
    md5: str


@dataclass
class DownloadReport:
    """What a download did: the files planned, verified, downloaded, reused or missing."""
    planned: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)       # verified, ready to build
    downloaded: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)     # known gaps: not in the index
    missing: list[str] = field(default_factory=list)      # known gaps: listed, not served (404)
    corrupt: list[str] = field(default_factory=list)      # size or md5 wrong after every retry
    errors: dict[str, str] = field(default_factory=dict)
    bytes: int = 0

    def as_dict(self) -> dict:
        """The report as a JSON-ready dict (file names instead of paths)."""
        d = dict(self.__dict__)
        d["files"] = [p.name for p in self.files]
        return d


def _get(url: str, timeout: float, headers: dict | None = None):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout)  # noqa: S310


def read_index(name: str, base_url: str, index_dir: str | Path | None, timeout: float) -> str:
    """The text of index ``name`` (``md5sums`` / ``filesizes``).

    From ``index_dir`` (a file whose name contains ``name``) or fetched from ``base_url``.
    """
    if index_dir:
        matches = sorted(p for p in Path(index_dir).iterdir() if name in p.name)
        if not matches:
            raise FileNotFoundError(f"no '{name}' index file in {index_dir}")
        return matches[0].read_text()
    with _get(base_url.rstrip("/") + "/" + name, timeout) as resp:
        return resp.read().decode()


def md5_of(path: Path) -> str:
    """The md5 hex digest of the file at ``path``."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def fetch(p: Planned, dest: Path, *, retries: int = 3, timeout: float = 60.0, backoff: float = 0.5) -> tuple[str, str]:
    """Download one planned file into ``dest`` (resume, verify).

    Returns (status, detail) with status ``reused | downloaded | missing | corrupt | error``.
    """
    target = dest / p.name
    if target.exists() and target.stat().st_size == p.size and md5_of(target) == p.md5:
        return "reused", ""
    part = dest / f".{p.name}.part"
    detail = ""
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        if have > p.size:
            part.unlink()
            have = 0
        try:
            if have < p.size:
                headers = {"Range": f"bytes={have}-"} if have else {}
                with _get(p.url, timeout, headers) as resp:
                    mode = "ab" if have and resp.status == 206 else "wb"
                    with open(part, mode) as fh:
                        while block := resp.read(1 << 16):
                            fh.write(block)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return "missing", "HTTP 404"
            if exc.code == 416:  # range beyond the end: start over
                part.unlink(missing_ok=True)
            detail = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
        else:
            size = part.stat().st_size
            if size == p.size and md5_of(part) == p.md5:
                part.replace(target)
                return "downloaded", ""
            detail = f"size {size} / {p.size}" if size != p.size else "md5 mismatch"
            if size >= p.size:  # complete but wrong: start again
                part.unlink(missing_ok=True)
        if attempt < retries:
            time.sleep(backoff * 2 ** attempt)
    part.unlink(missing_ok=True)
    return ("corrupt" if "md5" in detail or "size" in detail else "error"), detail


def download(start: dt.date, end: dt.date, dest: str | Path, *, base_url: str = DEFAULT_URL,
             index_dir: str | Path | None = None, workers: int = 4, retries: int = 3, timeout: float = 60.0,
             backoff: float = 0.5, progress=None) -> DownloadReport:
    """Plan, download and verify the files of ``start .. end`` into ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    md5s = parse_md5sums(read_index("md5sums", base_url, index_dir, timeout))
    sizes = parse_filesizes(read_index("filesizes", base_url, index_dir, timeout))
    report = DownloadReport(planned=file_names(start, end))
    plan = []
    for name in report.planned:
        if name in md5s and name in sizes:
            plan.append(Planned(name, base_url.rstrip("/") + "/" + name, sizes[name], md5s[name]))
        else:
            report.unlisted.append(name)
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda p: (p, fetch(p, dest, retries=retries, timeout=timeout, backoff=backoff)), plan)
        for p, (status, detail) in results:
            done += 1
            if status in ("downloaded", "reused"):
                getattr(report, status).append(p.name)
                report.files.append(dest / p.name)
                report.bytes += p.size
            elif status == "missing":
                report.missing.append(p.name)
            elif status == "corrupt":
                report.corrupt.append(p.name)
                report.errors[p.name] = detail
            else:
                report.errors[p.name] = detail
            if progress is not None:
                progress(done, len(plan))
    report.files.sort()
    return report
