"""avprep.atomic: whole-file writes and where a path would start to be created."""
import os

import pytest

from avprep.atomic import atomic_write, check_folder_path, nearest_existing


def test_nearest_existing_is_the_path_itself_or_the_deepest_part_that_exists(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("x")
    assert nearest_existing(tmp_path / "a") == str(tmp_path / "a")
    assert nearest_existing(tmp_path / "a" / "b" / "c") == str(tmp_path / "a")
    assert nearest_existing(tmp_path / "a" / "f" / "g") == str(tmp_path / "a" / "f")


def test_a_dangling_link_is_in_the_way(tmp_path):
    os.symlink(tmp_path / "missing", tmp_path / "link")
    assert nearest_existing(tmp_path / "link" / "x") == str(tmp_path / "link")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write(str(target), lambda handle: handle.write("old"), binary=False)

    def fail(handle):
        handle.write("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(str(target), fail, binary=False)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_check_folder_path_names_what_stands_in_the_way(tmp_path):
    (tmp_path / "f").write_text("x")
    assert check_folder_path(tmp_path / "new" / "dir", "out") == str(tmp_path)
    with pytest.raises(NotADirectoryError, match="^out exists and is not a directory$"):
        check_folder_path(tmp_path / "f", "out")
    with pytest.raises(NotADirectoryError, match=f"^out cannot be created: {tmp_path / 'f'} is"):
        check_folder_path(tmp_path / "f" / "sub", "out")
