"""A tiny static file server with HTTP range requests, bound to 127.0.0.1.

Python's ``http.server`` ignores ``Range``, and the PMTiles reader in the page needs it (it reads
the archive's header, directories and tiles as byte ranges). This subclass answers a single
``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range with 206 and ``Content-Range``; anything it
cannot satisfy gets 416, as a real host would. For ``make serve`` and the browser tests:

    .venv/bin/python -m vacancy.serve --directory results --port 8000
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``"bytes=a-b"`` -> inclusive ``(start, end)`` clipped to ``size``; None if unsatisfiable.

    Raises ValueError for a header this server does not understand (multiple ranges, other
    units), which the handler answers by sending the whole file, as RFC 9110 allows.
    """
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise ValueError(f"unsupported Range {header!r}")
    first, last = match.groups()
    if first == "":                      # suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            return None
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


class RangeHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single byte ranges; quiet unless ``verbose``."""

    verbose = False

    def end_headers(self):
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def send_head(self):
        header = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not header or os.path.isdir(path) or not os.path.isfile(path):
            return super().send_head()
        try:
            handle = open(path, "rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        size = os.fstat(handle.fileno()).st_size
        try:
            span = parse_range(header, size)
        except ValueError:
            handle.close()
            return super().send_head()
        if span is None:
            handle.close()
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        start, end = span
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        handle.seek(start)
        self._remaining = end - start + 1
        return handle

    def copyfile(self, source, outputfile):
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return shutil.copyfileobj(source, outputfile)
        self._remaining = None
        while remaining > 0:
            chunk = source.read(min(65536, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if self.verbose:
            super().log_message(format, *args)


RangeHandler.extensions_map = {**SimpleHTTPRequestHandler.extensions_map,
                               ".pmtiles": "application/octet-stream", ".js": "text/javascript",
                               ".mjs": "text/javascript", ".json": "application/json"}


def make_server(directory, port: int = 0, verbose: bool = False) -> ThreadingHTTPServer:
    """A server on 127.0.0.1 (``port=0``: any free port) serving ``directory``; not started."""
    handler = functools.partial(type("Handler", (RangeHandler,), {"verbose": verbose}),
                                directory=os.fspath(directory))
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve_in_thread(directory, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; return it and its base URL (call ``.shutdown()``)."""
    server = make_server(directory, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", default="results")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    server = make_server(args.directory, args.port, verbose=True)
    print(f"Serving {args.directory} at http://127.0.0.1:{server.server_address[1]}/site/ "
          "(Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
