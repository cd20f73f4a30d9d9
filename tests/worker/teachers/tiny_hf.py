"""Tiny Hugging Face text classifiers, built offline with transformers and saved with
save_pretrained (safetensors), zipped the way a user uploads a model folder."""

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from app.db import session_scope
from app.files.checkers import gguf_model, hf_model
from app.files.formats import CheckContext
from app.models import File
from app.settings import Settings
from app.store.base import file_key
from app.store.cache import DownloadCache
from app.store.local import LocalStore
from tests.worker.uploads import add_file

# The tokenizer's words (any other is [UNK]), after the special tokens.
WORDS = "the a cat dog sat on mat good bad movie film great awful plot actor story fun was not"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
MAX_POSITIONS = 64


def save_tiny_classifier(
    folder: Path,
    num_labels: int = 3,
    seed: int = 0,
    examples: list[tuple[str, int]] | None = None,
    steps: int = 30,
    layers: int = 1,
) -> Path:
    """A BERT sequence classifier of `layers` layers and its tokenizer in `folder`:
    word-level over WORDS, or, given labelled `examples` to fit it on first (`steps` Adam
    steps on all of them), character-level over their characters."""
    import torch
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    if examples is None:
        tokens = WORDS.split()
        split: Any = pre_tokenizers.BertPreTokenizer()
    else:
        tokens = sorted({c for text, _ in examples for c in text.lower() if not c.isspace()})
        split = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), "isolated")]
        )
    vocab = {token: i for i, token in enumerate(SPECIAL + tokens)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = split
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=MAX_POSITIONS,
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=MAX_POSITIONS,
    )
    config.num_labels = num_labels
    model = BertForSequenceClassification(config)
    if examples is not None:
        inputs = fast([t for t, _ in examples], padding=True, truncation=True, return_tensors="pt")
        labels = torch.tensor([y for _, y in examples])
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        model.train()
        for _ in range(steps):
            loss = model(**inputs, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval().save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


def save_tiny_decoder_classifier(folder: Path, num_labels: int = 3, seed: int = 0) -> Path:
    """A one-layer GPT-2 sequence classifier and a byte-level BPE tokenizer with no padding
    token (as GPT-2's own), in `folder`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([WORDS] * 10, trainer)
    end = "<|endoftext|>"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=end,
        bos_token=end,
        unk_token=end,
        model_max_length=MAX_POSITIONS,
    )
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=tokenizer.get_vocab_size(),
        n_positions=MAX_POSITIONS,
        n_embd=16,
        n_layer=1,
        n_head=2,
    )
    config.num_labels = num_labels
    GPT2ForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


def edit_config(folder: Path, **changes: object) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def zip_folder(
    folder: Path,
    top: str | None = "model",
    extra: dict[str, bytes] | None = None,
    leave_out: tuple[str, ...] = (),
) -> bytes:
    """The folder's files under `top/` (None: at the root), with `extra` members added."""
    buffer = io.BytesIO()
    prefix = f"{top}/" if top else ""
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.endswith(leave_out):
                archive.write(path, prefix + path.name)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def add_hf_teacher(settings: Settings, tmp: Path, archive: bytes, fmt: str = "hf") -> str:
    """A ready `hf` (or `gguf`) teacher file: the upload stored, checked by the real check and
    its model files prepared in the store, as the files service leaves them."""
    file_id = add_file(
        settings, tmp, purpose="teacher", fmt=fmt, upload=archive, arrays={}, info={}
    )
    store = LocalStore(settings.artifact_url)
    workdir = tmp / f"check-{file_id}"
    workdir.mkdir()
    context = CheckContext(
        file_id=file_id,
        path=store.local_path(file_key(file_id, "upload"), DownloadCache(tmp, 0)),
        options={},
        settings=settings,
        workdir=workdir,
    )
    info = {"hf": hf_model.check, "gguf": gguf_model.check}[fmt](context)
    for name, path in context.outputs.items():
        store.put_file(context.key(name), path, move=True)
    with session_scope(settings.database_url) as session:
        row = session.get(File, file_id)
        assert row is not None
        row.info = info
    return file_id
