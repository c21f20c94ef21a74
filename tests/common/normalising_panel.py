"""A stand-in panel that serves paths the way real frameworks read them.

It percent-decodes the path, treats a backslash as a slash, resolves dot segments and
merges slashes (what Werkzeug, Express, Rails, PHP's built-in router and most others
end up doing, one way or another), then answers with what it would serve:
`served=/path` plus the raw target and the identity headers it received. Prints its
port on the first line of stdout.

With `--literal` it decodes but neither resolves dot segments nor merges slashes, the
way Flask/Werkzeug routes `/admin/../static/x` to `/admin/<path>`.
"""

import posixpath
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Panel(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        raw = self.path
        if "://" in raw.split("/", 1)[0] or raw.startswith(("http://", "https://")):
            rest = raw.split("://", 1)[1]
            raw = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        path = raw.split("?", 1)[0]
        decoded = urllib.parse.unquote(path).replace("\\", "/")
        if LITERAL:
            served = decoded
        else:
            served = "/" + posixpath.normpath(decoded).lstrip("/")
            if served == "/.":
                served = "/"
        lines = [
            f"served={served}",
            f"raw={self.path}",
            f"host={self.headers.get('Host', '')}",
            f"remote-user={self.headers.get('Remote-User', '')}",
            f"cookie={self.headers.get('Cookie', '')}",
        ]
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = answer

    def log_message(self, *args):
        pass


LITERAL = "--literal" in sys.argv


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Panel)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
