"""Assay models (``synflow.rewards.assay``) fitted to real ZINC molecules with Crippen logP as the
measurement: cross-validated choice, held-out accuracy, storage, direction, uncertainty bonus, bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from synflow.rewards import RewardConfig, build_reward
from synflow.rewards.assay import (
    GP_MAX_ROWS,
    MIN_ROWS,
    AssayDataError,
    AssayModel,
    AssayModelFileError,
    Featuriser,
    ForestArrays,
    GaussianProcessArrays,
    ScoreTransform,
    _tanimoto_kernel,
    candidates_for,
    collect_assay_data,
    fit_assay_model,
    folds_for,
    load_assay_model,
    read_csv_rows,
    tanimoto_matrix,
)
from tests.synflow.rewards.assay_data import logp, write_logp_csv, zinc_smiles

TRAIN, HELD_OUT = 240, 40


@pytest.fixture(scope="module")
def molecules() -> list[str]:
    return zinc_smiles(TRAIN + HELD_OUT)


@pytest.fixture(scope="module")
def fitted(molecules: list[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[AssayModel, Path]:
    csv_path = write_logp_csv(tmp_path_factory.mktemp("assay") / "logp.csv", molecules[:TRAIN])
    with csv_path.open() as handle:
        data = collect_assay_data(read_csv_rows(handle, "smiles", "logp"))
    return fit_assay_model(data, "higher"), csv_path


def _mols(smiles: list[str]) -> list[Chem.Mol]:
    return [Chem.MolFromSmiles(s) for s in smiles]


def test_cross_validation_compares_both_estimators_and_keeps_the_lower_rmse(
    fitted: tuple[AssayModel, Path],
) -> None:
    model, _ = fitted
    report = model.report
    assert report["n_rows"] == TRAIN and report["n_molecules"] == TRAIN and report["n_duplicates"] == 0
    assert report["folds"] == 5 and set(report["cv"]) == {"random_forest", "gaussian_process"}
    cv = report["cv"]
    assert report["chosen"] == min(cv, key=lambda name: cv[name]["rmse"]) == model.estimator
    best = cv[model.estimator]
    # logP is additive over atoms: Morgan counts carry most of it (GP R² ≈ 0.74, RF ≈ 0.47 here)
    assert best["r2"] > 0.6 and best["spearman"] > 0.75, best
    for metrics in cv.values():
        assert 0 < metrics["mae"] <= metrics["rmse"]
        assert metrics["rmse"] < np.std([logp(s) for s in zinc_smiles(TRAIN)])  # beats the mean


def test_predictions_on_held_out_molecules_track_the_measurement(
    fitted: tuple[AssayModel, Path], molecules: list[str]
) -> None:
    model, _ = fitted
    held_out = molecules[TRAIN:]
    mean, std = model.predict(_mols(held_out))
    truth = np.array([logp(s) for s in held_out])
    assert np.corrcoef(mean, truth)[0, 1] > 0.75
    assert np.all(std > 0)
    # molecules of the training set are predicted closer than unseen ones
    train_mean, _ = model.predict(_mols(molecules[:HELD_OUT]))
    train_truth = np.array([logp(s) for s in molecules[:HELD_OUT]])
    assert np.abs(train_mean - train_truth).mean() < np.abs(mean - truth).mean()


def test_a_stored_model_loads_and_predicts_identically(
    fitted: tuple[AssayModel, Path], molecules: list[str], tmp_path: Path
) -> None:
    model, _ = fitted
    path = tmp_path / "logp.npz"
    digest = model.save(path)
    loaded = load_assay_model(path, sha256=digest)
    mols = _mols(molecules[TRAIN:])
    for before, after in zip(model.predict(mols), loaded.predict(mols), strict=True):
        np.testing.assert_array_equal(before, after)
    assert loaded.report == json.loads(json.dumps(model.report)) and loaded.transform == model.transform
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only: never unpickled
        assert all(npz[k].dtype != object for k in npz.files)
    with pytest.raises(AssayModelFileError, match="has changed"):
        load_assay_model(path, sha256="0" * 64)
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(AssayModelFileError, match="not a synflow reward model"):
        load_assay_model(tmp_path / "junk.npz")
    with pytest.raises(AssayModelFileError, match="cannot be read"):
        load_assay_model(tmp_path / "missing.npz")


def test_stored_arrays_predict_what_scikit_learn_predicts(molecules: list[str]) -> None:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, WhiteKernel

    x = Featuriser().from_smiles(molecules[:80])
    y = np.array([logp(s) for s in molecules[:80]])
    query = Featuriser().from_smiles(molecules[TRAIN:])
    forest = RandomForestRegressor(n_estimators=25, max_features=1 / 3, random_state=1).fit(x, y)
    mean, std = ForestArrays.from_estimator(forest).predict(query)
    np.testing.assert_allclose(mean, forest.predict(query), rtol=1e-12, atol=1e-12)
    per_tree = np.stack([t.predict(query) for t in forest.estimators_], axis=1)
    np.testing.assert_allclose(std, per_tree.std(axis=1), rtol=1e-12, atol=1e-12)
    kernel = ConstantKernel(1.0) * _tanimoto_kernel() + WhiteKernel(0.1)
    gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=0).fit(x, y)
    gp_mean, gp_std = GaussianProcessArrays.from_estimator(gp, x, y).predict(query)
    expected_mean, expected_std = gp.predict(query, return_std=True)
    np.testing.assert_allclose(gp_mean, expected_mean, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(gp_std, expected_std, rtol=1e-8, atol=1e-8)


def test_tanimoto_kernel_matches_rdkit_on_bits_and_is_positive_semidefinite(molecules: list[str]) -> None:
    mols = _mols(molecules[:30])
    bits = Featuriser(mode="bits")(mols)
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = [generator.GetFingerprint(m) for m in mols]
    expected = np.array([DataStructs.BulkTanimotoSimilarity(fp, fps) for fp in fps])
    np.testing.assert_allclose(tanimoto_matrix(bits, bits), expected, atol=1e-12)
    counts = Featuriser()(mols)
    assert np.linalg.eigvalsh(tanimoto_matrix(counts, counts)).min() > -1e-9
    assert tanimoto_matrix(np.zeros((1, 4)), np.zeros((1, 4)))[0, 0] == 1.0


def test_direction_lower_mirrors_the_score_of_the_same_prediction(fitted: tuple[AssayModel, Path]) -> None:
    model, _ = fitted
    values = np.linspace(-2, 6, 9)
    higher = ScoreTransform(model.transform.low, model.transform.high, "higher")
    lower = ScoreTransform(model.transform.low, model.transform.high, "lower")
    np.testing.assert_allclose(higher.apply(values) + lower.apply(values), 1.0)
    assert np.all(np.diff(higher.apply(values)) > 0) and np.all(np.diff(lower.apply(values)) < 0)
    np.testing.assert_allclose(higher.apply(np.array([higher.low, higher.high])), [0.05, 0.95])


def test_fit_with_direction_lower_prefers_low_values(molecules: list[str]) -> None:
    smiles = molecules[:40]
    data = collect_assay_data((i + 2, s, str(logp(s))) for i, s in enumerate(smiles))
    model = fit_assay_model(data, "lower", estimators=["gaussian_process"])
    assert model.report["direction"] == "lower" and model.transform.direction == "lower"
    assert model.report["folds"] == folds_for(40) == 4
    order = np.argsort([logp(s) for s in smiles])
    scores = model.score(_mols([smiles[order[0]], smiles[order[-1]]]))
    assert scores[0] > 0.8 > 0.2 > scores[1]  # the least lipophilic scores high, the most low


def test_uncertainty_bonus_raises_scores_monotonically_and_stays_bounded(
    fitted: tuple[AssayModel, Path], molecules: list[str]
) -> None:
    model, _ = fitted
    mols = _mols(molecules[TRAIN:])
    runs = np.stack([model.score(mols, kappa) for kappa in (0.0, 0.5, 1.0, 2.0, 50.0)])
    assert np.all(np.diff(runs, axis=0) >= 0) and np.all(np.diff(runs[:2], axis=0).sum() > 0)
    assert runs.min() >= 0.0 and runs.max() <= 1.0
    mean, std = model.predict(mols)
    np.testing.assert_allclose(runs[0], model.transform.apply(mean))
    # the bonus is larger where the model is less sure, in score units
    bonus = runs[1] - runs[0]
    spread = np.abs(model.transform.apply(mean + std) - model.transform.apply(mean - std)) / 2
    np.testing.assert_allclose(bonus, 0.5 * spread, atol=1e-12)


def test_bad_rows_are_reported_with_line_numbers_and_duplicates_averaged(
    molecules: list[str], tmp_path: Path
) -> None:
    good = molecules[:MIN_ROWS]
    extra = [
        ["bad1", "C1CC(", "1.0"],  # line 22: unclosed ring and branch
        ["bad2", "c1ccccc1", "n/a"],  # line 23: not a number
        ["bad3", "CC(C)(C)(C)(C)C", "2.0"],  # line 24: pentavalent carbon
        ["dup", good[0], "9.0"],  # line 25: a duplicate of line 2, written the same
        ["dup2", Chem.MolToSmiles(Chem.MolFromSmiles(good[1]), doRandom=True, canonical=False), "7"],
        ["empty", "", "1.0"],  # line 27
        ["inf", "CCO", "inf"],  # line 28
    ]
    path = write_logp_csv(tmp_path / "rows.csv", good, extra)
    with path.open() as handle:
        data = collect_assay_data(read_csv_rows(handle, "smiles", "logp"))
    assert data.n_rows == MIN_ROWS + len(extra) and data.n_duplicates == 2
    assert len(data.smiles) == MIN_ROWS
    by_line = {r.row: r for r in data.rejected}
    assert sorted(by_line) == [22, 23, 24, 27, 28]
    assert by_line[22].smiles == "C1CC(" and "not valid SMILES" in by_line[22].reason
    assert "'n/a' is not a number" in by_line[23].reason
    assert by_line[24].smiles == "CC(C)(C)(C)(C)C" and "valence" in by_line[24].reason.lower()
    assert "empty SMILES" in by_line[27].reason and "not finite" in by_line[28].reason
    first = Chem.MolToSmiles(Chem.MolFromSmiles(good[0]))
    assert data.values[data.smiles.index(first)] == pytest.approx((logp(good[0]) + 9.0) / 2)


def test_unusable_uploads_raise_errors_naming_the_field(molecules: list[str], tmp_path: Path) -> None:
    path = write_logp_csv(tmp_path / "few.csv", molecules[:5])
    with (
        path.open() as handle,
        pytest.raises(AssayDataError, match=r"value_column: no column 'pIC50'.*'logp'"),
    ):
        list(read_csv_rows(handle, "smiles", "pIC50"))
    with path.open() as handle:
        data = collect_assay_data(read_csv_rows(handle, "smiles", "logp"))
    with pytest.raises(AssayDataError, match=f"file: 5 usable molecules.*at least {MIN_ROWS}"):
        fit_assay_model(data, "higher")
    constant = collect_assay_data((i, s, "1.5") for i, s in enumerate(molecules[:MIN_ROWS]))
    with pytest.raises(AssayDataError, match="value_column: every value is the same"):
        fit_assay_model(constant, "higher")
    with pytest.raises(AssayDataError, match="empty"):
        list(read_csv_rows(iter([]), "smiles", "logp"))


def test_gaussian_process_is_a_candidate_only_for_small_data() -> None:
    assert candidates_for(GP_MAX_ROWS) == ["random_forest", "gaussian_process"]
    assert candidates_for(GP_MAX_ROWS + 1) == ["random_forest"]
    assert [folds_for(n) for n in (20, 35, 49, 50, 10_000)] == [2, 3, 4, 5, 5]


def test_a_reward_config_scores_with_a_model_file(
    fitted: tuple[AssayModel, Path], molecules: list[str], tmp_path: Path
) -> None:
    model, _ = fitted
    path = tmp_path / "logp.npz"
    digest = model.save(path)
    config = RewardConfig.model_validate(
        {
            "components": [
                {"type": "assay_model", "model": str(path), "uncertainty_bonus": 0.5, "sha256": digest}
            ]
        }
    )
    assert config.names == ["logp"]  # the default name: the file's stem
    smiles = [*molecules[TRAIN : TRAIN + 5], "not a smiles"]
    with build_reward(config) as reward:
        batch = reward.score(smiles)
    expected = model.score(_mols(smiles[:5]), 0.5)
    np.testing.assert_allclose(batch.scores["logp"][:5], expected)
    np.testing.assert_allclose(batch.reward[:5], expected)
    assert batch.reward[5] == 0.0 and not batch.valid[5]
    wrong = RewardConfig.model_validate(
        {"components": [{"type": "assay_model", "model": str(path), "sha256": "f" * 64}]}
    )
    with pytest.raises(AssayModelFileError, match="has changed"):
        build_reward(wrong)


def test_component_names_default_to_the_model_name() -> None:
    def label(**fields: object) -> str:
        config = RewardConfig.model_validate({"components": [{"type": "assay_model", **fields}]})
        return config.names[0]

    assert label(model="solubility") == "solubility"
    assert label(model="solubility@3") == "solubility"
    assert label(model="/data/reward-models/sol/sol-v3.npz", reference="solubility@3") == "solubility"
    assert label(model="models/herg.npz") == "herg"
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        label(model="x", uncertainty_bonus=-1)
