#!/usr/bin/env python3
"""Checks that `cargo test --workspace` after `cargo build` rebuilds no
dependency.

Cargo compiles a crate again whenever it is needed with another set of
features. `cargo build` (and the README's `cargo run`) resolves features for
the binary alone; `cargo test --workspace` resolves them for every member and
its dev-dependencies together. If a dev-dependency turns on a feature of a
crate the binary also builds (divan's default `wrap_help` once turned on
rustix's `termios`, which rebuilt tempfile, safetensors, candle and hf-hub),
the second command compiles that crate and everything above it again.

This script asks `cargo tree` for the features of every package in both
builds and fails, naming the packages, if any package the binary builds gets
a different feature set in the test build.

Usage: python3 scripts/check_features.py   (from the repository root)
"""

import subprocess
import sys


def features(args):
    out = subprocess.run(
        ["cargo", "tree", "--prefix", "none", "--format", "{p} [{f}]", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = {}
    for line in out.splitlines():
        line = line.strip()
        if not line or "[" not in line:
            continue
        name = line[: line.index(" [")]
        feats = line[line.index("[") + 1 : line.rindex("]")]
        found.setdefault(name, set()).add(feats)
    return found


def main():
    run = features(["-p", "docent", "-e", "normal,build"])
    test = features(["--workspace", "-e", "normal,build,dev"])
    differ = [
        f"{name}: {sorted(run[name])} in the binary's build, {sorted(test[name])} in the tests'"
        for name in sorted(run)
        if name in test and run[name] != test[name]
    ]
    if differ:
        print("these packages would be compiled twice:", file=sys.stderr)
        for d in differ:
            print("  " + d, file=sys.stderr)
        sys.exit(1)
    print(f"features agree: {len(run)} packages of the binary's build are reused by the tests")


if __name__ == "__main__":
    main()
