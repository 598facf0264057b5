import numpy as np
import pytest

from sk_animals.datasets import (
    ANIMALS10_CLASSES,
    fetch_animals10,
    load_animals10,
    load_folder,
    load_image_csv,
    load_image_folder,
    make_image_dataset,
    save_image_folder,
)


@pytest.fixture
def folder(tmp_path):
    X, y = make_image_dataset(n_samples=30, n_classes=3, size=12, random_state=0)
    root = save_image_folder(X, y, tmp_path / "images")
    (root / "circle" / ".DS_Store").write_text("junk")
    (root / "circle" / "notes.txt").write_text("junk")
    (root / ".hidden").mkdir()
    (root / "cross" / "broken.png").write_bytes(b"not a png")
    return root


def test_load_image_folder_layout_and_skips(folder):
    with pytest.warns(UserWarning, match="skipped 2 file"):
        data = load_image_folder(folder)
    assert data.target_names == ["circle", "cross", "triangle"]
    assert len(data.data) == len(data.target) == 31  # 30 good + broken.png (not decoded)
    assert {reason for _, reason in data.skipped} == {"hidden file", "not an image file extension"}
    assert all(str(folder) in p for p in data.data)


def test_verify_drops_unreadable_files(folder):
    with pytest.warns(UserWarning, match="skipped 3 file"):
        data = load_image_folder(folder, verify=True)
    assert len(data.data) == 30 and not any("broken" in p for p in data.data)
    assert any("broken.png" in name and "cannot identify" in why for name, why in data.skipped)


def test_per_class_sampling_is_stratified_and_seeded(folder):
    kw = {"per_class": 4, "random_state": 0}
    with pytest.warns(UserWarning):
        a, b = load_image_folder(folder, **kw), load_image_folder(folder, **kw)
    np.testing.assert_array_equal(a.data, b.data)
    assert dict(zip(*np.unique(a.target, return_counts=True), strict=True)) == {
        "circle": 4,
        "cross": 4,
        "triangle": 4,
    }


def test_short_class_keeps_all_and_warns(folder):
    with pytest.warns(
        UserWarning, match=r"fewer than per_class=50 images and keep all of them: circle \(10\)"
    ):
        data = load_image_folder(folder, per_class=50, random_state=0)
    assert (data.target == "circle").sum() == 10


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        load_image_folder(tmp_path)


def test_load_animals10_translates_kaggle_layout(tmp_path):
    X, _ = make_image_dataset(n_samples=4, n_classes=2, size=8, random_state=0)
    save_image_folder(X, ["cane", "cane", "ragno", "ragno"], tmp_path / "raw-img")
    data = load_animals10(tmp_path)
    assert data.target_names == ["dog", "spider"]
    with pytest.raises(FileNotFoundError, match="not an Animals-10 folder"):
        load_animals10(tmp_path / "raw-img" / "cane")


def test_fetch_animals10_uses_cache_and_fails_clearly_offline(tmp_path):
    with pytest.raises(OSError, match="by hand"):
        fetch_animals10(tmp_path, download_if_missing=False)
    X, _ = make_image_dataset(n_samples=2, n_classes=2, size=8, random_state=0)
    save_image_folder(X, ["cane", "gatto"], tmp_path / "animals10" / "raw-img")
    assert fetch_animals10(tmp_path).target_names == ["cat", "dog"]


def test_real_animals10_sample(shared):
    data = load_animals10(shared / "data" / "animals10-sample", per_class=10, random_state=0)
    assert data.target_names == sorted(ANIMALS10_CLASSES.values())
    assert len(data.data) == 100


def test_make_image_dataset_is_deterministic_and_balanced():
    X1, y1 = make_image_dataset(n_samples=40, n_classes=4, size=16, random_state=3)
    X2, y2 = make_image_dataset(n_samples=40, n_classes=4, size=16, random_state=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert set(np.unique(y1, return_counts=True)[1]) == {10}
    assert X1.std() > 20
    with pytest.raises(ValueError, match="n_classes"):
        make_image_dataset(n_classes=9)


def test_make_image_dataset_is_learnable_not_trivial():
    from sklearn.linear_model import LogisticRegression

    X, y = make_image_dataset(n_samples=400, n_classes=4, size=16, random_state=0)
    flat = X.reshape(len(X), -1) / 255.0
    # A linear model on raw pixels is near chance: the task needs spatial features.
    score = LogisticRegression(max_iter=300).fit(flat[:300], y[:300]).score(flat[300:], y[300:])
    assert score < 0.6


def test_class_folder_linking_to_an_ancestor_is_refused(tmp_path):
    X, y = make_image_dataset(n_samples=4, n_classes=2, size=16, random_state=0)
    root = save_image_folder(X, y, tmp_path / "data")
    (root / "loop").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="loop' is a link.*contains"):
        load_image_folder(root)


def test_two_class_folders_resolving_to_one_are_refused(tmp_path):
    X, y = make_image_dataset(n_samples=4, n_classes=2, size=16, random_state=0)
    root = save_image_folder(X, y, tmp_path / "data")
    (root / "also_circle").symlink_to(root / "circle")
    with pytest.raises(ValueError, match="are the same folder"):
        load_image_folder(root)


def test_empty_class_folder_is_named_in_a_warning(tmp_path):
    X, y = make_image_dataset(n_samples=4, n_classes=2, size=16, random_state=0)
    root = save_image_folder(X, y, tmp_path / "data")
    (root / "empty").mkdir()
    with pytest.warns(UserWarning, match="'.*empty' holds no images"):
        data = load_image_folder(root)
    assert data.target_names == ["circle", "cross"]


def _csv(path, rows, delimiter=",", encoding="utf-8"):
    path.write_text("\n".join(delimiter.join(r) for r in rows) + "\n", encoding=encoding)
    return path


@pytest.fixture
def table(tmp_path):
    """A folder of images without class folders and the CSV that labels them."""
    X, y = make_image_dataset(n_samples=12, n_classes=2, size=12, random_state=0)
    root = save_image_folder(X, y, tmp_path / "flat")
    files = sorted(root.rglob("*.png"))
    rows = [("label", "notes", "path")]
    rows += [(f.parent.name, "x", str(f.relative_to(root))) for f in files]
    return root, _csv(root / "labels.csv", rows), files


def test_load_image_csv_matches_the_folder(table):
    root, path, files = table
    data = load_image_csv(path)
    folder = load_image_folder(root)
    assert sorted(data.data) == sorted(folder.data) and data.target_names == folder.target_names
    assert dict(zip(data.data, data.target, strict=True)) == dict(
        zip(folder.data, folder.target, strict=True)
    )
    assert list(data.data) == [str(f) for f in files]  # the table's order


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_spreadsheet_csvs_are_read(table, delimiter):
    root, path, files = table
    text = path.read_text().replace(",", delimiter)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # Excel's "CSV UTF-8" has a BOM
    assert len(load_image_csv(path).data) == len(files)


def test_dataframe_and_root_and_columns(table):
    pd = pytest.importorskip("pandas")
    root, path, files = table
    frame = pd.DataFrame({"file": [f.name for f in files], "y": [f.parent.name for f in files]})
    subfolders = {f.parent for f in files}
    assert len(subfolders) == 2
    one = frame[[f.parent == files[0].parent for f in files]]
    data = load_image_csv(one, path_column="file", label_column="y", root=files[0].parent)
    assert len(data.data) == len(one) and data.target_names == [files[0].parent.name]
    absolute = pd.DataFrame({"path": [str(f) for f in files], "label": frame["y"]})
    assert list(load_folder(absolute).data) == [str(f) for f in files]  # load_folder takes it
    with pytest.raises(ValueError, match=r"the DataFrame.*no column 'path'.*'file', 'y'"):
        load_image_csv(frame)


def test_repeated_rows_are_kept_once(table):
    root, path, files = table
    path.write_text(path.read_text() + f"{files[0].parent.name},x,{files[0].relative_to(root)}\n")
    with pytest.warns(UserWarning, match="skipped 1 file"):
        data = load_image_csv(path)
    assert len(data.data) == len(files) and "repeated at line" in data.skipped[0][1]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda rows: [("file", "label")] + rows[1:], r"no column 'path'; its columns are 'file'"),
        (lambda rows: rows + [("circle", "x", "gone.png")], r"line 14: image 'gone.png' does not"),
        (lambda rows: rows[:3] + [("", "x", rows[3][2])], r"line 4: the label of .* is empty"),
        (lambda rows: rows + [("other", "x", rows[1][2])], r"line 14: .* labelled 'other' here"),
    ],
)
def test_bad_csvs_name_the_file_and_the_line(table, edit, message):
    root, path, _ = table
    rows = [tuple(line.split(",")) for line in path.read_text().splitlines()]
    _csv(path, edit(rows))
    with pytest.raises(ValueError, match=message) as info:
        load_image_csv(path)
    assert str(path) in str(info.value)


def test_non_utf8_and_folders_are_refused(table, tmp_path):
    root, path, _ = table
    _csv(path, [("path", "label"), ("chèvre.png", "chèvre")], encoding="latin-1")
    with pytest.raises(ValueError, match="is not UTF-8 text .line 2.: save it as CSV UTF-8"):
        load_image_csv(path)
    with pytest.raises(ValueError, match="is a folder, not a CSV file"):
        load_image_csv(root)
