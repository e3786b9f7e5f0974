"""The download source against a local HTTP server on 127.0.0.1 serving fixture files and
GDELT-format md5sums / filesizes indexes; index parsing on the real index excerpts."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from wgf_cli.gdelt import download as DL

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt"


def test_real_index_excerpts():
    md5 = DL.parse_md5sums((FIX / "events_md5sums_excerpt.txt").read_text())
    size = DL.parse_filesizes((FIX / "events_filesizes_excerpt.txt").read_text())
    assert md5["1979.zip"] == "7fb1b6ff781aea3d441abf512dc5e0f9"
    assert size["1979.zip"] == 14276482
    assert set(md5) == set(size)
    assert "20140122.export.CSV.zip" in md5 and "20140123.export.CSV.zip" not in md5   # a known gap
    assert "20221110.export.CSV.zip" in md5                                           # listed, 404 upstream
    names = DL.file_names(dt.date(2014, 1, 21), dt.date(2014, 1, 27))
    assert [n for n in names if n not in md5] == [f"201401{d}.export.CSV.zip" for d in (23, 24, 25)]
    v2 = DL.parse_masterfilelist((FIX / "v2_masterfilelist_excerpt.txt").read_text())
    assert v2["20150218230000.export.CSV.zip"][:2] == (150383, "297a16b493de7cf6ca809a7cc31d0b93")


def test_file_names_follow_gdelt_archive_layout():
    assert DL.file_names(dt.date(2005, 12, 30), dt.date(2006, 2, 1)) == ["2005.zip", "200601.zip", "200602.zip"]
    assert DL.file_names(dt.date(2013, 3, 31), dt.date(2013, 4, 2)) == [
        "201303.zip", "20130401.export.CSV.zip", "20130402.export.CSV.zip"]


class _Server:
    """Serves ``files`` (name -> bytes) with Range support; ``flaky`` names fail once mid-body."""

    def __init__(self, files: dict[str, bytes], flaky: set[str] = frozenset()):
        self.files, self.flaky, self.requests = files, set(flaky), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                outer.requests.append((name, self.headers.get("Range")))
                if name not in outer.files:
                    self.send_error(404)
                    return
                data = outer.files[name]
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in outer.flaky:          # drop the connection half way, once
                    outer.flaky.discard(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/events/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _zip(rows: str, name: str) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, rows)
    return buf.getvalue()


@pytest.fixture
def archive():
    lines = (FIX / "v1_mixed_57_58_100rows.tsv").read_text().splitlines()[40:]
    files = {f"2015060{d}.export.CSV.zip": _zip("\n".join(lines[10 * d: 10 * d + 10]) + "\n",
                                                 f"2015060{d}.export.CSV") for d in range(1, 6)}
    md5 = {n: hashlib.md5(b).hexdigest() for n, b in files.items()}
    md5["20150603.export.CSV.zip"] = "0" * 32                  # the index disagrees: md5 mismatch
    md5["20150605.export.CSV.zip"] = md5["20150605.export.CSV.zip"]
    listed = dict(files)
    served = dict(files)
    del served["20150605.export.CSV.zip"]                      # listed but not served (404)
    del listed["20150604.export.CSV.zip"]                      # served but not listed: a known gap
    md5.pop("20150604.export.CSV.zip")
    index = {"md5sums": "".join(f"{m}  {n}\n" for n, m in sorted(md5.items())).encode(),
             "filesizes": "".join(f"{len(b)} {n}\n" for n, b in sorted(listed.items())).encode()}
    return files, served, index


def test_download_verifies_and_reports_gaps(tmp_path, archive):
    files, served, index = archive
    with _Server({**served, **index}, flaky={"20150602.export.CSV.zip"}) as srv:
        rep = DL.download(dt.date(2015, 6, 1), dt.date(2015, 6, 5), tmp_path / "raw", base_url=srv.url,
                          workers=3, retries=2, timeout=10, backoff=0.01)
        assert rep.planned == [f"2015060{d}.export.CSV.zip" for d in range(1, 6)]
        assert sorted(rep.downloaded) == ["20150601.export.CSV.zip", "20150602.export.CSV.zip"]
        assert rep.unlisted == ["20150604.export.CSV.zip"]
        assert rep.missing == ["20150605.export.CSV.zip"]
        assert rep.corrupt == ["20150603.export.CSV.zip"] and "md5" in rep.errors["20150603.export.CSV.zip"]
        for n in rep.downloaded:
            assert (tmp_path / "raw" / n).read_bytes() == files[n]
        assert not (tmp_path / "raw" / "20150603.export.CSV.zip").exists()
        assert not list((tmp_path / "raw").glob(".*.part"))
        # the flaky file was resumed with a Range request after the dropped connection
        ranges = [r for n, r in srv.requests if n == "20150602.export.CSV.zip"]
        assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
        # the mismatching file was retried, then given up
        assert sum(n == "20150603.export.CSV.zip" for n, _ in srv.requests) == 3
        # a second run reuses the verified files without downloading them again
        before = len(srv.requests)
        rep2 = DL.download(dt.date(2015, 6, 1), dt.date(2015, 6, 2), tmp_path / "raw", base_url=srv.url,
                           retries=0, timeout=10)
        assert sorted(rep2.reused) == sorted(rep.downloaded) and rep2.downloaded == []
        assert [n for n, _ in srv.requests[before:]] == ["md5sums", "filesizes"]


def test_download_with_local_index_copy(tmp_path, archive):
    files, served, index = archive
    idx = tmp_path / "idx"
    idx.mkdir()
    (idx / "events_md5sums_copy.txt").write_bytes(index["md5sums"])
    (idx / "events_filesizes_copy.txt").write_bytes(index["filesizes"])
    with _Server(served) as srv:
        rep = DL.download(dt.date(2015, 6, 1), dt.date(2015, 6, 1), tmp_path / "raw", base_url=srv.url,
                          index_dir=idx, timeout=10)
        assert rep.downloaded == ["20150601.export.CSV.zip"]
        assert [n for n, _ in srv.requests] == ["20150601.export.CSV.zip"]


def test_cli_download_build(tmp_path, archive):
    """`wgf gdelt-build source=download` end to end: gaps in the manifest, verified files built."""
    import json

    from typer.testing import CliRunner

    from wgf_cli.cli import app

    files, served, index = archive
    with _Server({**served, **index}) as srv:
        res = CliRunner().invoke(app, [
            "gdelt-build", "source=download", "source.start=2015-06-01", "source.end=2015-06-05",
            f"source.url={srv.url}", "source.retries=0", "sequences.count=5", "sequences.context=1",
            "descriptors.k=3", "descriptors.countries=[UK]", "workers=1", f"hydra.run.dir={tmp_path / 'run'}", "-q"],
            catch_exceptions=False)
    # the two verified files hold real rows published 2020-07-02 (dated a year earlier: too old)
    # and earlier ones: no 2-day window exists, and the build says so (exit 1) after writing
    assert res.exit_code == 1 and "no usable sequence" in res.output, res.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["files"] == 2 and summary["download_unlisted"] == 1 and summary["download_missing"] == 1
    assert summary["download_corrupt"] == 1 and summary["rows_kept"] == 20
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["download"]["missing"] == ["20150605.export.CSV.zip"]
    assert manifest["dataset"]["source"] == "download"
