"""`python -m worker.run <job_id>`: run one job in this process (the embedded runner's child)."""

import logging
import sys

from app.settings import get_settings
from worker import pipeline


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m worker.run <job_id>", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=get_settings().log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    pipeline.run(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
