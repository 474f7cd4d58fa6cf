"""Per-video part files, and gathering them into the sharded TFRecord dataset + manifest.

Layout of an output directory:
  parts/settings.json          the settings the parts were made with (a re-run with other
                               settings into the same directory is refused)
  parts/<key>.npz              the windows of one video (numpy arrays, see `write_part`)
  parts/<key>.face.png         a face thumbnail of the video (for contact sheets), if found
  parts/<key>.json             its status: the per-video *done marker*, written after the
                               .npz; a video is done when its .json exists
  <split>-NNNNN-of-NNNNN.tfrecord   the records (avprep.records), written by `gather`
  manifest.json                written last, by `gather` (and only when some video gave
                               windows); it keeps each shard's size and record count and
                               the input files that are not used (`ignored_files`)

Every file is written to a temporary name in the same directory and moved into place with
os.replace, so an interrupted run leaves either a whole file or none; a part whose .json is
missing is simply made again. `gather` always rebuilds the shards from all parts, so running
it again never duplicates records. Only `gather` imports TensorFlow.
"""
import hashlib
import json
import os
import re

import cv2
import numpy as np

from avprep import pairs, records, speakers
from avprep.atomic import atomic_write

PARTS_DIR = "parts"
SETTINGS_NAME = "settings.json"
_ARRAYS = ("mouth", "speech_genuine", "speech_impostor", "start_frame", "impostor_shift")


def part_key(video_id):
    """File-name-safe key of a video id (readable prefix + hash, so ids never collide)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id)[-80:]
    digest = hashlib.sha256(video_id.encode("utf-8")).hexdigest()[:10]
    return f"{readable}-{digest}"


def parts_dir(output_dir):
    """Directory of the per-video part files of `output_dir`."""
    return os.path.join(output_dir, PARTS_DIR)


def check_settings(output_dir, settings):
    """Records `settings` (a JSON-ready dict) for the parts of `output_dir`, or raises
    ValueError when the directory already holds parts made with other settings."""
    path = os.path.join(parts_dir(output_dir), SETTINGS_NAME)
    if os.path.exists(path):
        with open(path) as handle:
            previous = json.load(handle)
        if previous != json.loads(json.dumps(settings)):
            raise ValueError(f"{output_dir} holds parts made with other settings "
                             f"({path}); use a new output directory")
        return
    records.write_json_atomic(path, settings)


def write_part(output_dir, video_id, windows, status):
    """Stores the windows of one video (avprep.pairs.Windows or None), its face thumbnail
    (status["face_chip"], uint8 (80, 80, 3) RGB, if present: taken out of the status) and
    then its status (a JSON-ready dict), which marks the video done. Returns the status
    as stored."""
    directory = parts_dir(output_dir)
    key = part_key(video_id)
    if windows is not None and len(windows):
        arrays = {name: getattr(windows, name) for name in _ARRAYS}
        atomic_write(os.path.join(directory, key + ".npz"),
                      lambda handle: np.savez(handle, **arrays))
    status = dict(status)
    chip = status.pop("face_chip", None)
    if chip is not None:
        write_png(os.path.join(directory, key + ".face.png"), chip)
    records.write_json_atomic(os.path.join(directory, key + ".json"), status)
    return status


def write_png(path, rgb):
    """Writes uint8 (H, W, 3) RGB `rgb` to `path` as PNG, atomically."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode {path} as PNG")
    atomic_write(path, lambda handle: handle.write(encoded.tobytes()))


def load_face_chip(output_dir, video_id):
    """uint8 (80, 80, 3) RGB face thumbnail of a video, or None when it has none."""
    path = os.path.join(parts_dir(output_dir), part_key(video_id) + ".face.png")
    image = cv2.imread(path, cv2.IMREAD_COLOR) if os.path.exists(path) else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_status(output_dir, video_id):
    """The status dict of a finished video, or None when it is not done (or its failure was
    not the file's fault: status "retry")."""
    path = os.path.join(parts_dir(output_dir), part_key(video_id) + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        status = json.load(handle)
    if status.get("retry"):
        return None
    if status.get("windows", 0) > 0 and not os.path.exists(path[:-len(".json")] + ".npz"):
        return None
    return status


def load_part(output_dir, video_id):
    """dict of the numpy arrays of a video's windows (mouth uint8 (W, 9, 60, 100),
    speech_genuine / speech_impostor float32 (W, T, F, C), start_frame int64 (W,),
    impostor_shift float32 (W,))."""
    path = os.path.join(parts_dir(output_dir), part_key(video_id) + ".npz")
    with np.load(path) as data:
        return {name: data[name] for name in _ARRAYS}


def _shard_count(num_windows, requested):
    return max(1, min(requested, num_windows)) if num_windows else 0


def _remove_stale_shards(output_dir, keep):
    """Deletes shard files of an earlier gather that the new one does not write, and the
    temporary shards of an interrupted one."""
    pattern = re.compile(r"^(\.tmp-)?(train|validation|test)-\d{5}-of-\d{5}\.tfrecord$")
    for name in os.listdir(output_dir):
        if pattern.match(name) and name not in keep:
            os.remove(os.path.join(output_dir, name))


def _replace_with_donor_audio(part, donor_speech, fraction, rng):
    """Swaps the impostor audio of a share of windows for a donor video's genuine audio;
    returns the number swapped."""
    replaced, donor_index = pairs.other_video_impostors(
        len(part["start_frame"]), len(donor_speech), fraction, rng)
    part["speech_impostor"][replaced] = donor_speech[donor_index]
    part["impostor_shift"][replaced] = 0.0
    return len(replaced)


def _sync(path):
    """Flushes a closed file to disk, so the rename that follows publishes whole data."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _write_split(output_dir, split, video_ids, window_counts, num_output_shards,
                 window_config):
    """Writes one split's shards; returns (shard names, windows, other-video impostors,
    {shard name: {"bytes", "records"}}).

    Windows go round-robin over the shards (in video order, then start order), so every
    shard mixes all videos of the split.
    """
    import tensorflow as tf
    total = sum(window_counts[v] for v in video_ids)
    count = _shard_count(total, num_output_shards)
    names = [records.shard_name(split, i, count) for i in range(count)]
    temps = [os.path.join(output_dir, ".tmp-" + name) for name in names]
    writers = [tf.io.TFRecordWriter(path) for path in temps]
    per_shard = [0] * count
    written = other = 0
    try:
        for position, video_id in enumerate(video_ids):
            part = load_part(output_dir, video_id)
            if window_config.impostor_other_video_fraction > 0 and len(video_ids) > 1:
                donor = video_ids[(position + 1) % len(video_ids)]
                rng = pairs.video_rng(window_config.seed + 1, video_id)
                other += _replace_with_donor_audio(
                    part, load_part(output_dir, donor)["speech_genuine"],
                    window_config.impostor_other_video_fraction, rng)
            for i in range(len(part["start_frame"])):
                writers[written % count].write(records.serialize_window(
                    part["mouth"][i], part["speech_genuine"][i], part["speech_impostor"][i],
                    video_id, int(part["start_frame"][i]), float(part["impostor_shift"][i])))
                per_shard[written % count] += 1
                written += 1
    finally:
        for writer in writers:
            writer.close()
    sizes = {}
    for temp, name, number in zip(temps, names, per_shard):
        _sync(temp)
        sizes[name] = {"bytes": os.path.getsize(temp), "records": number}
        os.replace(temp, os.path.join(output_dir, name))
    return names, written, other, sizes


def gather(output_dir, entries, statuses, speech_shape, settings, num_output_shards,
           window_config, speaker_of=None, ignored_files=()):
    """Writes the sharded records of all finished videos and manifest.json.

    Args:
      output_dir: the dataset directory (holding parts/).
      entries: avprep.splits.VideoEntry list (all videos of the input, sorted).
      statuses: dict video_id -> status dict (one per entry).
      speech_shape: (T, F, C) of a speech cube.
      settings: dict stored in the manifest (features, window config, build settings).
      num_output_shards: shards per split (fewer when a split has fewer windows).
      window_config: avprep.pairs.WindowConfig (other-video impostors and seed).
      speaker_of: dict video_id -> speaker id (None: the entries' own labels).
      ignored_files: [{"path", "reason"}] input files not used (avprep.splits.ignored_files).
    Returns:
      The manifest dict.
    """
    manifest_path = os.path.join(output_dir, records.MANIFEST_NAME)
    if os.path.exists(manifest_path):
        # shards are about to change: never leave a manifest that describes other shards
        os.remove(manifest_path)
    window_counts = {e.video_id: statuses[e.video_id].get("windows", 0) for e in entries}
    splits, all_names = {}, []
    for split in records.SPLITS:
        video_ids = sorted(e.video_id for e in entries
                           if e.split == split and window_counts[e.video_id] > 0)
        names, written, other, sizes = _write_split(output_dir, split, video_ids,
                                                    window_counts, num_output_shards,
                                                    window_config)
        all_names += names
        splits[split] = {"windows": written, "genuine": written, "impostor": written,
                         "impostor_other_video": other, "videos": len(video_ids),
                         "shards": names, "shard_sizes": sizes}
    _remove_stale_shards(output_dir, set(all_names))
    speaker_of = speaker_of or {e.video_id: e.speaker for e in entries}
    files = [_file_entry(statuses[e.video_id], e, speaker_of[e.video_id]) for e in entries]
    manifest = dict(settings,
                    shapes={"mouth": list(records.MOUTH_SHAPE), "speech": list(speech_shape)},
                    splits=splits, files=files, speakers=speakers.speaker_counts(files),
                    ignored_files=list(ignored_files))
    write_contact_sheets(output_dir, files)
    return records.write_manifest(output_dir, manifest)


def _file_entry(status, entry, speaker):
    """The manifest's entry of one input file (its status without the face descriptor)."""
    item = {k: v for k, v in status.items() if k != "face_descriptor"}
    return dict(item, path=entry.relpath, split=entry.split, source=entry.source,
                speaker=speaker)


def write_contact_sheets(output_dir, files):
    """Writes speakers-<split>.png: one face per speaker of the split (the first video with
    a face thumbnail), labelled with the speaker id, so the grouping can be checked by eye."""
    for split in records.SPLITS:
        chips, labels, seen = [], [], set()
        for item in files:
            if item["split"] != split or item["speaker"] in seen or not item.get("windows"):
                continue
            chip = load_face_chip(output_dir, item["video_id"])
            if chip is not None:
                seen.add(item["speaker"])
                chips.append(chip)
                labels.append(str(item["speaker"]))
        if chips:
            write_png(os.path.join(output_dir, f"speakers-{split}.png"),
                      speakers.contact_sheet(chips, labels))
