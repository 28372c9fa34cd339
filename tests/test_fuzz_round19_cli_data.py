"""Round 19 of the bad-input audit: grid and the Kaggle test CSV.

An empty config in a grid's folder is refused with advice that fits grid (it has no --config); a
Kaggle test CSV's ImageId below 1 is refused naming the file, row and field, not blamed on the lookup.
"""
from __future__ import annotations

import numpy as np
import pytest

from facekeypoints.data import DataFormatError
from facekeypoints.data.formats.kaggle import read_kaggle_csv
from fakes import run_cli

PIXELS = " ".join(["7"] * 96 * 96)


def test_grid_says_how_to_mend_an_empty_config_in_its_own_terms(tmp_path, capsys):
    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "d.yaml").write_text("")
    code, _, err = run_cli(["grid", tmp_path / "cfgs", "--results", tmp_path / "r.json"], capsys)
    assert code == 2, err
    assert f"{tmp_path / 'cfgs' / 'd.yaml'}: the config file is empty" in err
    assert "--config" not in err and "move it out of" in err, err


def test_train_still_suggests_leaving_out_an_empty_config(tmp_path, capsys):
    (tmp_path / "d.yaml").write_text("")
    code, _, err = run_cli(["train", "--config", tmp_path / "d.yaml"], capsys)
    assert code == 2 and "leave out --config for the default recipe" in err, err


@pytest.mark.parametrize("image_id", ["-1", "0", "-0"])
def test_a_test_csv_imageid_below_1_is_refused_naming_row_and_field(tmp_path, image_id):
    path = tmp_path / "t_neg.csv"
    path.write_text(f"ImageId,Image\n1,{PIXELS}\n{image_id},{PIXELS}\n3,{PIXELS}\n")
    with pytest.raises(DataFormatError, match=rf"^{path}, row 2, field 'ImageId': must be an integer >= 1"):
        read_kaggle_csv(path)


def test_skip_bad_drops_only_the_row_with_a_bad_imageid(tmp_path):
    path = tmp_path / "t_neg.csv"
    path.write_text(f"ImageId,Image\n-1,{PIXELS}\n2,{PIXELS}\n")
    data = read_kaggle_csv(path, skip_bad=True)
    assert data.ids == ["2"] and "got -1" in data.skipped[0]


def test_submit_blames_the_test_csv_for_a_negative_imageid(tmp_path, capsys):
    test = tmp_path / "t_neg.csv"
    test.write_text(f"ImageId,Image\n-1,{PIXELS}\n2,{PIXELS}\n")
    lookup = tmp_path / "lk.csv"
    lookup.write_text("RowId,ImageId,FeatureName\n1,1,nose_tip_x\n2,2,nose_tip_y\n")
    code, _, err = run_cli(["submit", test, "--lookup", lookup, "-o", tmp_path / "o.csv"], capsys)
    assert code != 0 and f"{test}, row 1, field 'ImageId'" in err and "got -1" in err, err
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.shared_data
def test_the_real_test_csv_still_reads(shared_data):
    test = read_kaggle_csv(shared_data / "fkd15-ytf" / "test.zip", use_cache=False)
    assert len(test) == 1783 and test.ids[0] == "1" and not np.asarray(test.skipped).size
