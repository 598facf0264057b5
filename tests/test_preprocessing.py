import io
import os
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError

from sk_animals.preprocessing import ImageLoader, ImageLoadError, find_bad_images

RED, BLUE = (220, 20, 20), (20, 20, 220)


def _two_colour(w=40, h=20):
    """Left half red, right half blue."""
    a = np.empty((h, w, 3), np.uint8)
    a[:, : w // 2], a[:, w // 2 :] = RED, BLUE
    return Image.fromarray(a)


def _png_header_only(width, height):
    """A PNG that declares width x height pixels (a decompression bomb's header)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 8))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def odd_formats(tmp_path_factory):
    """Files in awkward formats, each with the RGB colour it must load as (at 8x8)."""
    d = tmp_path_factory.mktemp("odd")
    cases = {}

    def save(name, img, colour, **kw):
        img.save(d / name, **kw)
        cases[name] = colour

    save("gray.jpg", Image.new("L", (30, 20), 100), (100, 100, 100))
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([10, 200, 30] + [0, 0, 0] * 255)
    save("palette.png", pal, (10, 200, 30))
    save("rgba.png", Image.new("RGBA", (16, 16), (0, 0, 0, 0)), (255, 255, 255))
    save("half.png", Image.new("RGBA", (16, 16), (0, 0, 255, 128)), (127, 127, 255))
    save("la.png", Image.new("LA", (16, 16), (0, 0)), (255, 255, 255))
    save("cmyk.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)), (255, 0, 0))
    save("sixteen.png", Image.fromarray(np.full((16, 16), 32896, np.uint16)), (128, 128, 128))
    save("sixteen.tif", Image.fromarray(np.full((16, 16), 65535, np.uint16)), (255, 255, 255))
    frames = [Image.new("RGB", (16, 16), c) for c in (RED, BLUE)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    cases["anim.gif"] = RED
    save("pic.webp", Image.new("RGB", (16, 16), BLUE), BLUE, lossless=True)
    save("pic.bmp", Image.new("RGB", (16, 16), RED), RED)
    Image.new("RGB", (16, 16), BLUE).save(d / "png_named.jpg", format="PNG")
    cases["png_named.jpg"] = BLUE
    return d, cases


def test_odd_formats_load_to_rgb(odd_formats):
    d, cases = odd_formats
    X = ImageLoader(size=8).transform([d / name for name in cases])
    assert X.dtype == np.uint8 and X.shape == (len(cases), 8, 8, 3) and X.flags.c_contiguous
    for image, (name, colour) in zip(X, cases.items(), strict=True):
        np.testing.assert_allclose(image.mean(axis=(0, 1)), colour, atol=6, err_msg=name)


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_exif_orientation_applied(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "rotated.jpg"
    _two_colour(400, 200).save(path, exif=exif, quality=95)
    X = ImageLoader(size=(40, 40)).transform([path])[0].astype(int)
    if orientation == 1:  # as stored: red left
        first, second = X[:, :15], X[:, 25:]
    elif orientation == 6:  # rotate 90 clockwise to display: the left half goes on top
        first, second = X[:15], X[25:]
    else:  # 8: rotate 90 counter-clockwise: the left half goes to the bottom
        first, second = X[25:], X[:15]
    np.testing.assert_allclose(first.mean(axis=(0, 1)), RED, atol=12)
    np.testing.assert_allclose(second.mean(axis=(0, 1)), BLUE, atol=12)


def test_large_jpeg_uses_draft_and_matches_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((4500, 3000), Image.Resampling.BICUBIC)
    path = tmp_path / "big.jpg"
    big.save(path, quality=92)
    X = ImageLoader(size=(60, 90)).transform([path])[0].astype(float)
    reference = np.asarray(big.resize((90, 60), Image.Resampling.BILINEAR), float)
    assert np.abs(X - reference).mean() < 4


def test_mixed_inputs_and_sizes(tmp_path):
    path = tmp_path / "a.png"
    _two_colour().save(path)
    items = [
        str(path),
        path,
        path.read_bytes(),
        _two_colour(),
        np.asarray(_two_colour()),
        np.zeros((5, 5), np.uint8),
        np.zeros((5, 5, 4), np.uint8),
    ]
    X = ImageLoader(size=(10, 20)).transform(np.asarray(items, dtype=object))
    assert X.shape == (7, 10, 20, 3)
    for i in range(5):
        np.testing.assert_array_equal(X[i], X[0])
    np.testing.assert_array_equal(X[5], 0)
    np.testing.assert_array_equal(X[6], 255)  # fully transparent -> white


def test_resize_policies():
    img = _two_colour(40, 20)  # wide: red | blue
    crop = ImageLoader(size=20, resize="crop").transform([img])[0].astype(int)
    pad = ImageLoader(size=20, resize="pad").transform([img])[0].astype(int)
    stretch = ImageLoader(size=20).transform([img])[0].astype(int)
    assert (crop[:, 2] == RED).all() and (crop[:, -2] == BLUE).all()  # centre square
    assert (pad[0] == 255).all() and (pad[-1] == 255).all()  # letterbox bars on top/bottom
    assert (pad[10, 2] == RED).all() and (stretch[0, 2] == RED).all()


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_crop_pct_is_timm_and_torchvisions_evaluation_transform(mode):
    """``resize="crop", crop_pct=0.875``: the shorter side to 256, the centre 224x224."""
    from torchvision.transforms import CenterCrop, InterpolationMode, Resize

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    img = Image.fromarray(pixels).convert(mode)
    ours = ImageLoader(224, resize="crop", interpolation="bicubic", crop_pct=0.875)
    theirs = CenterCrop(224)(Resize(256, InterpolationMode.BICUBIC)(img)).convert("RGB")
    np.testing.assert_array_equal(ours.transform([img])[0], np.asarray(theirs))
    squashed = ImageLoader(20, crop_pct=0.5).transform([_two_colour(40, 20)])[0]
    assert (squashed[:, :10] == RED).all() and (squashed[:, 10:] == BLUE).all()  # centre 20 of 40


def test_a_loader_pickled_before_crop_pct_keeps_the_whole_image():
    old = ImageLoader(20)
    del old.__dict__["crop_pct"]  # what an earlier release pickled
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.crop_pct == 1.0
    np.testing.assert_array_equal(
        loaded.transform([_two_colour(40, 20)]), ImageLoader(20).transform([_two_colour(40, 20)])
    )


def test_user_pil_image_is_not_closed():
    img = _two_colour()
    ImageLoader(size=8).transform([img])
    assert img.getpixel((0, 0)) == RED


@pytest.fixture
def bad_files(tmp_path):
    good = tmp_path / "good.png"
    _two_colour().save(good)
    (tmp_path / "empty.jpg").write_bytes(b"")
    data = io.BytesIO()
    _two_colour(400, 400).save(data, format="JPEG")
    (tmp_path / "truncated.jpg").write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (tmp_path / "notes.jpg").write_text("not an image at all")
    (tmp_path / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (tmp_path / "bomb.png").write_bytes(_png_header_only(20000, 20000))
    (tmp_path / "folder.jpg").mkdir()
    bad = [
        "missing.jpg",
        "empty.jpg",
        "truncated.jpg",
        "corrupt.jpg",
        "notes.jpg",
        "drawing.svg",
        "bomb.png",
        "folder.jpg",
    ]
    return good, [tmp_path / name for name in bad]


def test_bad_inputs_raise_one_error_naming_all(bad_files):
    good, bad = bad_files
    with pytest.raises(ImageLoadError) as info:
        ImageLoader(size=16, n_jobs=2).transform([good, *bad])
    err = info.value
    assert isinstance(err, ValueError)
    assert [i for i, _, _ in err.errors] == list(range(1, 9))
    for path in bad:
        assert str(path) in str(err)
    reasons = {name.rsplit("/", 1)[-1]: reason for _, name, reason in err.errors}
    assert "FileNotFoundError" in reasons["missing.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "decompression bomb" in reasons["bomb.png"]
    assert "folder" in reasons["folder.jpg"]
    assert "good.png" not in str(err)
    assert pickle.loads(pickle.dumps(err)).errors == err.errors


def test_find_bad_images(bad_files):
    good, bad = bad_files
    found = find_bad_images([good, *bad])
    assert [name for _, name, _ in found] == [str(p) for p in bad]
    assert find_bad_images([good]) == []


@pytest.mark.parametrize(
    "params, match",
    [
        ({"size": 0}, "size"),
        ({"size": (3, -1)}, "size"),
        ({"size": "big"}, "size"),
        ({"resize": "squash"}, "resize"),
        ({"interpolation": "cubic"}, "interpolation"),
        ({"crop_pct": 0}, "crop_pct"),
        ({"crop_pct": 1.5}, "crop_pct"),
    ],
)
def test_invalid_parameters_are_named(params, match):
    with pytest.raises((InvalidParameterError, ValueError), match=match):
        ImageLoader(**params).fit([])


@pytest.mark.parametrize("X", ["one.jpg", 3, None])
def test_non_sequence_input_is_refused(X):
    with pytest.raises(TypeError, match="X must be a sequence"):
        ImageLoader().transform(X)


def test_a_single_array_image_is_refused_not_read_as_rows():
    image = np.zeros((40, 30, 3), np.uint8)
    with pytest.raises(TypeError, match=r"one image of shape \(40, 30, 3\).*X\[None\]"):
        ImageLoader(size=8).transform(image)
    assert ImageLoader(size=8).transform(image[None]).shape == (1, 8, 8, 3)
    with pytest.raises(TypeError, match="one image"):
        ImageLoader(size=8).transform(image[..., :1])


def test_parallel_matches_serial(shapes):
    X, _ = shapes
    np.testing.assert_array_equal(
        ImageLoader(size=20, n_jobs=1).transform(X), ImageLoader(size=20, n_jobs=2).transform(X)
    )


def test_clone_and_pickle_keep_parameters():
    loader = ImageLoader((30, 40), resize="pad", interpolation="lanczos", n_jobs=2)
    for copy in (clone(loader), pickle.loads(pickle.dumps(loader))):
        assert copy.get_params() == loader.get_params()
    assert ImageLoader().set_params(size=12).size == 12


def _flatten(X):
    return X.reshape(len(X), -1) / 255.0


def test_pipeline_cross_val_and_grid_search(shapes):
    X, y = shapes
    pipe = make_pipeline(
        ImageLoader(size=16), FunctionTransformer(_flatten), LogisticRegression(max_iter=200)
    )
    scores = cross_val_score(pipe, list(X), y, cv=2)
    assert scores.shape == (2,)
    search = GridSearchCV(pipe, {"imageloader__size": [8, 16]}, cv=2).fit(list(X), y)
    assert search.best_params_["imageloader__size"] in (8, 16)


def test_real_photos_load(shared):
    from sk_animals.datasets import load_animals10

    data = load_animals10(shared / "data" / "animals10-sample")
    X = ImageLoader(size=100, n_jobs=2).transform(data.data)
    assert X.shape == (160, 100, 100, 3)
    assert 40 < X.mean() < 200 and X.std() > 30  # real, varied pictures, not blank


# -- the on-disk cache of decoded images
@pytest.fixture
def photo_files(tmp_path):
    """Four small JPEG and PNG files of different colours, in a folder of their own."""
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for i, colour in enumerate([RED, BLUE, (20, 200, 20), (200, 200, 20)]):
        path = folder / f"{i}.{'jpg' if i % 2 else 'png'}"
        Image.new("RGB", (30 + i, 20), colour).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def decodes(monkeypatch):
    """Count the images actually decoded (the real decoder, counted)."""
    import sk_animals.preprocessing as preprocessing

    calls = []
    real = preprocessing._decode

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(preprocessing, "_decode", counted)
    return calls


def _entries(cache_dir):
    return sorted(cache_dir.rglob("*.npy"))


def test_cache_second_transform_reads_back_without_decoding(tmp_path, photo_files, decodes):
    expected = ImageLoader(size=16).transform(photo_files)
    decodes.clear()
    loader = ImageLoader(size=16, cache_dir=tmp_path / "cache")
    first = loader.transform(photo_files)
    assert len(decodes) == 4
    second = loader.transform([str(p) for p in photo_files])  # str or Path: same files
    assert len(decodes) == 4  # nothing decoded again
    for X in (first, second):
        np.testing.assert_array_equal(X, expected)
        assert isinstance(X, np.memmap) and X.mode == "c" and X.flags.c_contiguous
    first[:] = 0  # copy-on-write: the entry on disk is not changed
    np.testing.assert_array_equal(loader.transform(photo_files), expected)
    assert len(_entries(tmp_path / "cache")) == 1
    # a new list reuses the rows it shares with earlier lists: only the new file is decoded
    Image.new("RGB", (9, 9), (1, 2, 3)).save(photo_files[0].with_name("new.png"))
    X = loader.transform([photo_files[2], photo_files[0].with_name("new.png"), photo_files[1]])
    assert len(decodes) == 5
    np.testing.assert_array_equal(X[[0, 2]], expected[[2, 1]])
    np.testing.assert_array_equal(X[1], np.broadcast_to((1, 2, 3), (16, 16, 3)))


def test_cache_rereads_a_modified_source_file(tmp_path, photo_files, decodes):
    loader = ImageLoader(size=8, cache_dir=tmp_path / "cache")
    assert loader.transform(photo_files)[0, 0, 0].tolist() == list(RED)
    st = photo_files[0].stat()
    Image.new("RGB", (30, 20), BLUE).save(photo_files[0])  # same size in bytes, maybe
    os.utime(photo_files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    decodes.clear()
    X = loader.transform(photo_files)
    assert len(decodes) == 1  # only the modified file; the others are reused
    assert X[0, 0, 0].tolist() == list(BLUE)


@pytest.mark.parametrize("damage", ["truncate", "wrong shape", "wrong dtype", "sidecar"])
def test_cache_rebuilds_a_damaged_entry(tmp_path, photo_files, decodes, damage):
    cache_dir = tmp_path / "cache"
    loader = ImageLoader(size=8, cache_dir=cache_dir)
    expected = np.array(loader.transform(photo_files))
    (npy,) = _entries(cache_dir)
    if damage == "truncate":
        with open(npy, "r+b") as f:
            f.truncate(npy.stat().st_size - 10)
    elif damage == "wrong shape":
        np.save(npy, np.zeros((4, 8, 4, 3), np.uint8))
    elif damage == "wrong dtype":
        np.save(npy, np.zeros((4, 8, 8, 3), np.int8))
    else:
        npy.with_suffix(".json").write_text("{not json")
    decodes.clear()
    X = loader.transform(photo_files)
    assert len(decodes) == 4  # rebuilt from the sources, not read from the damaged entry
    np.testing.assert_array_equal(X, expected)
    decodes.clear()
    np.testing.assert_array_equal(loader.transform(photo_files), expected)
    assert not decodes  # and the rebuilt entry is used next time
    assert not list(cache_dir.rglob("*.tmp"))  # no temporary files left behind


def test_cache_keys_on_every_setting(tmp_path, photo_files, decodes):
    cache_dir = tmp_path / "cache"
    settings = [
        {"size": 8},
        {"size": (8, 10)},
        {"size": 8, "resize": "pad"},
        {"size": 8, "interpolation": "nearest"},
        {"size": 8, "crop_pct": 0.5},
    ]
    for params in settings:
        cached = ImageLoader(cache_dir=cache_dir, **params).transform(photo_files)
        np.testing.assert_array_equal(cached, ImageLoader(**params).transform(photo_files))
    assert len(decodes) == 2 * 4 * len(settings)  # each setting decoded its own copy
    assert len(_entries(cache_dir)) == len(settings)


def test_cache_bypassed_for_non_paths_and_bad_files(tmp_path, photo_files, bad_files):
    cache_dir = tmp_path / "cache"
    loader = ImageLoader(size=8, cache_dir=cache_dir)
    items = [photo_files[0], photo_files[1].read_bytes(), np.zeros((4, 4, 3), np.uint8)]
    X = loader.transform(items)
    assert type(X) is np.ndarray and X.shape == (3, 8, 8, 3)
    good, bad = bad_files
    with pytest.raises(ImageLoadError) as info:
        loader.transform([good, *bad])
    assert len(info.value.errors) == len(bad)
    assert not cache_dir.exists() or not _entries(cache_dir)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")  # exists, fails to decode
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        loader.transform([photo_files[0], tmp_path / "broken.jpg"])
    assert not _entries(cache_dir) and not list(cache_dir.rglob("*.tmp"))


def test_cache_dir_is_a_parameter(tmp_path):
    loader = ImageLoader(16, cache_dir=tmp_path)
    assert loader.get_params()["cache_dir"] == tmp_path
    assert clone(loader).cache_dir == tmp_path
    assert pickle.loads(pickle.dumps(loader)).get_params() == loader.get_params()
    with pytest.raises(InvalidParameterError, match="cache_dir"):
        ImageLoader(cache_dir=3).fit()


def test_cached_memmap_trains_a_scratch_pipeline(tmp_path, shapes, decodes):
    from sk_animals.scratch import ScratchCNNClassifier

    images, y = shapes
    paths = []
    for i, image in enumerate(images[:32]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(paths[-1])
    y = y[:32]
    pipe = make_pipeline(
        ImageLoader(size=16, cache_dir=tmp_path / "cache"),
        ScratchCNNClassifier(max_epochs=1, width=4, batch_size=8, random_state=0, verbose=0),
    )
    pipe.fit(paths, y)
    decodes.clear()
    predicted = pipe.predict(paths)  # read back from the cache: no decoding
    assert not decodes and predicted.shape == (32,)
    assert set(predicted) <= set(y)
    plain = make_pipeline(ImageLoader(size=16), clone(pipe[-1])).fit(paths, y)
    np.testing.assert_array_equal(plain.predict_proba(paths), pipe.predict_proba(paths))
    assert pickle.loads(pickle.dumps(pipe))[0].cache_dir == tmp_path / "cache"
