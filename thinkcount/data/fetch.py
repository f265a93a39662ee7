"""Fetch the public trace files that the real profile reads, each checked against its sha256.

    python -m thinkcount fetch OUT_DIR                      # from each file's raw URL at its pinned commit
    python -m thinkcount fetch OUT_DIR --mirror DIR         # or THINKCOUNT_TRACES_MIRROR=DIR: a local copy

profiles/real_sources.tsv lists every file: repository, commit, path, licence, the sha256 and size of the
raw bytes, how many records carry a trace, and its name under a mirror (gzipped, or raw for licence files).
Files land under OUT_DIR by that name, licence files beside the traces they cover. A file whose bytes
differ from the listed sha256 is refused with one sentence, and nothing is written for it."""
import argparse
import csv
import gzip
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from thinkcount import UserError
from thinkcount.core import paths
from thinkcount.core.jsonl import atomic_path

MIRROR_VARIABLE = "THINKCOUNT_TRACES_MIRROR"


def read_sources(path=paths.REAL_SOURCES):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader((line for line in f if not line.startswith("#")), delimiter="\t"))


def raw_url(source):
    return f"https://raw.githubusercontent.com/{source['repo']}/{source['commit']}/{source['path']}"


def from_mirror(mirror, source):
    """The raw bytes of a source in a mirror folder (decompressed when the mirror keeps it gzipped)."""
    path = Path(mirror) / source["file"]
    if not path.is_file():
        raise UserError(f"{path}: not in the mirror {mirror}; it should hold every file of "
                        f"{paths.REAL_SOURCES.name}.")
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def download(source, timeout=60):
    url = raw_url(source)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"cannot download {url} ({getattr(e, 'reason', e)}); give a local copy with --mirror DIR "
                        f"or {MIRROR_VARIABLE}=DIR.") from None


def checked(data, source):
    digest = hashlib.sha256(data).hexdigest()
    if digest != source["sha256"] or len(data) != int(source["bytes"]):
        raise UserError(f"{source['file']}: sha256 {digest[:16]}... ({len(data)} bytes) differs from the listed "
                        f"{source['sha256'][:16]}... ({source['bytes']} bytes); it is not the file pinned at "
                        f"{source['repo']}@{source['commit'][:10]}, so it is refused.")
    return data


def fetch(out_dir, mirror=None, sources=None):
    """Write every source under out_dir (gzipped where its name ends in .gz); return how many."""
    sources = read_sources() if sources is None else sources
    for source in tqdm(sources, desc="fetch", unit="file"):
        data = checked(from_mirror(mirror, source) if mirror else download(source), source)
        with atomic_path(Path(out_dir) / source["file"]) as tmp:
            tmp.write_bytes(gzip.compress(data, mtime=0) if source["file"].endswith(".gz") else data)
    return len(sources)


def run(args):
    mirror = args.mirror or os.environ.get(MIRROR_VARIABLE) or None
    count = fetch(args.out_dir, mirror)
    print(f"fetch: {count} files checked against their sha256 -> {args.out_dir}"
          + (f" (from the mirror {mirror})" if mirror else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m thinkcount fetch", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--mirror", help=f"a local folder holding the files (or {MIRROR_VARIABLE})")
    run(parser.parse_args(argv))
