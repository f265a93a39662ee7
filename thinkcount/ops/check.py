"""Validate params.yaml (names first, then every key) before DVC renders any command from it.

    python -m thinkcount check [PARAMS]"""
import argparse

from thinkcount.pipeline.config import load_params


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m thinkcount check", description=__doc__.split("\n")[0])
    parser.add_argument("params", nargs="?", default="params.yaml")
    path = parser.parse_args(argv).params
    params = load_params(path)
    print(f"{path}: valid ({len(params.methods)} methods, {len(params.baselines)} baselines, "
          f"{len(params.encoders)} encoders).")
