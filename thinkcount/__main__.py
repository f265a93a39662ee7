"""Command-line entry of the project: python -m thinkcount VERB.

    python -m thinkcount check [PARAMS]   # validate params.yaml (names, types, ranges) before any dvc command

Run `check` before a bare `dvc repro` or `dvc exp run -S ...`: DVC renders names into shell commands and
deletes a stage's declared outputs before any code of the project runs, so only a check beforehand can
stop a name such as `x; rm -rf ~` or `../../data`. `make run`, the profiles and the seed sweep run it.
"""
import argparse
import sys

from thinkcount import exit_status
from thinkcount.config import load_params


def check(args):
    params = load_params(args.params)
    print(f"{args.params}: valid ({len(params['methods'])} methods, {len(params['baselines'])} baselines, "
          f"{len(params['encoders'])} encoders).")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m thinkcount", description=__doc__.split("\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    verb = verbs.add_parser("check", help="validate params.yaml before DVC renders any command from it")
    verb.add_argument("params", nargs="?", default="params.yaml")
    verb.set_defaults(run=check)
    args = parser.parse_args(argv)
    return exit_status(lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
