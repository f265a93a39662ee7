"""What every stage script shares: run main(params), turn a UserError into one line and exit 1."""
import sys

from thinkcount import UserError
from thinkcount.config import load_params


def run(main):
    try:
        main(load_params())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


def method_name(params):
    """The method a foreach stage was called for (its first argument), checked against params.yaml."""
    if len(sys.argv) < 2 or sys.argv[1] not in params["methods"]:
        given = sys.argv[1] if len(sys.argv) > 1 else "(none)"
        raise UserError(f"unknown method '{given}'; params.yaml defines {', '.join(params['methods'])}.")
    return sys.argv[1]
