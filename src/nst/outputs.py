"""Output files, written one way by images, folders, videos, exports and checkpoints.

An output is refused before any work when its folder is missing, it is one of the inputs, or it
exists and `overwrite` is off. It is written to a hidden temporary file beside the target, given
a normal file's mode and renamed into place (atomic within a folder), so a failure or Ctrl-C
leaves no partial output and never touches an existing file.
"""

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nst.errors import UserError, write_refusal

IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}  # written
IMAGE_SUFFIXES = {*IMAGE_FORMATS, ".bmp", ".tif", ".tiff", ".gif"}  # read (a GIF: its first frame)
VIDEO_OUTPUT_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv"}  # containers that hold H.264


def check_folder(path: str | os.PathLike) -> Path:
    """`path` as a Path; its folder must exist and take a new file. Writability is probed by
    creating and removing a file, since permission bits say nothing to root or of a read-only
    mount."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"Output folder {path.parent} does not exist; create it or pick another.")
    try:
        handle, probe = tempfile.mkstemp(prefix=".nst-probe.", dir=path.parent)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise UserError(
            f"Cannot write to the output folder {path.parent} ({write_refusal(error)}); "
            "pick another output."
        ) from None
    return path


def check_output(
    path: str | os.PathLike, overwrite: bool = False, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """`path` as a Path, refused if its folder is missing, it is one of `inputs` (files; other
    entries such as `sample:NAME` are skipped), or it exists without `overwrite`."""
    path = check_folder(path)
    for source in inputs:
        if Path(source).exists() and Path(source).resolve() == path.resolve():
            raise UserError(f"Output {path} is also an input; choose another output path.")
    return check_overwrite(path, overwrite)


def check_overwrite(path: str | os.PathLike, overwrite: bool) -> Path:
    """`path` as a Path; it must not exist unless `overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise exists_error(path)
    return path


def exists_error(path: Path) -> UserError:
    """The one sentence for an output that exists while `overwrite` is off."""
    return UserError(f"{path} already exists; pass overwrite=true or choose another output.")


def unique_path(path: Path, overwrite: bool = False) -> Path:
    """`path`, or `path` numbered _2, _3, … while that exists (unless `overwrite`)."""
    known = path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_OUTPUT_SUFFIXES
    stem, suffix = (path.stem, path.suffix) if known else (path.name, "")
    candidate, number = path, 2
    while candidate.exists() and not overwrite:
        candidate = path.with_name(f"{stem}_{number}{suffix}")
        number += 1
    return candidate


def file_mode() -> int:
    """The mode of a newly created ordinary file: 0o666 less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def publish(temporary: Path, path: Path, overwrite: bool) -> None:
    """Give the finished `temporary` the name `path`: replacing a file there, or without
    `overwrite` only if none exists at this instant. A hard link is created atomically or not at
    all, so of two runs racing for one name exactly one writes (no check-then-rename window)."""
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise exists_error(path) from None
    except OSError:  # a filesystem without hard links: reserve the name, then fill it
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise exists_error(path) from None
        os.replace(temporary, path)


@contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix) to write to; when the block ends
    without an error it gets a normal file's mode and takes the name `path` (`publish`: without
    `overwrite`, only if that does not exist), otherwise it is removed."""
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, file_mode())
        publish(temporary, path, overwrite)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder beside `path` to write files into; when the block ends without
    an error they are moved into `path` (created if need be; `publish`), otherwise the folder
    is removed."""
    path = Path(path)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield temporary
        path.mkdir(exist_ok=True)
        published = []
        try:
            for item in sorted(temporary.iterdir()):
                publish(item, path / item.name, overwrite)
                published.append(path / item.name)
        except UserError:  # a name taken meanwhile: take back this run's files, all or nothing
            for item in published:
                item.unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
