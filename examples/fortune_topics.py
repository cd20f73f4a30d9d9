"""A real English text-classification set that works offline: the quotations Debian's
`fortunes` package ships (/usr/share/games/fortunes, `apt install fortunes`), labelled by the
file each comes from: its topic. Nothing is downloaded at run time.

Writes `fortunes.jsonl` for POST /v1/files (purpose=dataset): {"text", "label": topic}, the
same number of distinct quotations of each topic (whitespace collapsed), shuffled with a
fixed seed, so the same package version always gives the same file. The service's fixed test
split of the file (20 %) is the test set.

    python examples/fortune_topics.py OUT_DIR [--topics computers politics science work]
        [--per-topic 600]
"""

import argparse
import json
import random
from pathlib import Path

FOLDER = Path("/usr/share/games/fortunes")
TOPICS = ("computers", "politics", "science", "work")


def quotations(topic: str) -> list[str]:
    path = FOLDER / topic
    if not path.exists():
        raise SystemExit(f"no {path}: this example reads Debian's fortunes (apt install fortunes)")
    text = path.read_text(encoding="utf-8", errors="replace")
    return [" ".join(q.split()) for q in text.split("\n%\n")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--topics", nargs="+", default=list(TOPICS))
    parser.add_argument("--per-topic", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    seen: set[str] = set()
    rows: list[dict[str, str]] = []
    for topic in args.topics:
        found = [q for q in dict.fromkeys(quotations(topic)) if q and q not in seen]
        seen.update(found)
        if len(found) < args.per_topic:
            raise SystemExit(f"{topic}: {len(found)} distinct quotations, fewer than asked")
        random.Random(f"{args.seed}-{topic}").shuffle(found)
        rows += [{"text": q.replace("\0", ""), "label": topic} for q in found[: args.per_topic]]
    random.Random(args.seed).shuffle(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "fortunes.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} quotations, {args.per_topic} of each of {', '.join(args.topics)}")


if __name__ == "__main__":
    main()
