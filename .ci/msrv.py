#!/usr/bin/env python3
"""The declared MSRV (`rust-version` in Cargo.toml), checked as far as this machine can.

Only one stable toolchain can be installed here, so the crate is not compiled with the declared
one. What is checked instead:
1. every dependency a user's build compiles (normal dependencies, all features, this target)
   declares a `rust-version` no newer than ours, in the versions Cargo.lock resolves;
2. no let-chains (`if let ... && ...`, stable in 1.88) in the crate's sources, the one
   language feature newer than 1.85 that edition 2024 code reaches for;
3. clippy's `incompatible_msrv` lint, which reads `rust-version` and refuses standard-library
   APIs stabilised after it, runs with `-D warnings` in the clippy step.

Usage: msrv.py (from the repository root)
"""

import json
import pathlib
import re
import subprocess
import sys


def version(text):
    return tuple(int(part) for part in text.split(".")[:2]) if text else (0, 0)


def main():
    metadata = json.loads(
        subprocess.run(
            [
                "cargo",
                "metadata",
                "--format-version",
                "1",
                "--all-features",
                "--locked",
                "--filter-platform",
                "x86_64-unknown-linux-gnu",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    packages = {package["id"]: package for package in metadata["packages"]}
    nodes = {node["id"]: node for node in metadata["resolve"]["nodes"]}
    root = next(p for p in metadata["packages"] if p["name"] == "steadfast")
    declared = root["rust_version"]
    failures = []

    # 1. The normal dependency closure.
    seen, stack = set(), [root["id"]]
    while stack:
        for dep in nodes[stack.pop()]["deps"]:
            normal = any(kind["kind"] is None for kind in dep["dep_kinds"])
            if normal and dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                stack.append(dep["pkg"])
    for package_id in sorted(seen):
        package = packages[package_id]
        if version(package["rust_version"]) > version(declared):
            failures.append(
                f"{package['name']} {package['version']} needs Rust {package['rust_version']}"
            )

    # 2. Let-chains in our sources.
    chain = re.compile(r"\bif let\b[^{;]*&&|&&\s*let\b")
    for path in sorted(pathlib.Path(".").glob("*/**/*.rs")):
        if path.parts[0] not in ("src", "tests", "examples", "benches"):
            continue
        text = path.read_text()
        for number, line in enumerate(text.splitlines(), 1):
            if chain.search(line) and not line.lstrip().startswith("//"):
                failures.append(f"{path}:{number}: a let-chain (Rust 1.88): {line.strip()}")

    print(
        f"rust-version {declared}: {len(seen)} dependencies checked, "
        f"{len(failures)} problems"
    )
    for failure in failures:
        print(f"FAIL {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
