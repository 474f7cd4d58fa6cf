"""One dataset whose training split is the union of several datasets' training splits, built
from the same videos with different pair settings (e.g. impostor audio 0.5 s and 0.1 s away),
while validation and test stay those of the first dataset (the base), so scores remain
comparable with models trained on the base alone.

Nothing is copied: the merged directory holds symbolic links to the inputs' shards (renamed
into one numbering) and a manifest, the base's with its train entry replaced and a `merged`
entry recording each input. Checks, each a ValueError naming the problem: the inputs'
features and cube shapes must equal the base's (a model trained on the merge must read the
base's test split the same way), every video with training windows in an added dataset must
be a training video of the base (no validation or test video leaks into training), and each
shard must hold whole records, as many as its manifest says where it says.
"""
import os
import shutil
import struct

from avprep import records

_HEADER = 12  # uint64 record length + uint32 CRC of it
_FOOTER = 4  # uint32 CRC of the record


def count_records(path):
    """Records in a TFRecord file, read from the length headers alone; ValueError naming the
    file when it ends inside a record."""
    count, position, size = 0, 0, os.path.getsize(path)
    with open(path, "rb") as handle:
        while position < size:
            header = handle.read(_HEADER)
            if len(header) < _HEADER:
                raise ValueError(f"{path} is damaged: it ends inside a record header")
            length = struct.unpack("<Q", header[:8])[0]
            position += _HEADER + length + _FOOTER
            if position > size:
                raise ValueError(f"{path} is damaged: it ends inside record {count + 1}")
            handle.seek(position)
            count += 1
    return count


def _features(manifest):
    return {"speech": manifest.get("features", {}).get("speech"),
            "crop": manifest.get("features", {}).get("crop"),
            "shapes": manifest.get("shapes")}


def _train_videos(manifest):
    """{video path: split} of the manifest's videos, and the paths with training windows."""
    split_of = {f["path"]: f.get("split") for f in manifest.get("files", [])}
    training = {f["path"] for f in manifest.get("files", [])
                if f.get("split") == "train" and f.get("windows", 0) > 0}
    return split_of, training


def check_mergeable(base, extra, extra_dir):
    """Raises ValueError when the manifest dict `extra` (of `extra_dir`) cannot add training
    data to the manifest dict `base`: other features or shapes, or a training video that is
    not a training video of the base."""
    if _features(extra) != _features(base):
        raise ValueError(f"{extra_dir} was built with other features or cube shapes than the "
                         f"base ({_features(extra)} against {_features(base)})")
    base_split, _ = _train_videos(base)
    _, training = _train_videos(extra)
    for path in sorted(training):
        if base_split.get(path) != "train":
            where = base_split.get(path) or "absent"
            raise ValueError(f"{extra_dir}: training video {path} is not a training video of "
                             f"the base (there: {where})")


def _train_shards(data_dir, manifest):
    """[(absolute shard path, {"bytes", "records"})] of a dataset's train split, each checked
    against its manifest's size where the manifest has one."""
    entry = manifest.get("splits", {}).get("train", {})
    sizes = records.shard_sizes(entry)
    shards = []
    for name in entry.get("shards", []):
        path = os.path.realpath(os.path.join(data_dir, name))
        if not os.path.isfile(path):
            raise ValueError(f"{path} is missing (listed in {data_dir}'s manifest)")
        actual = {"bytes": os.path.getsize(path), "records": count_records(path)}
        expected = sizes.get(name)
        if expected is not None and expected != actual:
            raise ValueError(f"{path} is damaged: {actual}, its manifest says {expected}")
        shards.append((path, actual))
    if not shards:
        raise ValueError(f"{data_dir} has no training shards")
    return shards


def merged_manifest(base, inputs, shard_names, shard_sizes):
    """The base manifest dict with its train entry covering every input's training shards.

    inputs: [(data_dir, manifest dict)], the base first; shard_names: the merged shards' names
    in order; shard_sizes: {name: {"bytes", "records"}}.
    """
    train = dict(base["splits"]["train"], shards=list(shard_names), shard_sizes=shard_sizes)
    for key in ("windows", "genuine", "impostor", "impostor_other_video"):
        train[key] = sum(int(m["splits"]["train"].get(key, 0)) for _, m in inputs)
    merged = [{"data_dir": os.path.abspath(d), "window": m.get("features", {}).get("window"),
               "train_windows": int(m["splits"]["train"].get("windows", 0))}
              for d, m in inputs]
    return dict(base, splits=dict(base["splits"], train=train), merged=merged)


def _read(data_dir):
    """The manifest dict of data_dir; ValueError naming the file when it cannot be read."""
    try:
        return records.read_manifest(data_dir)
    except (OSError, ValueError) as error:
        raise ValueError(f"{os.path.join(data_dir, records.MANIFEST_NAME)} is not a usable "
                         f"dataset manifest: {error}") from None


def merge_training_data(base_dir, extra_dirs, output_dir):
    """Writes output_dir (which must not exist): links to the base's validation and test shards
    and to every input's training shards, and the merged manifest (written last, and the
    folder renamed into place, so an interrupted run leaves no dataset). Returns the manifest.
    """
    inputs = [(d, _read(d)) for d in [base_dir] + list(extra_dirs)]
    base = inputs[0][1]
    for data_dir, manifest in inputs[1:]:
        check_mergeable(base, manifest, data_dir)
    shards = [shard for data_dir, manifest in inputs for shard in _train_shards(data_dir,
                                                                                  manifest)]
    names = [records.shard_name("train", i, len(shards)) for i in range(len(shards))]
    partial = output_dir.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    for name, (path, _) in zip(names, shards):
        os.symlink(path, os.path.join(partial, name))
    for split in records.SPLITS[1:]:
        for name in base.get("splits", {}).get(split, {}).get("shards", []):
            os.symlink(os.path.realpath(os.path.join(base_dir, name)),
                       os.path.join(partial, name))
    manifest = merged_manifest(base, inputs, names,
                               {n: size for n, (_, size) in zip(names, shards)})
    written = records.write_manifest(partial, manifest)
    os.rename(partial, output_dir)
    return written
