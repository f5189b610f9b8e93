"""A test's own image server on a loopback address (127.0.0.1 or ::1): serves a folder's files, and the shapes
a hostile or broken URL takes (a redirect, an endless body, a slow drip). Records every path it is asked for,
so that a test can show a refused URL was never fetched."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlsplit


class ImageServer:
    def __init__(self, folder: Path, host: str = "127.0.0.1") -> None:
        self.folder = folder
        self.asked: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.asked.append(self.path)
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if parts.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", query["to"][0])
                    self.end_headers()
                elif parts.path == "/endless":  # no length, never stops
                    self.send_response(200)
                    self.end_headers()
                    chunk = b"\0" * 65536
                    try:
                        while True:
                            self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                elif parts.path == "/slow":  # a byte a second
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    try:
                        for _ in range(1000):
                            self.wfile.write(b"\0")
                            self.wfile.flush()
                            time.sleep(1.0)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                else:
                    path = server.folder / parts.path.lstrip("/")
                    if not path.is_file():
                        self.send_response(404)
                        self.end_headers()
                        return
                    data = path.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        self.httpd = Server((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.host = host
        self.base = f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/"

    @property
    def trusted(self) -> str:
        """The entry `IMAGEREWARD_TRUSTED_URL_HOSTS` takes for this server."""
        return f"{'[' + self.host + ']' if ':' in self.host else self.host}:{self.port}"


@contextmanager
def image_server(folder: Path, host: str = "127.0.0.1") -> Iterator[ImageServer]:
    server = ImageServer(folder, host)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
