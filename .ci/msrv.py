"""Checks the declared minimum Rust version against every dependency's.

The toolchain of that version cannot be installed here (rustup reaches no
network), so CI checks what it can: no package in the build graph, with all
features, declares a rust-version newer than ours, and the edition needs no
newer compiler.
"""
import json
import subprocess
import sys


def parse(version):
    return tuple(int(part) for part in version.split(".")[:3]) + (0,) * (3 - len(version.split(".")))


metadata = json.loads(
    subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--all-features"])
)
ours = next(p for p in metadata["packages"] if p["name"] == "tokengate")
declared = parse(ours["rust_version"])
used = {node["id"] for node in metadata["resolve"]["nodes"]}
newer = [
    f'{p["name"]} {p["version"]} needs {p["rust_version"]}'
    for p in metadata["packages"]
    if p["id"] in used and p.get("rust_version") and parse(p["rust_version"]) > declared
]
if ours["edition"] == "2024" and declared < (1, 85, 0):
    newer.append("edition 2024 needs 1.85")
if newer:
    print(f"rust-version {ours['rust_version']} is too old:", *newer, sep="\n  ")
    sys.exit(1)
print(f"rust-version {ours['rust_version']}: no dependency needs a newer compiler")
