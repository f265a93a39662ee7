"""Run a params profile as a DVC experiment: each key of the profile becomes `-S ++key=value`.

    python -m thinkcount profile profiles/seed.yaml              # dvc exp run with the profile's params
    python -m thinkcount profile profiles/seed.yaml --queue      # extra arguments go to dvc exp run
    python -m thinkcount profile profiles/seed.yaml --print      # only print the command

Before anything runs, the merged params are validated and every encoder the profile's methods use
is looked up, so a missing encoder stops here with one sentence instead of minutes into a stage.
"""
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from thinkcount import UserError
from thinkcount.ops.scratch import merge
from thinkcount.pipeline.config import load_params


def flatten(overlay, prefix=""):
    """{"a": {"b": 1}} -> [("a.b", 1)]: the dotted keys DVC's -S takes."""
    items = []
    for key, value in overlay.items():
        name = f"{prefix}{key}"
        items += flatten(value, name + ".") if isinstance(value, dict) else [(name, value)]
    return items


def set_arguments(overlay):
    args = []
    for name, value in flatten(overlay):
        text = yaml.safe_dump(value, default_flow_style=True, width=10 ** 6).strip().removesuffix("...").strip()
        args += ["-S", f"++{name}={text}"]
    return args


def merged_params(params_path, overlay):
    """The params the experiment will run with, validated (names included) before DVC renders a command."""
    merged = merge(yaml.safe_load(Path(params_path).read_text()), overlay)
    with tempfile.TemporaryDirectory(dir=Path(params_path).parent) as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump(merged, sort_keys=False))
        return load_params(path)


def check_profile(params_path, overlay):
    """The merged params, validated, with every encoder its methods use resolved."""
    from thinkcount.methods.models import resolve_source
    from thinkcount.methods.training import method_settings
    params = merged_params(params_path, overlay)
    for name in params.methods:
        settings = method_settings(params, name)
        resolve_source(settings.model, settings.source)
    return params


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    profile, rest = Path(argv[0]), argv[1:]
    if not profile.is_file():
        raise UserError(f"{profile}: no such profile.")
    overlay = yaml.safe_load(profile.read_text()) or {}
    command = ["dvc", "exp", "run", *set_arguments(overlay), *[a for a in rest if a != "--print"]]
    if "--print" in rest:
        merged_params("params.yaml", overlay)
        print(shlex.join(command))
        return 0
    check_profile("params.yaml", overlay)
    return subprocess.run(command).returncode
