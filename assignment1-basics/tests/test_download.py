"""Resumable, atomic downloads against a local HTTP server that honours Range requests."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cs336_basics.download import download_datasets
from cs336_basics.toolkit.data_paths import DownloadError, download_file

PAYLOAD = bytes(range(256)) * 400
FILES = {"/plain.txt": PAYLOAD, "/packed.txt.gz": gzip.compress(PAYLOAD)}


class RangeHandler(BaseHTTPRequestHandler):
    requests: list[str | None] = []

    def do_GET(self):
        body = FILES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        header = self.headers.get("Range")
        RangeHandler.requests.append(header)
        start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_resumes_a_partial_file(tmp_path, server):
    dest = tmp_path / "plain.txt"
    (tmp_path / "plain.txt.part").write_bytes(PAYLOAD[:1000])
    RangeHandler.requests.clear()
    download_file(f"{server}/plain.txt", dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert RangeHandler.requests == ["bytes=1000-"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]


def test_gzip_download_is_decompressed_and_existing_files_are_kept(tmp_path, server):
    dest = download_file(f"{server}/packed.txt.gz", tmp_path / "packed.txt", progress=False)
    assert dest.read_bytes() == PAYLOAD
    RangeHandler.requests.clear()
    download_file(f"{server}/packed.txt.gz", dest, progress=False)
    assert RangeHandler.requests == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["packed.txt"]


def test_http_errors_and_no_network_are_clear(tmp_path, server):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{server}/missing.txt", tmp_path / "missing.txt", progress=False)
    with pytest.raises(DownloadError, match="are you online"):
        download_file("http://127.0.0.1:9/x.txt", tmp_path / "x.txt", progress=False, timeout=5)
    assert not (tmp_path / "x.txt").exists()


def test_unknown_dataset_name_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        download_datasets(tmp_path, ["tinystories", "wikitext"])
