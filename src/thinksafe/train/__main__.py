"""``python -m thinksafe.train --config FILE [flags]``: what each process of an
``accelerate launch`` runs (the same options as ``thinksafe train``)."""

from __future__ import annotations

import sys


def main() -> None:
    from ..cli.app import app

    app(args=["train", *sys.argv[1:]], prog_name="thinksafe")


if __name__ == "__main__":
    main()
