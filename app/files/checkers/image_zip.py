"""A dataset .zip of images: <class>/<image>, or train/<class>/<image> and test/<class>/<image>,
or a flat folder of images (unlabelled). Decoded in memory (never extracted) to uint8 N,C,H,W."""

import io
import stat
import warnings
import zipfile
from typing import Any

import numpy as np

from app.files import splits
from app.files.formats import CheckContext, CheckError, Format, OptionError, register

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
MAX_IMAGE_SIDE = 1024
SPLITS = ("train", "test")


def parse_options(raw: dict[str, str]) -> dict[str, Any]:
    width = height = 32
    channels = 3
    for name, value in raw.items():
        if name == "image_size":
            parts = value.lower().replace(" ", "").split("x")
            try:
                sides = [int(p) for p in parts]
            except ValueError:
                sides = []
            if len(sides) not in (1, 2) or not all(1 <= s <= MAX_IMAGE_SIDE for s in sides):
                raise OptionError(
                    name,
                    f"image_size must be N or WxH (width x height), each 1..{MAX_IMAGE_SIDE}, "
                    f"got {value!r}",
                )
            width, height = sides[0], sides[-1]
        elif name == "channels":
            if value.strip() not in ("1", "3"):
                raise OptionError(name, f"channels must be 1 (grayscale) or 3 (RGB), got {value!r}")
            channels = int(value)
        else:
            raise OptionError(name, f"{name} does not apply to .zip image folders")
    return {"image_size": f"{width}x{height}", "channels": channels}


def _is_junk(name: str) -> bool:
    """Files that archivers add on their own (macOS resource forks, Finder metadata)."""
    parts = name.split("/")
    return parts[0] == "__MACOSX" or parts[-1].startswith(".") or parts[-1] == "Thumbs.db"


def _safe_parts(info: zipfile.ZipInfo) -> list[str]:
    name = info.filename
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise CheckError(f"member {name!r} has an absolute path")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise CheckError(f"member {name!r} leaves its folder ('..' in its path)")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise CheckError(f"member {name!r} is a symbolic link")
    return [p for p in parts if p not in ("", ".")]


def _members(ctx: CheckContext, archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, list]]:
    ratio_limit = ctx.settings.max_archive_ratio
    total_size = total_compressed = 0
    found = []
    for info in archive.infolist():
        parts = _safe_parts(info)
        if info.is_dir() or _is_junk("/".join(parts)):
            continue
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > ratio_limit:
            raise CheckError(
                f"member {info.filename!r} is compressed {ratio:.0f}:1, over the limit of "
                f"{ratio_limit:g}:1 (zip bomb?)"
            )
        total_size += info.file_size
        total_compressed += info.compress_size
        if not parts[-1].lower().endswith(IMAGE_EXTENSIONS):
            raise CheckError(f"member {info.filename!r} is not a .png, .jpg or .jpeg image")
        found.append((info, parts))
    if total_size / max(total_compressed, 1) > ratio_limit:
        raise CheckError(
            f"the archive is compressed {total_size / max(total_compressed, 1):.0f}:1 overall, "
            f"over the limit of {ratio_limit:g}:1 (zip bomb?)"
        )
    if not found:
        raise CheckError("the archive holds no .png, .jpg or .jpeg images")
    # One folder wrapping everything (zip of a folder): look inside it.
    tops = {parts[0] for _, parts in found}
    while len(tops) == 1 and all(len(p) > 1 for _, p in found) and tops.isdisjoint(SPLITS):
        found = [(info, parts[1:]) for info, parts in found]
        tops = {parts[0] for _, parts in found}
    return found


def _layout(found: list[tuple[zipfile.ZipInfo, list]]) -> dict[str, list]:
    """{"train": [(info, class or None)], "test": [...]}"""
    depths = {len(parts) for _, parts in found}
    split: dict[str, list] = {"train": [], "test": []}
    if depths == {1}:
        split["train"] = [(info, None) for info, _ in found]
    elif depths == {2}:
        split["train"] = [(info, parts[0]) for info, parts in found]
    elif depths == {3} and {parts[0] for _, parts in found} <= set(SPLITS):
        for info, parts in found:
            split[parts[0]].append((info, parts[1]))
        if not split["train"]:
            raise CheckError("the archive has test/<class>/ folders but no train/<class>/")
    else:
        odd = next(info.filename for info, parts in found if len(parts) != len(found[0][1]))
        raise CheckError(
            f"member {odd!r} does not follow the archive's layout: use <class>/<image>, "
            "train/<class>/<image> with test/<class>/<image>, or images without folders"
        )
    return split


def check(ctx: CheckContext) -> dict[str, Any]:
    from PIL import Image

    try:
        archive = zipfile.ZipFile(ctx.path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckError(f"not a readable .zip archive: {exc}") from None
    with archive:
        split = _layout(_members(ctx, archive))
        labelled = split["train"][0][1] is not None
        class_names = sorted({c for _, c in split["train"]}) if labelled else None
        if class_names is not None:
            unknown = sorted({c for _, c in split["test"]} - set(class_names))
            if unknown:
                raise CheckError(f"test class folder {unknown[0]!r} has no train/ folder")
            if len(class_names) < 2:
                raise CheckError(
                    f"one class folder ({class_names[0]!r}); a classifier needs at least 2"
                )
        index = {c: i for i, c in enumerate(class_names or [])}
        width, height = (int(s) for s in ctx.options.get("image_size", "32x32").split("x"))
        channels = int(ctx.options.get("channels", 3))
        mode = "L" if channels == 1 else "RGB"
        max_pixels = ctx.settings.max_image_pixels
        Image.MAX_IMAGE_PIXELS = max_pixels
        arrays: dict[str, str] = {}
        for name, members in split.items():
            if not members:
                continue
            members.sort(key=lambda m: (m[1] or "", m[0].filename))
            x_name = "x" if name == "train" else "x_test"
            x = np.lib.format.open_memmap(
                ctx.output(f"{x_name}.npy", len(members) * channels * height * width),
                mode="w+",
                dtype=np.uint8,
                shape=(len(members), channels, height, width),
            )
            for row, (info, _) in enumerate(members):
                x[row] = _decode(archive, info, mode, (width, height), max_pixels)
            x.flush()
            del x
            arrays[x_name] = ctx.key(f"{x_name}.npy")
            if labelled:
                y_name = "y" if name == "train" else "y_test"
                labels = np.array([index[c] for _, c in members], dtype=np.int64)
                np.save(ctx.output(f"{y_name}.npy", labels.nbytes), labels, allow_pickle=False)
                arrays[y_name] = ctx.key(f"{y_name}.npy")
    test_rows = len(split["test"])
    return {
        "format": "image_zip",
        "rows": len(split["train"]),
        "test_rows": test_rows,
        "input_shape": [channels, height, width],
        "dtype": "uint8",
        "labelled": labelled,
        "num_classes": len(class_names) if class_names is not None else None,
        "class_names": class_names,
        "test_split": splits.describe(test_rows, labelled),
        "arrays": arrays,
    }


def _decode(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    mode: str,
    size: tuple[int, int],
    max_pixels: int,
) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    data = archive.read(info)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                # The header's size, before any pixel is decoded.
                w, h = image.size
                if w * h > max_pixels:
                    raise CheckError(
                        f"member {info.filename!r} is {w}x{h} pixels, over the limit of "
                        f"{max_pixels} pixels (decompression bomb?)"
                    )
                if image.format not in ("PNG", "JPEG"):
                    raise CheckError(
                        f"member {info.filename!r} is a {image.format} image, not PNG or JPEG"
                    )
                image.draft(mode, size)
                pixels = np.asarray(image.convert(mode).resize(size, Image.Resampling.BILINEAR))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise CheckError(
                f"member {info.filename!r} is too large to decode (decompression bomb?): {exc}"
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise CheckError(f"member {info.filename!r} is not a readable image: {exc}") from None
    if pixels.ndim == 2:
        return pixels[None]
    return pixels.transpose(2, 0, 1)


register(Format("image_zip", "dataset", (".zip",), check, parse_options))
