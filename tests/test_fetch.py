"""Fetching the public traces: from a mirror, checked against each file's sha256; a changed file is refused."""
import gzip
import hashlib
import shutil
import urllib.error

import pytest

from conftest import ROOT, verb
from thinkcount import UserError
from thinkcount.data.fetch import fetch, raw_url, read_sources

main = verb("fetch")

SHARED = ROOT.parent / "shared" / "real_traces"


def source(tmp_path, name, data, gz=True):
    """A one-file source list entry and its mirror copy under tmp_path/mirror."""
    file = f"o__r/{name}" + (".gz" if gz else "")
    (tmp_path / "mirror/o__r").mkdir(parents=True, exist_ok=True)
    (tmp_path / "mirror" / file).write_bytes(gzip.compress(data) if gz else data)
    return {"repo": "o/r", "commit": "c" * 40, "path": f"d/{name}", "license": "CC0-1.0",
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": str(len(data)), "traces": "1", "file": file}


def test_the_sources_list_every_manifest_file_and_every_licence():
    sources = read_sources()
    # speechmap, MisguidedAttention, LRMTokenEconomy and tts-knowledge: 114 trace files and 4 licences
    assert len(sources) == 114 + 4 and sum(int(s["traces"]) for s in sources) == 2869 + 2653 + 2141 + 12168
    assert sorted(s["license"] for s in sources if s["path"] == "LICENSE") == ["Apache-2.0", "Apache-2.0", "CC0-1.0",
                                                                               "MIT"]
    assert raw_url(sources[0]) == ("https://raw.githubusercontent.com/xlr8harder/speechmap-data/"
                                   "0c084c2c62a6bfa442532228dac7d9dd048f5a71/responses/"
                                   "china_criticism_deepseek_deepseek-r1-0528.jsonl")


def test_a_mirror_copy_is_written_when_its_sha256_matches_and_refused_when_not(tmp_path):
    good, licence = source(tmp_path, "a.jsonl", b'{"x": 1}\n'), source(tmp_path, "LICENSE", b"CC0\n", gz=False)
    assert fetch(tmp_path / "out", tmp_path / "mirror", [good, licence]) == 2
    assert gzip.decompress((tmp_path / "out/o__r/a.jsonl.gz").read_bytes()) == b'{"x": 1}\n'
    assert (tmp_path / "out/o__r/LICENSE").read_bytes() == b"CC0\n"
    tampered = source(tmp_path, "b.jsonl", b'{"x": 2}\n')
    (tmp_path / "mirror/o__r/b.jsonl.gz").write_bytes(gzip.compress(b'{"x": 3}\n'))
    with pytest.raises(UserError, match=r"b.jsonl.gz: sha256 .* differs from the listed .* so it is refused"):
        fetch(tmp_path / "out", tmp_path / "mirror", [tampered])
    assert not (tmp_path / "out/o__r/b.jsonl.gz").exists() and sorted(p.name for p in (tmp_path / "out/o__r")
                                                                       .iterdir()) == ["LICENSE", "a.jsonl.gz"]


def test_without_a_mirror_or_network_the_fetch_is_one_sentence(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr("urllib.request.urlopen", offline)
    monkeypatch.delenv("THINKCOUNT_TRACES_MIRROR", raising=False)
    assert main([str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "cannot download https://raw.githubusercontent.com/" in err and "--mirror DIR" in err


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/real_traces")
def test_the_shared_mirror_fetches_whole(tmp_path):
    assert main([str(tmp_path / "out"), "--mirror", str(SHARED)]) == 0
    for s in read_sources():
        data = (tmp_path / "out" / s["file"]).read_bytes()
        raw = gzip.decompress(data) if s["file"].endswith(".gz") else data
        assert hashlib.sha256(raw).hexdigest() == s["sha256"]
    shutil.rmtree(tmp_path / "out")
