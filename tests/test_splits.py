"""Deterministic, disjoint train/validation/test splits for each layout."""
from pathlib import Path

import pytest

from avprep import splits


def _touch(root, relpaths):
    for relpath in relpaths:
        path = Path(root) / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


NAMES = [f"group{i % 3}/clip{i:02d}.mp4" for i in range(30)]


def test_flat_split_is_disjoint_complete_and_by_fraction(tmp_path):
    _touch(tmp_path, NAMES + ["notes.txt", "group1/audio.wav"])
    entries = splits.list_videos(tmp_path)
    assert [e.relpath for e in entries] == sorted(NAMES)
    by_split = {s: {e.relpath for e in entries if e.split == s} for s in splits.SPLITS}
    assert [len(by_split[s]) for s in splits.SPLITS] == [24, 3, 3]
    assert set.union(*by_split.values()) == set(NAMES)
    assert sum(len(v) for v in by_split.values()) == len(NAMES)
    assert entries[0].video_id == "group0/clip00" and entries[0].speaker is None


def test_flat_split_does_not_depend_on_creation_order_or_location(tmp_path):
    _touch(tmp_path / "a", NAMES)
    _touch(tmp_path / "b", list(reversed(NAMES)))
    first = [(e.relpath, e.split) for e in splits.list_videos(tmp_path / "a")]
    second = [(e.relpath, e.split) for e in splits.list_videos(tmp_path / "b")]
    assert first == second


def test_split_counts_round_by_largest_remainder():
    assert splits.split_counts(24, (2 / 3, 1 / 6, 1 / 6)) == [16, 4, 4]
    assert splits.split_counts(24, (0.8, 0.1, 0.1)) == [19, 3, 2]
    assert splits.split_counts(1, (0.8, 0.1, 0.1)) == [1, 0, 0]
    assert sum(splits.split_counts(999, (0.7, 0.2, 0.1))) == 999


def test_lrw_layout_takes_the_split_from_the_folder(tmp_path):
    _touch(tmp_path, ["ABOUT/train/ABOUT_00001.mp4", "ABOUT/val/ABOUT_00001.mp4",
                      "ABOUT/test/ABOUT_00001.mp4", "ABOUT/train/ABOUT_00001.txt"])
    entries = splits.list_videos(tmp_path, splits.SplitConfig(layout="lrw"))
    assert {e.relpath: e.split for e in entries} == {
        "ABOUT/test/ABOUT_00001.mp4": "test", "ABOUT/train/ABOUT_00001.mp4": "train",
        "ABOUT/val/ABOUT_00001.mp4": "validation"}


def test_grid_single_speaker_splits_by_video_with_alignments(tmp_path):
    ids = [f"bba{i:02d}" for i in range(20)]
    _touch(tmp_path, [f"video/{i}.mp4" for i in ids] + [f"align/{i}.align" for i in ids[:-1]])
    entries = splits.list_videos(tmp_path, splits.SplitConfig(layout="grid"))
    assert len(entries) == 20 and len({e.split for e in entries}) == 3
    assert all(e.align_path.endswith(e.relpath[6:-4] + ".align") for e in entries[:-1])
    assert entries[-1].align_path is None


def _ignored(input_dir, config=splits.SplitConfig(), exclude_dir=None):
    """{path: reason} of splits.ignored_files of `input_dir` (a str: one or more folders)."""
    entries = splits.list_videos(input_dir, config)
    return {item["path"]: item["reason"]
            for item in splits.ignored_files(input_dir, config, entries, exclude_dir)}


def test_files_that_are_not_videos_are_listed_as_ignored(tmp_path):
    _touch(tmp_path, ["a.mp4", "B.MOV", "speech.wav", "sub/notes", ".DS_Store",
                      ".cache/x.bin", "out/manifest.json"])
    assert _ignored(str(tmp_path), exclude_dir=str(tmp_path / "out")) == {
        "speech.wav": "not a video (.wav)", "sub/notes": "not a video (no extension)"}


def test_ignored_files_by_layout_and_source(tmp_path):
    _touch(tmp_path / "lrw", ["ABOUT/train/ABOUT_1.mp4", "ABOUT/train/ABOUT_1.txt",
                              "ABOUT/extra/ABOUT_2.mp4"])
    lrw = _ignored(str(tmp_path / "lrw"), splits.SplitConfig(layout="lrw"))
    assert lrw["ABOUT/train/ABOUT_1.txt"] == "not a video (.txt)"
    assert "train/, val/ or test/" in lrw["ABOUT/extra/ABOUT_2.mp4"] and len(lrw) == 2
    # the alignments a grid layout reads are used; one without a video is not
    _touch(tmp_path / "grid", ["video/c1.mpg", "align/c1.align", "align/c9.align"])
    assert _ignored(str(tmp_path / "grid"), splits.SplitConfig(layout="grid")) == {
        "align/c9.align": "not a video (.align)"}
    # several sources: paths carry the source name, as the videos' do
    both = f"{tmp_path / 'lrw'},{tmp_path / 'grid'}"
    assert set(_ignored(both, splits.SplitConfig(layout="lrw,grid"))) == {
        "lrw/ABOUT/train/ABOUT_1.txt", "lrw/ABOUT/extra/ABOUT_2.mp4", "grid/align/c9.align"}


def test_grid_speakers_never_span_two_splits(tmp_path):
    files = [f"s{s}/video/c{i}.mpg" for s in range(1, 11) for i in range(3)]
    _touch(tmp_path, files + [f"s{s}/align/c0.align" for s in range(1, 11)])
    entries = splits.list_videos(tmp_path, splits.SplitConfig(layout="grid"))
    assert len(entries) == 30
    speaker_splits = {}
    for entry in entries:
        speaker_splits.setdefault(entry.speaker, set()).add(entry.split)
    assert all(len(v) == 1 for v in speaker_splits.values())
    assert sorted(len([s for s in speaker_splits.values() if split in s])
                  for split in splits.SPLITS) == [1, 1, 8]


def test_read_align_in_seconds(tmp_path):
    path = tmp_path / "x.align"
    path.write_text("0 17750 sil\n17750 22500 bin\n")
    assert splits.read_align(path) == [(0.0, 0.71, "sil"), (0.71, 0.9, "bin")]


def test_machine_shards_partition_the_list():
    entries = list(range(10))
    parts = [splits.select_shard(entries, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == entries
    with pytest.raises(ValueError):
        splits.select_shard(entries, 3, 3)


def test_bad_layout_and_fractions_are_refused(tmp_path):
    with pytest.raises(ValueError):
        splits.SplitConfig(layout="voxceleb")
    with pytest.raises(ValueError):
        splits.SplitConfig(train_fraction=0.9)
    with pytest.raises(FileNotFoundError):
        splits.list_videos(tmp_path / "absent")


def test_shared_grid_clips_all_have_alignments(shared_grid):
    entries = splits.list_videos(shared_grid, splits.SplitConfig(layout="grid"))
    assert len(entries) == 999
    assert all(e.align_path for e in entries)
    assert {e.split for e in entries} == set(splits.SPLITS)


def test_videos_in_lists_a_folder_itself_sorted_and_names_an_empty_one(tmp_path):
    _touch(tmp_path, ["b.MP4", "a.avi", "notes.txt", "sub/c.mp4"])
    assert [p.name for p in splits.videos_in(tmp_path)] == ["a.avi", "b.MP4"]
    with pytest.raises(ValueError, match="no video in .*sub2"):
        _touch(tmp_path, ["sub2/readme.txt"])
        splits.videos_in(tmp_path / "sub2")
