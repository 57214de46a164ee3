"""Write ``lavid_plugin/assets/authors_release.json``: the pinned list of the LaViD authors' released files.

    python scripts/make_release_manifest.py --from /path/to/a/clone/of/lliangthomas/lavid [--commit SHA]

Reads a local clone (a work tree or a bare repository; this script never downloads anything) at one
commit and records, for every released question file, answer file, per-image bank and class list,
its git blob id and size, and its sha256 where the clone holds the content (a partial clone may lack
the largest files: those are pinned by their git blob id alone, which the commit's tree fixes too).
``lavid signature released`` / ``lavid teacher released`` fetch exactly these files and refuse any other
content.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "lavid_plugin" / "assets" / "authors_release.json"
REPO = "lliangthomas/lavid"
#: what is released data (the rest of the repository is code)
KEEP = ("questions/", "lavid/data/classes/")
SUFFIXES = (".txt", ".json", ".jsonl")


def git(clone: str, *args: str, binary: bool = False):
    out = subprocess.run(["git", "-C", clone, *args], capture_output=True, check=False)
    if out.returncode:
        return None
    return out.stdout if binary else out.stdout.decode()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--from", dest="clone", required=True, help="a clone of github.com/lliangthomas/lavid")
    p.add_argument("--commit", default="HEAD")
    p.add_argument("-o", "--output", default=str(OUT))
    args = p.parse_args(argv)
    commit = (git(args.clone, "rev-parse", args.commit) or "").strip()
    if not commit:
        print(f"error: {args.clone} is not a git repository with commit {args.commit}", file=sys.stderr)
        return 2
    files = {}
    for line in git(args.clone, "ls-tree", "-r", "-l", commit).splitlines():
        meta, path = line.split("\t", 1)
        _, kind, blob, size = meta.split()
        if kind != "blob" or not path.startswith(KEEP) or not path.endswith(SUFFIXES):
            continue
        data = git(args.clone, "cat-file", "blob", blob, binary=True)
        files[path] = {"git_blob": blob, "size": int(size) if size.isdigit() else None,
                       "sha256": hashlib.sha256(data).hexdigest() if data is not None else None}
        if data is not None:
            files[path]["size"] = len(data)
    manifest = {"repository": REPO, "commit": commit,
                "url": f"https://raw.githubusercontent.com/{REPO}/{commit}/",
                "license": "Apache-2.0", "files": dict(sorted(files.items()))}
    Path(args.output).write_text(json.dumps(manifest, indent=1) + "\n")
    n_sha = sum(f["sha256"] is not None for f in files.values())
    print(f"wrote {args.output}: {len(files)} files at {commit[:12]} ({n_sha} with sha256, "
          f"{len(files) - n_sha} pinned by git blob id only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
