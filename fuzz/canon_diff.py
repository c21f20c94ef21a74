#!/usr/bin/env python3
"""Differential test of canonical_target (src/http/target.rs) against Python's URL model.

Generates N seeded random hostile request targets, runs the `canon_diff` driver once
over all of them and, for every target the gateway accepts, checks that

    unquote(canonical_path) == normpath(unquote(input_path))

with a leading '//' collapsed to '/' (POSIX normpath keeps exactly two) and trailing
'/' stripped on both sides except for the root (normpath drops it, we keep it). It
also checks that no accepted input climbs above the root (normpath would hide it),
that the canonical path is ASCII, has no '//', and is a fixed point
(canonicalising it again gives the same path).

Usage:
    rustc --edition 2021 -O fuzz/canon_diff.rs -o /tmp/canon_diff
    python3 fuzz/canon_diff.py [N=200000] [--seed S] [--bin /tmp/canon_diff]
"""

import argparse
import posixpath
import random
import subprocess
import sys
from urllib.parse import unquote

# Weighted building blocks: separators, dot segments in every spelling, escapes that
# are refused (%2f, %5c, %00, %25xx), escapes that are kept, Tomcat parameters,
# non-ASCII, and characters that must be re-encoded.
TOKENS = [
    ("/", 30), ("//", 6), (".", 10), ("..", 10), ("...", 2),
    ("%2e", 6), ("%2E", 4), ("%2e%2e", 4), (".%2e", 3), ("%2e.", 3),
    ("%2f", 1), ("%2F", 1), ("%5c", 1), ("%00", 1), ("%25", 3), ("%252e", 1),
    ("%252f", 1), ("%25%32%66", 1), ("%41", 2), ("%7e", 2), ("%7E", 2),
    ("%3b", 2), ("%3B", 1), ("%3f", 2), ("%23", 2), ("%20", 2), ("%c3%a9", 3),
    ("%C3", 1), ("%a9", 1), ("%e2%82", 1), ("%ff", 1),
    ("a", 12), ("admin", 8), ("static", 6), ("B", 4), ("x.css", 3), ("~", 2),
    (";", 4), (";x", 3), ("..;", 1), (".;", 1), ("=", 1), ("!", 1), ("@", 1), (":", 1),
    ("é", 3), ("日本", 2), ("\U0001f600", 1), ('"', 1), ("<", 1), ("[", 1), ("|", 1),
    ("{", 1), ("^", 1), ("`", 1),
    ("\\", 1), (" ", 1), ("#", 1), ("\t", 1), ("?", 2), ("%", 1), ("%z", 1), ("%2", 1),
]
TOKEN_TEXT = [t for t, _ in TOKENS]
TOKEN_WEIGHTS = [w for _, w in TOKENS]
HEX = "0123456789abcdefABCDEF"


def random_token(rng):
    roll = rng.random()
    if roll < 0.06:
        # A random escape, mixed-case hex.
        return "%" + rng.choice(HEX) + rng.choice(HEX)
    if roll < 0.08:
        # A random printable ASCII character.
        return chr(rng.randrange(0x21, 0x7F))
    return rng.choices(TOKEN_TEXT, TOKEN_WEIGHTS)[0]


def random_target(rng):
    """One hostile target as bytes (occasionally not valid UTF-8)."""
    if rng.random() < 0.005:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
    text = "/" + "".join(random_token(rng) for _ in range(rng.randrange(0, 14)))
    if rng.random() < 0.05:
        text = text[1:]
    data = text.encode("utf-8")
    if rng.random() < 0.005:
        pos = rng.randrange(len(data) + 1)
        data = data[:pos] + bytes([rng.randrange(0x80, 0x100)]) + data[pos:]
    return data


def strip_trailing(path):
    stripped = path.rstrip("/")
    return stripped if stripped else "/"


def expected_path(input_path):
    normal = posixpath.normpath(unquote(input_path))
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    return strip_trailing(normal)


def goes_above_root(input_path):
    """True when the decoded path's '..' segments climb above '/' (normpath clamps)."""
    depth = 0
    for segment in unquote(input_path).split("/"):
        if segment in ("", "."):
            continue
        depth += -1 if segment == ".." else 1
        if depth < 0:
            return True
    return False


def run_driver(binary, inputs):
    payload = "".join(data.hex() + "\n" for data in inputs).encode("ascii")
    result = subprocess.run([binary], input=payload, capture_output=True, check=True)
    lines = result.stdout.decode("ascii").splitlines()
    if len(lines) != len(inputs):
        sys.exit(f"driver printed {len(lines)} lines for {len(inputs)} inputs")
    return [None if line == "ERR" else line[3:] for line in lines]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=200000)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--bin", default="/tmp/canon_diff")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    inputs = [random_target(rng) for _ in range(args.n)]
    outputs = run_driver(args.bin, inputs)

    mismatches = []
    accepted = []
    for data, out in zip(inputs, outputs):
        if out is None:
            continue
        accepted.append(out)
        text = data.decode("utf-8")  # accepted implies valid UTF-8
        input_path = text.split("?", 1)[0]
        want = expected_path(input_path)
        got = strip_trailing(unquote(out))
        problems = []
        if got != want:
            problems.append(f"unquote(out)={got!r} normpath={want!r}")
        if goes_above_root(input_path):
            problems.append("accepted a path that climbs above the root")
        if not out.isascii() or not out.startswith("/") or "//" in out:
            problems.append("output not plain ASCII canonical")
        if problems:
            mismatches.append((text, out, "; ".join(problems)))

    # Idempotence: the canonical path must canonicalise to itself.
    again = run_driver(args.bin, [out.encode("ascii") for out in accepted])
    for out, out2 in zip(accepted, again):
        if out2 != out:
            mismatches.append((out, out2, "not a fixed point"))

    print(f"differential: {args.n} inputs, {len(accepted)} accepted, "
          f"{len(mismatches)} mismatches")
    for text, out, why in mismatches[:10]:
        print(f"  input={text!r} output={out!r}: {why}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
