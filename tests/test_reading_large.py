"""Reading data larger than memory: Zarr stores, Parquet files and large ``.npy`` files
become lazy Dask arrays with the text reader's rules (column selection by name or index,
text columns skipped, missing values refused or dropped), and nothing is computed until
asked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr
from dask.callbacks import Callback

from gmmkit import reading
from gmmkit.reading import is_lazy, read_data

# The dask extra (dask, zarr, pyarrow) is installed by the test command: no importorskip,
# so a missing dependency fails loudly rather than skipping these tests.


class TaskCounter(Callback):
    """Counts the Dask tasks run on the local schedulers while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.n_tasks = 0

    def _pretask(self, key, dsk, state) -> None:
        self.n_tasks += 1


def values(seed: int, n: int, d: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


# ------------------------------------------------------------------------------ Parquet
@pytest.fixture
def parquet_dir(tmp_path):
    """Three files of 5, 4 and 6 rows: numbers, a text column, a nullable integer."""
    rng = np.random.default_rng(1)
    frames = []
    for i, n in enumerate((5, 4, 6)):
        frame = pd.DataFrame({
            "x": rng.normal(size=n), "species": [f"s{i}"] * n, "y": rng.normal(size=n),
            "count": pd.array(rng.integers(0, 9, size=n), dtype="Int64"),
        })
        frame.to_parquet(tmp_path / f"part-{i}.parquet")
        frames.append(frame)
    return tmp_path, pd.concat(frames, ignore_index=True)


def test_parquet_directory_skips_text_column_with_note(parquet_dir):
    path, frame = parquet_dir
    table = read_data(path)
    assert is_lazy(table.X) and table.X.dtype == np.float64
    assert table.names == ["x", "y", "count"]
    assert any("skipped text column(s) 'species'" in note for note in table.notes)
    assert any("read lazily with Dask: 15 rows x 3 columns" in note for note in table.notes)
    np.testing.assert_array_equal(
        table.X.compute(), frame[["x", "y", "count"]].to_numpy(dtype=np.float64))


def test_parquet_column_selection_by_name_and_index(parquet_dir):
    path, frame = parquet_dir
    by_name = read_data(path, columns=["y", "x"])
    by_index = read_data(path, columns=["2", "0"])  # file order: x species y count
    assert by_name.names == by_index.names == ["y", "x"]
    expected = frame[["y", "x"]].to_numpy()
    np.testing.assert_array_equal(by_name.X.compute(), expected)
    np.testing.assert_array_equal(by_index.X.compute(), expected)


def test_parquet_reads_only_the_chosen_columns(parquet_dir):
    """The text column is never parsed when not asked for (column pruning)."""
    path, _ = parquet_dir
    table = read_data(path, columns=["x"])
    layers = " ".join(str(layer) for layer in table.X.dask.layers)
    assert table.X.shape == (15, 1) and "species" not in layers


def test_parquet_text_column_named_is_refused(parquet_dir):
    path, _ = parquet_dir
    with pytest.raises(ValueError, match=r"--columns: column 'species' of .* not numbers"):
        read_data(path, columns=["x", "species"])


def test_parquet_absent_column_is_refused(parquet_dir):
    path, _ = parquet_dir
    with pytest.raises(ValueError, match=r"--columns: column 'z' is not in .*x, species, y"):
        read_data(path, columns=["z"])


def test_parquet_labels_and_one_file(parquet_dir):
    path, _ = parquet_dir
    table = read_data(path / "part-1.parquet", labels="species")
    assert table.names == ["x", "y", "count"] and list(table.labels) == ["s1"] * 4


@pytest.fixture
def parquet_missing(tmp_path):
    frame = pd.DataFrame({
        "a": [1.0, np.nan, 3.0, 4.0, 5.0, 6.0],
        "b": pd.array([1, 2, None, 4, 5, 6], dtype="Int64"),
        "c": [1.0, 2.0, 3.0, 4.0, np.inf, 6.0],
    })
    frame.iloc[:3].to_parquet(tmp_path / "p0.parquet")
    frame.iloc[3:].to_parquet(tmp_path / "p1.parquet")
    return tmp_path, frame


def test_parquet_missing_values_refused_when_read(parquet_missing):
    """As a CSV's: refused, naming the first row and column, unless --dropna; found as the
    chunk is read (no pass of its own)."""
    path, _ = parquet_missing
    table = read_data(path, columns=["a", "c"])
    # One chunk at a time: which chunk a threaded compute reaches first is not fixed.
    with pytest.raises(ValueError, match=r"1 missing or non-finite value\(s\) in rows 1 to 3; "
                                         r"the first is in row 2, column 'a'.*pass --dropna"):
        table.X[:3].compute()
    with pytest.raises(ValueError, match=r"the first is in row 5, column 'c'"):
        table.X[3:].compute()


def test_parquet_dropna_drops_null_nan_and_inf_rows(parquet_missing):
    path, frame = parquet_missing
    table = read_data(path, dropna=True)
    assert table.X.shape == (3, 3)
    np.testing.assert_array_equal(table.X.compute(), frame.iloc[[0, 3, 5]].to_numpy(float))
    assert any("dropped 3 row(s) with missing values (--dropna); 3 left" in note
               for note in table.notes)


# --------------------------------------------------------------------------------- Zarr
def test_zarr_array_is_read_lazily(tmp_path):
    X = values(2, 23, 3)
    store = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(5, 2), dtype="f4")
    store[:] = X
    counter = TaskCounter()
    with counter:
        table = read_data(tmp_path / "x.zarr", columns=["2", "0"])
    assert counter.n_tasks == 0  # nothing was computed while reading
    assert is_lazy(table.X) and table.X.dtype == np.float64
    # Row chunks as stored, each holding every chosen column.
    assert table.X.chunks == ((5, 5, 5, 5, 3), (2,))
    assert table.names == ["2", "0"]
    np.testing.assert_array_equal(table.X.compute(), X[:, [2, 0]].astype(np.float32))


def test_zarr_columns_attribute_names_the_columns(tmp_path):
    X = values(3, 10, 2)
    store = zarr.create_array(tmp_path / "named.zarr", shape=X.shape, dtype="f8")
    store[:] = X
    store.attrs["columns"] = ["height", "weight"]
    table = read_data(tmp_path / "named.zarr", columns=["weight"])
    assert table.names == ["weight"]
    np.testing.assert_array_equal(table.X.compute()[:, 0], X[:, 1])


def test_zarr_group_of_columns(tmp_path):
    group = zarr.open_group(tmp_path / "table.zarr", mode="w")
    x, y = values(4, 12, 2).T
    group.create_array("x", shape=(12,), chunks=(5,), dtype="f8")[:] = x
    group.create_array("y", shape=(12,), chunks=(4,), dtype="f8")[:] = y
    group.create_array("name", shape=(12,), dtype=str)[:] = np.array(["a"] * 12)
    counter = TaskCounter()
    with counter:
        table = read_data(tmp_path / "table.zarr")
        chosen = read_data(tmp_path / "table.zarr", columns=["y"])
    assert counter.n_tasks == 0
    assert table.names == ["x", "y"] and any("'name'" in n for n in table.notes)
    np.testing.assert_array_equal(table.X.compute(), np.column_stack([x, y]))
    np.testing.assert_array_equal(chosen.X.compute()[:, 0], y)


def test_zarr_group_with_one_array_and_a_v2_store(tmp_path):
    X = values(5, 9, 2)
    group = zarr.open_group(tmp_path / "g.zarr", mode="w", zarr_format=2)
    group.create_array("points", shape=X.shape, chunks=(4, 2), dtype="f8")[:] = X
    table = read_data(tmp_path / "g.zarr")
    np.testing.assert_array_equal(table.X.compute(), X)
    # Not named *.zarr, but marked as a store by its metadata file.
    inner = read_data(tmp_path / "g.zarr" / "points")
    np.testing.assert_array_equal(inner.X.compute(), X)


def test_zarr_group_of_several_matrices_is_refused(tmp_path):
    group = zarr.open_group(tmp_path / "two.zarr", mode="w")
    group.create_array("a", shape=(4, 2), dtype="f8")
    group.create_array("b", shape=(4, 2), dtype="f8")
    with pytest.raises(ValueError, match=r"holds several arrays .*Point DATA at one array"):
        read_data(tmp_path / "two.zarr")


def test_zarr_missing_values_refused_or_dropped(tmp_path):
    X = values(6, 10, 2)
    X[7, 1] = np.nan
    zarr.create_array(tmp_path / "m.zarr", shape=X.shape, chunks=(3, 2), dtype="f8")[:] = X
    table = read_data(tmp_path / "m.zarr")
    np.testing.assert_array_equal(table.X[:6].compute(), X[:6])  # clean chunks read fine
    with pytest.raises(ValueError, match=r"in rows 7 to 9; the first is in row 8, column '1'"):
        table.X.compute()
    dropped = read_data(tmp_path / "m.zarr", dropna=True)
    assert dropped.X.shape == (9, 2)
    np.testing.assert_array_equal(dropped.X.compute(), np.delete(X, 7, axis=0))


def test_zarr_labels_and_standardize(tmp_path):
    X = np.column_stack([values(7, 8, 2), np.arange(8) % 2])
    zarr.create_array(tmp_path / "l.zarr", shape=X.shape, chunks=(3, 3), dtype="f8")[:] = X
    table = read_data(tmp_path / "l.zarr", labels="2", standardize=True)
    assert table.names == ["0", "1"] and list(table.labels) == ["0", "1"] * 4
    expected = (X[:, :2] - X[:, :2].mean(axis=0)) / X[:, :2].std(axis=0)
    # Same formula, but Dask sums chunk by chunk: equal to rounding.
    np.testing.assert_allclose(table.X.compute(), expected, rtol=1e-12, atol=1e-14)


def test_lazy_false_reads_into_memory(tmp_path):
    X = values(8, 6, 2)
    zarr.create_array(tmp_path / "s.zarr", shape=X.shape, dtype="f8")[:] = X
    table = read_data(tmp_path / "s.zarr", lazy=False)
    assert isinstance(table.X, np.ndarray)
    np.testing.assert_array_equal(table.X, X)


# ---------------------------------------------------------------------------------- npy
def test_large_npy_is_a_memory_map_read_in_row_chunks(tmp_path, monkeypatch):
    X = values(9, 50, 3).astype(np.float32)
    np.save(tmp_path / "big.npy", X)
    monkeypatch.setattr(reading, "LAZY_NPY_BYTES", 100)  # "large" = more than 100 bytes
    counter = TaskCounter()
    with counter:
        table = read_data(tmp_path / "big.npy", columns=["2", "1"], chunk_rows=16)
    assert counter.n_tasks == 0
    assert is_lazy(table.X) and table.X.chunks == ((16, 16, 16, 2), (2,))
    # The graph holds the file's name, not its values: a cluster's workers read it.
    assert table.X.nbytes == 50 * 2 * 8
    assert not any(isinstance(v, np.ndarray) and v.size >= 50
                   for v in dict(table.X.dask).values())
    np.testing.assert_array_equal(table.X.compute(), X[:, [2, 1]].astype(np.float64))


def test_small_npy_stays_in_memory_unless_asked(tmp_path):
    X = values(10, 20, 2)
    np.save(tmp_path / "small.npy", X)
    assert isinstance(read_data(tmp_path / "small.npy").X, np.ndarray)
    lazy = read_data(tmp_path / "small.npy", lazy=True)
    assert is_lazy(lazy.X)
    np.testing.assert_array_equal(lazy.X.compute(), X)


def test_lazy_npy_missing_values_and_labels(tmp_path):
    X = np.column_stack([values(11, 9, 2), np.arange(9) % 3])
    X[4, 0] = np.inf
    np.save(tmp_path / "m.npy", X)
    table = read_data(tmp_path / "m.npy", lazy=True, labels="2", chunk_rows=4)
    assert list(table.labels) == ["0", "1", "2"] * 3
    with pytest.raises(ValueError, match=r"row 5, column '0'"):
        table.X.compute()
    dropped = read_data(tmp_path / "m.npy", lazy=True, labels="2", dropna=True)
    assert dropped.X.shape == (8, 2) and len(dropped.labels) == 8
    np.testing.assert_array_equal(dropped.X.compute(), np.delete(X[:, :2], 4, axis=0))


def test_text_file_made_lazy_with_chunk_rows(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    table = read_data(tmp_path / "d.csv", chunk_rows=2)
    assert is_lazy(table.X) and table.X.chunks == ((2, 1), (2,))
    np.testing.assert_array_equal(table.X.compute(), [[1, 2], [3, 4], [5, 6]])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"chunk_rows": 0}, "chunk_rows must be a positive int, got 0"),
    ({"lazy": "yes"}, "lazy must be True, False or None, got 'yes'"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    (tmp_path / "d.csv").write_text("1,2\n3,4\n")
    with pytest.raises(ValueError, match=message):
        read_data(tmp_path / "d.csv", **kwargs)


def test_a_plain_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"neither a Zarr store .* nor a directory of Parquet"):
        read_data(tmp_path)


def test_zarr_group_columns_come_in_name_order_whatever_the_writing_order(tmp_path):
    """A Zarr group keeps no order of its members, so the reader sorts them by name."""
    group = zarr.open_group(tmp_path / "table.zarr", mode="w")
    columns = {"b": np.arange(6.0), "c": -np.arange(6.0), "a": np.arange(6.0) ** 2}
    for name, column in columns.items():  # written b, c, a
        group.create_array(name, shape=(6,), dtype="f8")[:] = column
    table = read_data(tmp_path / "table.zarr")
    assert table.names == ["a", "b", "c"]
    np.testing.assert_array_equal(table.X.compute(),
                                  np.column_stack([columns[n] for n in "abc"]))
