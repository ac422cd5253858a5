"""Test session setup: no outside hosts, a fresh HF cache, tiny shared fixtures.

Environment variables are set at import time, before any test imports
huggingface_hub / datasets / diffusers (they freeze settings at import).
"""

import os
import tempfile

_HF_HOME = tempfile.mkdtemp(prefix="medicraft-test-hf-home-")
os.environ.update(
    {
        "HF_HOME": _HF_HOME,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
)

# --- Local Hub-protocol server (tests/hub_server.py) -----------------------------------
# ONE server per session, started here because huggingface_hub freezes HF_ENDPOINT into
# module constants when it is first imported.
import itertools  # noqa: E402

import pytest  # noqa: E402

from tests.hub_server import HubServer  # noqa: E402

_HUB_SERVER = HubServer(namespace="medicraft-test").start()
os.environ.update(
    {
        "HF_ENDPOINT": _HUB_SERVER.endpoint,
        "HF_TOKEN": "hf_medicraft_test_token",
        "HF_HUB_DISABLE_XET": "1",  # else uploads go to Xet storage, which no test server offers
    }
)
os.environ.pop("HF_HUB_OFFLINE", None)

import datasets  # noqa: E402

datasets.config.USE_PARQUET_EXPORT = False  # else load_dataset asks the dataset viewer


class Hub:
    """What the `hub` fixture gives a test: the local server and helpers around it."""

    def __init__(self, server: HubServer):
        self.server = server
        self.endpoint = server.endpoint
        self.namespace = server.namespace
        self._names = itertools.count()

    def repo_id(self, name: str) -> str:
        """A repo id in the test namespace that no other test of the session uses."""
        return f"{self.namespace}/{name}-{next(self._names)}"

    @property
    def requests(self):
        return self.server.requests

    @property
    def unhandled(self):
        return self.server.unhandled

    def repo_is_private(self, repo_id: str, repo_type: str = "model") -> bool:
        return self.server.repo_is_private(repo_id, repo_type)

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        return self.server.files(repo_id, repo_type, revision)

    def fail_next(self, method: str, path_pattern: str, status: int = 500, times: int = 1) -> None:
        self.server.fail_next(method, path_pattern, status, times)

    def clear_failures(self) -> None:
        self.server.clear_failures()


@pytest.fixture(scope="session")
def hub() -> Hub:
    return Hub(_HUB_SERVER)


@pytest.fixture(autouse=True)
def _fail_on_unhandled_hub_requests():
    """Any request the test Hub does not handle fails the test during which it arrived."""
    seen = len(_HUB_SERVER.unhandled)
    yield
    try:
        _HUB_SERVER.check_no_unhandled(since=seen)
    except AssertionError as err:
        pytest.fail(str(err), pytrace=False)
