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
