"""Shared fixtures: the location of ../shared/data, and a private parse cache for every test."""
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; the test is skipped, with the reason, when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def private_cache(session_cache, monkeypatch) -> Path:
    """Point the CSV parse cache at this session's temporary folder, so no test touches ~/.cache.

    Entries are keyed by file content, so sharing them across tests is safe (a large shared file is
    parsed once per session); tests of the cache itself point it at their own tmp_path.
    """
    monkeypatch.setenv("FACEKEYPOINTS_CACHE", str(session_cache))
    return session_cache


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of small-batch tests: on a shared 2-core machine two OpenMP
    threads wait on each other's time slices, which made those tests up to 10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny kaggle15 checkpoint that answers the mean face (tests/fakes.py), one per test module."""
    from fakes import mean_face_checkpoint

    return mean_face_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean.pt")


@pytest.fixture(scope="module")
def det(model):
    """A KeypointDetector (PyTorch backend, Haar detector) on ``model``."""
    from facekeypoints.infer.predictor import KeypointDetector

    return KeypointDetector(model, backend="torch")


@pytest.fixture
def tiny_csv(tmp_path):
    """A Kaggle CSV of 32 synthetic faces (tests/fakes.py make_faces)."""
    from fakes import make_faces

    from facekeypoints.data import write_kaggle_csv

    return write_kaggle_csv(make_faces(32), tmp_path / "training.csv")
