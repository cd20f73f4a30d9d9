"""`python -m worker.run <job_id>`: run one job in this process (the embedded runner's child)."""

import logging
import sys

from app.settings import get_settings
from worker.claiming import claim_job


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m worker.run <job_id>", file=sys.stderr)
        return 2
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Claim before importing the pipeline (and torch): a job that is not ours costs nothing.
    claimed = claim_job(argv[0], settings)
    if claimed is not None:
        from worker import pipeline

        pipeline.run_claimed(*claimed, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
