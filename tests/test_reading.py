"""Reading real files: BOM, text columns, --columns by name or index, --labels, --dropna;
and method options refused where they do not apply."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from gmmkit import load_data
from gmmkit.cli import cli
from gmmkit.reading import read_data

IRIS_LIKE = """sepal_length,sepal_width,species
5.1,3.5,setosa
4.9,3.0,setosa
6.3,3.3,virginica
5.8,2.7,virginica
7.1,3.0,virginica
"""


@pytest.fixture
def iris(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text(IRIS_LIKE)
    return path


def test_bom_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa,b\n1,2\n3,4\n".encode())
    X, names = load_data(path)
    assert names == ["a", "b"] and X.shape == (2, 2)


def test_bom_without_header_keeps_first_row(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeff1,2\n3,4\n".encode())
    X, _names = load_data(path)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


def test_text_column_skipped_with_note(iris):
    table = read_data(iris)
    assert table.names == ["sepal_length", "sepal_width"] and table.X.shape == (5, 2)
    assert any("species" in note for note in table.notes)


def test_columns_by_index_in_header_file(iris):
    X, names = load_data(iris, columns=["1", "0"])
    assert names == ["sepal_width", "sepal_length"]
    np.testing.assert_array_equal(X[0], [3.5, 5.1])


def test_unselected_text_never_parsed(iris):
    X, names = load_data(iris, columns=["sepal_width"])
    assert names == ["sepal_width"] and X.shape == (5, 1)


def test_headerless_row_with_text_is_data(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("5.1,3.5,setosa\n4.9,3.0,setosa\n6.3,3.3,virginica\n")
    table = read_data(path, labels="2")
    assert table.X.shape == (3, 2) and list(table.labels) == ["setosa", "setosa", "virginica"]


def test_labels_are_never_features(iris):
    table = read_data(iris, labels="species")
    assert table.names == ["sepal_length", "sepal_width"] and table.notes == []
    assert list(table.labels[:2]) == ["setosa", "setosa"]
    with pytest.raises(ValueError, match="also in --columns"):
        read_data(iris, columns=["species"], labels="species")


def test_bad_cell_in_selected_column_still_named(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n3,oops\n5,6\n7,8\n")
    with pytest.raises(ValueError, match=r"non-numeric value 'oops' in row 2 \(line 3\), "
                                         r"column 'b'"):
        load_data(path)
    X, _ = load_data(path, columns=["a"])
    assert X.shape == (4, 1)


def test_dropna(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n3,NA\n5,6\n,8\n")
    with pytest.raises(ValueError, match="2 missing value"):
        load_data(path)
    table = read_data(path, dropna=True)
    np.testing.assert_array_equal(table.X, [[1, 2], [5, 6]])
    assert any("dropped 2 row" in note for note in table.notes)


def test_absent_column_named(iris):
    with pytest.raises(ValueError, match="--columns: column 'petal' is not in"):
        load_data(iris, columns=["petal"])


def test_cli_fit_iris_prints_columns(iris, tmp_path):
    result = CliRunner().invoke(cli, ["fit", str(iris), "--model", "gmm", "-k", "2",
                                      "--labels", "species", "--quiet",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "using column(s) sepal_length, sepal_width" in result.output


def test_cli_compare_labels_give_truth(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "blobs.csv"
    rows = [f"{x:.6f},{y:.6f},{name}" for name, centre in (("left", -4), ("right", 4))
            for x, y in rng.normal(centre, 1, (30, 2))]
    path.write_text("x,y,kind\n" + "\n".join(rows) + "\n")
    result = CliRunner().invoke(cli, ["compare", str(path), "--model", "gmm", "-k", "2",
                                      "--methods", "em,kmeans", "--labels", "kind",
                                      "--quiet", "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    import pandas as pd

    table = pd.read_csv(tmp_path / "c" / "table.csv", index_col="fit")
    assert "truth_ari" in table.columns and np.isfinite(table["truth_ari"]).all()


@pytest.mark.parametrize(
    "args, message",
    [(["--method", "advi", "--max-iter", "5"], "--max-iter does not apply to --method advi"),
     (["--method", "cavi", "--draws", "5"], "--draws does not apply to --method cavi"),
     (["--method", "nuts", "--n-iter", "5"], "--n-iter does not apply to --method nuts"),
     (["--method", "advi", "--target-accept", "0.8"], "--target-accept does not apply"),
     (["--method", "smc", "--tol", "1e-3"], "--tol does not apply to --method smc")],
)
def test_fit_refuses_options_that_do_not_apply(iris, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["fit", str(iris), *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_compare_refuses_option_no_method_takes(iris, tmp_path):
    result = CliRunner().invoke(cli, ["compare", str(iris), "--model", "gmm", "--methods",
                                      "em,kmeans", "--tune", "10", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "--tune does not apply" in result.output


def test_pymc_options_passed_through(iris, tmp_path, monkeypatch):
    import gmmkit

    seen = {}

    def fake_fit(model, x, method, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(gmmkit.api, "fit", fake_fit)
    result = CliRunner().invoke(cli, ["fit", str(iris), "--method", "advi", "--n-iter", "7",
                                      "--learning-rate", "0.05", "--out", str(tmp_path / "o")])
    assert result.exit_code == 130 and "interrupted; nothing was saved" in result.output
    assert seen["n_iter"] == 7 and seen["learning_rate"] == 0.05
    assert not (tmp_path / "o").exists()
