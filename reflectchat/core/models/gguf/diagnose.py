"""Why a path is not a readable GGUF model, in words that say what to do: a missing file or
broken link, a folder, an unfinished download (``.part``, ``.aria2``, a Hugging Face
``.incomplete`` blob), a Git LFS pointer or HTML error page saved in its place, another model
format, an unsupported GGUF version."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reflectchat.core.models.gguf.errors import GGUFError
from reflectchat.core.models.gguf.types import SUPPORTED_VERSIONS

PARTIAL_SUFFIXES = (".incomplete", ".part", ".partial", ".crdownload", ".download")
PERM_HINT = "Check the file's permissions (for example chmod a+r), or copy it somewhere readable."


def check_file_state(p: Path) -> None:
    """Raise :class:`GGUFError` for a path that cannot be a complete model file, before it is
    opened: missing, unreadable, not a regular file, a download still in progress, empty."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise missing_error(p) from None
    except OSError as e:
        raise read_error(p, e) from None
    if stat.S_ISDIR(st.st_mode):
        raise directory_error(p)
    if not stat.S_ISREG(st.st_mode):
        raise GGUFError(
            p,
            f"{p} is not a regular file (a device, pipe or socket). Point to a .gguf model file.",
            "not_file",
        )
    check_partial_name(p)
    aria = p.with_name(p.name + ".aria2")
    if aria.exists():
        raise GGUFError(
            p,
            f"The download of {p} is incomplete: {aria.name} shows it is still in progress or was "
            "interrupted. Let it finish, or download it again.",
            "incomplete",
        )
    if st.st_size == 0:
        raise GGUFError(p, f"{p} is empty (0 bytes). Download the model again.", "empty")


def read_error(p: Path, e: OSError) -> GGUFError:
    """An OSError from reading ``p``, as a GGUFError (permission problems say how to fix them)."""
    if isinstance(e, PermissionError):
        return GGUFError(p, f"{p} cannot be read: permission denied. {PERM_HINT}", "permission")
    return GGUFError(p, f"{p} cannot be read: {e.strerror or e}.", "unreadable")


def check_version(path: Path, version: int) -> None:
    if version in SUPPORTED_VERSIONS:
        return
    if version == 1:
        raise GGUFError(
            path,
            f"{path} uses GGUF version 1, an obsolete format llama.cpp no longer loads. "
            "Download a newer conversion of the model.",
            "version",
        )
    swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
    if version & 0xFFFF == 0 and swapped in (1, 2, 3):
        raise GGUFError(
            path,
            f"{path} is a big-endian GGUF file, which this computer cannot use. "
            "Download the ordinary (little-endian) version of the model.",
            "version",
        )
    raise GGUFError(
        path,
        f"{path} says it is GGUF version {version}; only versions 2 and 3 are supported. "
        "Update reflectchat, or download another conversion of the model.",
        "version",
    )


def foreign_file_message(path: Path, head: bytes) -> str:
    """Why a file without the GGUF magic is not a model, as helpfully as the first bytes allow."""
    lower = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"version https://git-lfs"):
        return (
            f"{path} is a Git LFS pointer, not the model itself: the real file was never "
            "downloaded. Fetch it with `git lfs pull`, or download the .gguf file directly."
        )
    if lower.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in lower:
        return (
            f"{path} is not a GGUF model file: it looks like a text/HTML file — perhaps an error "
            "page saved instead of the model. Download it again."
        )
    if head[:4] in (b"lmgg", b"fmgg", b"tjgg"):
        return (
            f"{path} uses the old GGML/GGJT format that llama.cpp dropped in 2023. "
            "Download a GGUF version of the model."
        )
    if head[:4] == b"PK\x03\x04":
        return (
            f"{path} is a ZIP archive or PyTorch checkpoint, not a GGUF model file. "
            "Use a .gguf file (or extract it from the archive first)."
        )
    if len(head) >= 10 and head[8:10] == b'{"':
        return (
            f"{path} is a safetensors file, not a GGUF model file. "
            "Download a GGUF conversion of the model."
        )
    if head.startswith((b"\x1f\x8b", b"\xfd7zXZ", b"7z\xbc\xaf\x27\x1c", b"\x28\xb5\x2f\xfd")):
        return (
            f"{path} is a compressed archive, not a GGUF model file. "
            "Extract the .gguf file from it first."
        )
    if head and _looks_like_text(head):
        return (
            f"{path} is not a GGUF model file: it looks like a text/HTML file — perhaps an error "
            "page saved instead of the model. Download it again."
        )
    return (
        f"{path} is not a GGUF model file (it starts with bytes {head[:4].hex(' ')}). "
        "Choose a .gguf model file."
    )


def _looks_like_text(head: bytes) -> bool:
    text = head.decode("utf-8", "ignore")
    if len(text) < len(head) * 0.9:
        return False
    printable = sum(1 for c in text if c.isprintable() or c in "\r\n\t")
    return printable >= 0.95 * len(text)


def check_partial_name(p: Path) -> None:
    name = p.name.lower()
    for suffix in PARTIAL_SUFFIXES:
        if name.endswith(suffix):
            raise GGUFError(
                p,
                f"The download of {p} is incomplete (the '{suffix}' name marks an unfinished "
                "download). Let it finish, or download the model again.",
                "incomplete",
            )


def missing_error(p: Path) -> GGUFError:
    if os.path.islink(p):
        target = os.readlink(p)
        return GGUFError(
            p,
            f"{p} is a broken link: it points to {target}, which does not exist. "
            "Download the model again.",
            "missing",
        )
    unfinished = _unfinished_download(p)
    if unfinished is not None:
        return GGUFError(
            p,
            f"The download of {p} is incomplete ({unfinished} is still there). "
            "Let it finish, or download the model again.",
            "incomplete",
        )
    return GGUFError(
        p, f"{p} does not exist. Check the path, or download the model first.", "missing"
    )


def _unfinished_download(p: Path) -> str | None:
    """A leftover of an unfinished download of ``p``, if there is one (cheap checks only)."""
    try:
        for suffix in (*PARTIAL_SUFFIXES, ".aria2"):
            sibling = p.with_name(p.name + suffix)
            if sibling.exists():
                return sibling.name
        parts = p.parts
        # Hugging Face cache: models--ORG--NAME/snapshots/REV/FILE, blobs/SHA.incomplete
        for i in range(len(parts) - 1, 0, -1):
            if parts[i] == "snapshots" and parts[i - 1].startswith("models--"):
                blobs = Path(*parts[:i]) / "blobs"
                if blobs.is_dir():
                    for blob in blobs.glob("*.incomplete"):
                        return f"{blobs.name}/{blob.name}"
                break
        # huggingface-cli download --local-dir DIR: DIR/.cache/huggingface/download/*.incomplete
        for folder in list(p.parents)[:4]:
            marker = folder / ".cache" / "huggingface" / "download"
            if marker.is_dir():
                for leftover in marker.rglob("*.incomplete"):
                    return leftover.name
    except OSError:
        return None
    return None


def directory_error(p: Path) -> GGUFError:
    try:
        inside = sorted(c.name for c in p.iterdir() if c.name.lower().endswith(".gguf"))
    except OSError:
        inside = []
    hint = ""
    if inside:
        shown = ", ".join(inside[:3]) + (", …" if len(inside) > 3 else "")
        hint = f" (it holds {shown})"
    return GGUFError(
        p,
        f"{p} is a folder, not a model file{hint}. Point to the .gguf file itself.",
        "directory",
    )
