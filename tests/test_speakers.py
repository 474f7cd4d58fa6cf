"""Speaker identities: face grouping of the shared videos' known repeated speakers, several
sources in one listing, speaker-disjoint splits, speaker counts and contact sheets."""
import dataclasses

import numpy as np
import pytest

from avprep import speakers, splits
from avprep.faces import CHIP_SIZE, FaceDescriber, group_by_face
from avprep.mouth_tracking import MouthTracker
from avprep.video_io import decode_video

# Known same-speaker groups of ../shared/data/videos (its SOURCES.md), plus three people
# believed different from each of them.
SAME = [("pcavs_Audio_Source_741400104", "pcavs_Pose_Source_741400163"),
        ("pcavs_Input_00002", "pcavs_Pose_Source_517600055"),
        ("retalking_face3", "sadtalker_WDA_AlexandriaOcasioCortez_000")]
OTHERS = ["retalking_face1", "sadtalker_WDA_KatieHill_000", "real3dportrait_May_5s"]


def _descriptor(describer, tracker, path):
    video = decode_video(path, need_audio=False, max_frames=60)
    track = tracker.track(video.frames)
    descriptor, chip = describer.describe(video.frames, track.active)
    assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3) and chip.dtype == np.uint8
    return descriptor


def test_known_repeated_speakers_of_the_shared_videos_group_together(shared_videos):
    tracker = MouthTracker()
    describer = FaceDescriber(tracker)
    names = [name for pair in SAME for name in pair] + OTHERS
    descriptors = [_descriptor(describer, tracker, shared_videos / f"{name}.mp4")
                   for name in names]
    group = dict(zip(names, group_by_face(descriptors)))
    for first, second in SAME:
        assert group[first] == group[second], (first, second, group)
    firsts = [pair[0] for pair in SAME] + OTHERS
    assert len({group[name] for name in firsts}) == len(firsts), group


def test_grouping_is_deterministic_and_numbered_by_first_appearance():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 128))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = np.concatenate([c + rng.normal(scale=0.01, size=(4, 128)) for c in centres])
    order = rng.permutation(len(points))
    labels = group_by_face(points[order])
    assert labels[0] == 0 and sorted(set(labels)) == [0, 1, 2]
    np.testing.assert_array_equal(labels, group_by_face(points[order]))
    truth = np.repeat([0, 1, 2], 4)[order]
    for label in range(3):
        assert len(set(truth[labels == label])) == 1


def _entries(count_by_speaker):
    return [splits.VideoEntry(f"/x/{s}_{i}.mp4", f"{s}_{i}.mp4", f"{s}_{i}", "train", source="x")
            for s, count in count_by_speaker.items() for i in range(count)]


def test_speaker_split_puts_each_speaker_in_one_split_with_the_requested_weight():
    counts = {f"spk{k:02d}": 1 + (k * 7) % 13 for k in range(60)}
    counts["big"] = 40
    entries = _entries(counts)
    speaker_of = {e.video_id: e.video_id.rsplit("_", 1)[0] for e in entries}
    split = splits.assign_speaker_splits(entries, speaker_of, (0.8, 0.1, 0.1))
    by_speaker = {}
    for entry in split:
        by_speaker.setdefault(speaker_of[entry.video_id], set()).add(entry.split)
    assert all(len(found) == 1 for found in by_speaker.values())
    share = {name: sum(e.split == name for e in split) / len(split) for name in splits.SPLITS}
    assert set(share) == set(splits.SPLITS) and all(share.values())
    assert abs(share["train"] - 0.8) < 0.1, share
    again = splits.assign_speaker_splits(list(reversed(entries)), speaker_of, (0.8, 0.1, 0.1))
    assert {e.video_id: e.split for e in again} == {e.video_id: e.split for e in split}


def test_speaker_ids_use_labels_then_faces_then_the_file():
    entries = _entries({"a": 2, "b": 1})
    entries[2] = dataclasses.replace(entries[2], speaker="s1", source="grid")
    descriptors = {"a_0": np.zeros(128), "a_1": np.full(128, 0.001)}
    ids = speakers.speaker_ids(entries, descriptors)
    assert ids["a_0"] == ids["a_1"] == "face-000"
    assert ids["b_0"] == "grid:s1"
    del descriptors["a_1"]
    assert speakers.speaker_ids(entries, descriptors)["a_1"] == "file:a_1"


def test_several_sources_are_listed_with_prefixed_ids(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        for clip in ("a.mp4", "b.mp4"):
            (tmp_path / name / clip).write_bytes(b"")
    config = splits.SplitConfig(layout="flat,flat")
    entries = splits.list_videos(f"{tmp_path / 'one'},{tmp_path / 'two'}", config)
    assert [e.video_id for e in entries] == ["one/a", "one/b", "two/a", "two/b"]
    assert [e.source for e in entries] == ["one", "one", "two", "two"]
    with pytest.raises(ValueError, match="2 input folders but 3 layouts"):
        splits.list_videos(f"{tmp_path / 'one'},{tmp_path / 'two'}",
                           splits.SplitConfig(layout="flat,flat,grid"))


def test_speaker_counts_and_contact_sheet():
    files = [{"source": "s", "split": "train", "speaker": "face-000", "windows": 3},
             {"source": "s", "split": "train", "speaker": "face-000", "windows": 2},
             {"source": "t", "split": "test", "speaker": "face-001", "windows": 1},
             {"source": "t", "split": "test", "speaker": "face-002", "windows": 0}]
    assert speakers.speaker_counts(files) == {"per_source": {"s": 1, "t": 1},
                                              "per_split": {"test": 1, "train": 1}}
    chips = [np.full((CHIP_SIZE, CHIP_SIZE, 3), 20 * i, np.uint8) for i in range(12)]
    sheet = speakers.contact_sheet(chips, [f"face-{i:03d}" for i in range(12)], columns=5)
    assert sheet.shape == (3 * (CHIP_SIZE + 14), 5 * CHIP_SIZE, 3) and sheet.dtype == np.uint8
    assert (sheet[:CHIP_SIZE, CHIP_SIZE:2 * CHIP_SIZE] == 20).all()
