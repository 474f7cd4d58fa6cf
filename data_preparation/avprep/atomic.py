"""Atomic file writes: a reader sees the old file or the new one, whole, never a part.

Everything the project writes (datasets, manifests, checkpoints' JSON, plots, scores, videos)
goes through here, so an interrupted run loses no finished work and leaves no torn file.
"""
import contextlib
import os
import tempfile

OUTPUT_MODE = 0o644  # mkstemp makes files private (0600); outputs are meant to be shared.


def nearest_existing(path):
    """The absolute path of `path` itself when it exists, else of the deepest folder (or file)
    on its way that does: where creating it would start, so a file there means it cannot be
    made. A dangling link counts as existing: it is in the way too."""
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def check_folder_path(path, label):
    """The nearest existing folder of `path` (nearest_existing), or NotADirectoryError naming
    `label` when `path` cannot be a folder: it exists and is not one, or a file stands where a
    folder on its way must go. Checked before long work that writes there, as os.makedirs
    would fail only once the work is done."""
    existing = nearest_existing(path)
    if os.path.isdir(existing):
        return existing
    if existing == os.path.abspath(path):
        raise NotADirectoryError(f"{label} exists and is not a directory")
    raise NotADirectoryError(f"{label} cannot be created: {existing} is not a directory")


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` (same suffix, so writers that go by the
    extension work); when the block ends without an error it replaces `path`, else it is
    removed."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, OUTPUT_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, write, binary=True):
    """Calls write(handle) on a temporary file, flushes it to disk, then moves it to `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb" if binary else "w", newline=None if binary else "") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
