#!/usr/bin/env python3
"""Differential test of canonical_target (src/http/target.rs) against real nginx's $uri.

Starts a private nginx (foreground, master_process off, everything under a temp
prefix) on a free loopback port whose `location /` answers `return 200 "$uri";`,
generates N seeded random hostile request targets, runs the `canon_diff` driver once
over all of them and sends every target the gateway accepts to nginx over a few
pipelined keep-alive HTTP/1.1 connections. For each one it checks that

    unquote_to_bytes(canonical_path) == nginx's $uri (as bytes)

Both keep a trailing '/', both merge slashes and resolve dot segments, nginx decodes
every escape. A target the gateway accepts but nginx answers with an error is counted
as "refused by nginx only" and a few are shown; it is not a failure (the gateway is
allowed to be more permissive only where nginx is stricter). Exit status 1 only when
both accept a target and the paths differ.

Usage:
    rustc --edition 2021 -O fuzz/canon_diff.rs -o /tmp/canon_diff
    python3 fuzz/nginx_diff.py [N=100000] [--seed S] [--bin /tmp/canon_diff]
                               [--nginx /usr/sbin/nginx]
"""

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import unquote_to_bytes

# Weighted building blocks. Only bytes nginx accepts in a request line: no space,
# no control characters, no '#'.
TOKENS = [
    ("/", 30), ("//", 6), ("///", 1), (".", 10), ("..", 10), ("...", 2),
    ("%2e", 6), ("%2E", 4), ("%2e%2e", 4), ("%2E%2e", 2), (".%2e", 3), ("%2e.", 3),
    ("%2f", 1), ("%2F", 1), ("%5c", 1), ("%00", 1), ("%25", 3), ("%252e", 1),
    ("%252f", 1), ("%25%32%66", 1), ("%41", 2), ("%61", 2), ("%7e", 2), ("%7E", 2),
    ("%2d", 1), ("%5f", 1), ("%5F", 1), ("%30", 1),
    ("%3b", 2), ("%3B", 1), ("%3f", 2), ("%3F", 1), ("%23", 2), ("%20", 2), ("%2b", 1),
    ("%0d%0a", 1), ("%09", 1), ("%7f", 1),
    ("%c3%a9", 3), ("%C3%A9", 2), ("%e6%97%a5", 1), ("%f0%9f%98%80", 1),
    ("%C3", 1), ("%a9", 1), ("%e2%82", 1), ("%ff", 1), ("%80", 1),
    ("a", 12), ("admin", 8), ("static", 6), ("B", 4), ("x.css", 3), ("0", 2), ("42", 2),
    ("~", 3), ("-", 3), ("_", 3), ("+", 1),
    (";", 4), (";x", 3), ("..;", 1), (".;", 1), ("=", 1), ("!", 1), ("@", 1), (":", 1),
    ("$", 1), ("&", 1), ("'", 1), ("(", 1), (")", 1), ("*", 1), (",", 1),
    ("é", 3), ("日本", 2), ("\U0001f600", 1), ('"', 1), ("<", 1), (">", 1), ("[", 1),
    ("]", 1), ("|", 1), ("{", 1), ("}", 1), ("^", 1), ("`", 1),
    ("\\", 1), ("?", 2), ("?q=1", 2), ("?a=/../b&c=%2f", 1), ("?x?y", 1),
    ("%", 1), ("%z", 1), ("%2", 1),
]
TOKEN_TEXT = [t for t, _ in TOKENS]
TOKEN_WEIGHTS = [w for _, w in TOKENS]
HEX = "0123456789abcdefABCDEF"
# Printable ASCII that nginx takes in a request line ('#' excluded).
PRINTABLE = [chr(c) for c in range(0x21, 0x7F) if chr(c) != "#"]

REALISTIC_SEGMENTS = [
    "static", "css", "js", "img", "api", "v1", "v2", "users", "42", "admin",
    "settings", "login", "logout", "index.html", "app.min.js", "style.css",
    "favicon.ico", "robots.txt", ".well-known", "acme-challenge", "assets",
    "fonts", "Roboto-Regular.woff2", "user_profile", "~alice", "docs", "README.md",
]
REALISTIC_QUERIES = [
    "q=search+term", "page=2&sort=desc", "next=/admin/settings", "v=1.2.3",
    "redirect=https%3A%2F%2Fexample.test%2F", "a=1&b=2&c=", "token=abc.def-ghi_jkl",
]


def random_token(rng):
    roll = rng.random()
    if roll < 0.06:
        return "%" + rng.choice(HEX) + rng.choice(HEX)
    if roll < 0.08:
        return rng.choice(PRINTABLE)
    return rng.choices(TOKEN_TEXT, TOKEN_WEIGHTS)[0]


def realistic_target(rng):
    segments = [rng.choice(REALISTIC_SEGMENTS) for _ in range(rng.randrange(0, 5))]
    path = "/" + "/".join(segments)
    if segments and rng.random() < 0.2:
        path += "/"
    if rng.random() < 0.3:
        path += "?" + rng.choice(REALISTIC_QUERIES)
    return path.encode("ascii")


def random_target(rng):
    """One target as bytes; never contains space, control bytes or '#'."""
    if rng.random() < 0.1:
        return realistic_target(rng)
    text = "/" + "".join(random_token(rng) for _ in range(rng.randrange(0, 14)))
    if rng.random() < 0.02:
        text = text[1:] or "x"
    return text.encode("utf-8")


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from canon_diff import run_driver  # noqa: E402  (the same driver protocol)


# --- nginx -----------------------------------------------------------------------

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{
    worker_connections 64;
}}
http {{
    access_log off;
    default_type text/plain;
    merge_slashes on;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name _;
        merge_slashes on;
        location / {{
            return 200 "$uri";
        }}
    }}
}}
"""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_nginx(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_nginx(nginx, workdir):
    """Starts nginx on a free port; returns (process, port). Retries on a port race."""
    for _ in range(5):
        port = free_port()
        conf = os.path.join(workdir, "nginx.conf")
        with open(conf, "w", encoding="ascii") as handle:
            handle.write(NGINX_CONF.format(dir=workdir, port=port))
        stderr_path = os.path.join(workdir, "stderr.log")
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(
                [nginx, "-e", os.path.join(workdir, "error.log"), "-p", workdir, "-c", conf],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return proc, port
            except OSError:
                time.sleep(0.05)
        stop_nginx(proc)
        with open(stderr_path, "rb") as stderr:
            err = stderr.read().decode("utf-8", "replace")
        with open(os.path.join(workdir, "error.log"), "ab+") as log:
            log.seek(0)
            err += log.read().decode("utf-8", "replace")
        if "Address already in use" not in err:
            sys.exit(f"nginx did not start:\n{err}")
    sys.exit("nginx did not start: no free port after 5 tries")


# --- HTTP client -----------------------------------------------------------------

class Responses:
    """Incremental parser for a stream of HTTP/1.1 responses with Content-Length."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data

    def next(self):
        """Returns (status, body, close) for one complete response, or None."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        length = 0
        close = False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                close = True
            elif name == "transfer-encoding":
                raise RuntimeError("chunked response from nginx not supported")
        if len(self.buf) < end + 4 + length:
            return None
        body = self.buf[end + 4:end + 4 + length]
        self.buf = self.buf[end + 4 + length:]
        return status, body, close


def query_nginx(port, targets, results, batch=200):
    """Sends targets[i] over one connection (pipelined batches), storing
    (status, body) into results[i]; reconnects after nginx closes (e.g. a 400)."""
    pos = 0
    sock = None
    stalls = 0
    try:
        while pos < len(targets):
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                parser = Responses()
            chunk = targets[pos:pos + batch]
            sock.sendall(b"".join(
                b"GET " + t + b" HTTP/1.1\r\nHost: x\r\n\r\n" for t in chunk))
            got = 0
            closed = False
            while got < len(chunk) and not closed:
                item = parser.next()
                if item is None:
                    data = sock.recv(65536)
                    if not data:
                        closed = True
                        break
                    parser.feed(data)
                    continue
                status, body, close = item
                results[pos + got] = (status, body)
                got += 1
                closed = close
            pos += got
            if closed:
                sock.close()
                sock = None
                stalls = stalls + 1 if got == 0 else 0
                if stalls > 3:
                    raise RuntimeError(f"nginx closed without answering {targets[pos]!r}")
    finally:
        if sock is not None:
            sock.close()


def query_all(port, targets, connections=4):
    results = [None] * len(targets)
    errors = []

    def work(idx):
        try:
            sub = list(range(idx, len(targets), connections))
            sub_results = [None] * len(sub)
            query_nginx(port, [targets[i] for i in sub], sub_results)
            for i, res in zip(sub, sub_results):
                results[i] = res
        except Exception as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


# --- main ------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--bin", default="/tmp/canon_diff")
    parser.add_argument("--nginx", default="/usr/sbin/nginx")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    inputs = [random_target(rng) for _ in range(args.n)]
    outputs = run_driver(args.bin, inputs)
    accepted = [(data, out) for data, out in zip(inputs, outputs) if out is not None]

    workdir = tempfile.mkdtemp(prefix="nginx_diff.")
    proc = None
    # Turn SIGTERM into an exception so the finally clause stops nginx.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        proc, port = start_nginx(args.nginx, workdir)
        answers = query_all(port, [data for data, _ in accepted])
        if proc.poll() is not None:
            sys.exit("nginx exited during the run")
    finally:
        stop_nginx(proc)
        shutil.rmtree(workdir, ignore_errors=True)

    compared = 0
    mismatches = []
    refused = []
    for (data, out), (status, body) in zip(accepted, answers):
        if status != 200:
            refused.append((data, out, status))
            continue
        compared += 1
        ours = unquote_to_bytes(out)
        if ours != body:
            mismatches.append((data, out, ours, body))

    print(f"nginx differential: {args.n} inputs, {len(accepted)} accepted by gatehouse, "
          f"{compared} compared, {len(mismatches)} mismatches, "
          f"{len(refused)} refused by nginx only")
    for data, out, status in refused[:5]:
        print(f"  disagreement (nginx refused {status}): input={data!r} gatehouse={out!r}")
    for data, out, ours, body in mismatches[:10]:
        print(f"  MISMATCH input={data!r} gatehouse={out!r} "
              f"unquoted={ours!r} nginx $uri={body!r}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
