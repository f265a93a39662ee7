"""A scratch copy of the working tree with a profile merged into its params.yaml, for a profile run whole in its
own DVC project (the CI profile, the real profile) while the workspace keeps the default run.

Usage: python -m thinkcount scratch WORKDIR PROFILE     (make ci-repro: .ci/params.yaml; make real: profiles/real.yaml)
"""
import shutil
import subprocess
from pathlib import Path

import yaml

from thinkcount import UserError
from thinkcount.pipeline.config import load_params


def merge(base, overlay, where=""):
    """overlay's values over base's; a key base lacks is added (load_params then refuses unknown ones)."""
    for key, value in overlay.items():
        if isinstance(value, dict) and key in base:
            if not isinstance(base[key], dict):
                raise UserError(f"the profile's '{where}{key}' is not a mapping in params.yaml.")
            merge(base[key], value, f"{where}{key}.")
        else:
            base[key] = value
    return base


def prepare(workdir, overlay):
    """Copy the working tree's files (tracked or not ignored) to workdir, merge overlay into its params."""
    workdir = Path(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], capture_output=True, text=True,
                           check=True).stdout.split("\0")
    for name in filter(None, files):
        if Path(name).is_file():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(name, workdir / name)
    params = merge(yaml.safe_load(Path("params.yaml").read_text()), overlay)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    load_params(workdir / "params.yaml")
    # Generated outputs of the main run are not part of the profile.
    for stale in ("dvc.lock", "metrics", "reports"):
        path = workdir / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    git = ["git", "-C", str(workdir), "-c", "user.name=ci", "-c", "user.email=ci@localhost"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "profile run"], check=True)


def main(argv):
    if len(argv) != 2:
        raise UserError("usage: python -m thinkcount scratch WORKDIR PROFILE")
    if not Path(argv[1]).is_file():
        raise UserError(f"{argv[1]}: no such profile.")
    prepare(argv[0], yaml.safe_load(Path(argv[1]).read_text()) or {})
