"""The test Hub server answers the real clients (huggingface_hub, datasets) over HTTP."""

import httpx
import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value, load_dataset
from huggingface_hub import HfApi, create_repo, hf_hub_download, snapshot_download, upload_file
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from PIL import Image as PILImage


def test_create_upload_download_round_trip(hub, tmp_path):
    repo_id = hub.repo_id("smoke")
    url = create_repo(repo_id, private=True)
    assert url.repo_id == repo_id
    # A duplicate answers 409 with the url, so exist_ok works and plain create fails.
    assert create_repo(repo_id, exist_ok=True).repo_id == repo_id
    with pytest.raises(HfHubHTTPError) as err:
        create_repo(repo_id)
    assert err.value.response.status_code == 409
    assert hub.repo_is_private(repo_id)

    upload_file(path_or_fileobj=b"hello hub\n", path_in_repo="notes/hello.txt", repo_id=repo_id)
    weights = np.random.default_rng(0).bytes(3000)  # binary: stored through LFS
    info = upload_file(path_or_fileobj=weights, path_in_repo="weights.bin", repo_id=repo_id)
    assert hub.files(repo_id)["weights.bin"] == weights

    text_path = hf_hub_download(repo_id, "notes/hello.txt", cache_dir=tmp_path)
    assert open(text_path, "rb").read() == b"hello hub\n"
    bin_path = hf_hub_download(repo_id, "weights.bin", revision=info.oid, cache_dir=tmp_path)
    assert open(bin_path, "rb").read() == weights

    api = HfApi()
    repo_info = api.repo_info(repo_id, files_metadata=True)
    assert repo_info.private is True
    assert {s.rfilename for s in repo_info.siblings} == {".gitattributes", "notes/hello.txt", "weights.bin"}
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "notes/hello.txt", "weights.bin"]
    lfs_file = next(f for f in api.list_repo_tree(repo_id, recursive=True) if f.path == "weights.bin")
    assert lfs_file.lfs.sha256 == __import__("hashlib").sha256(weights).hexdigest()
    assert [c.title for c in api.list_repo_commits(repo_id)][-1] == "initial commit"

    snapshot = snapshot_download(repo_id, cache_dir=tmp_path / "snap")
    assert open(f"{snapshot}/weights.bin", "rb").read() == weights


def test_errors_have_hub_error_codes(hub, tmp_path):
    repo_id = hub.repo_id("errors")
    create_repo(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(hub.repo_id("missing"), "x.txt", cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "missing.txt", cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "b-scans/œil gauche.png", cache_dir=tmp_path)  # non-ASCII in error headers
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, ".gitattributes", revision="nope", cache_dir=tmp_path)


def test_private_repo_is_hidden_without_token_and_public_repo_is_not(hub):
    private_id, public_id = hub.repo_id("private"), hub.repo_id("public")
    create_repo(private_id, private=True)
    create_repo(public_id, private=False)
    assert hub.repo_is_private(private_id) and not hub.repo_is_private(public_id)
    anonymous = httpx.get(f"{hub.endpoint}/api/models/{private_id}")
    assert anonymous.status_code == 401 and anonymous.headers["X-Error-Code"] == "RepoNotFound"
    assert httpx.get(f"{hub.endpoint}/api/models/{public_id}").json()["private"] is False


def test_stale_parent_commit_is_refused(hub):
    repo_id = hub.repo_id("stale")
    create_repo(repo_id)
    first = HfApi().repo_info(repo_id).sha
    upload_file(path_or_fileobj=b"a", path_in_repo="a.txt", repo_id=repo_id, parent_commit=first)
    with pytest.raises(HfHubHTTPError) as err:
        upload_file(path_or_fileobj=b"b", path_in_repo="b.txt", repo_id=repo_id, parent_commit=first)
    assert err.value.response.status_code == 412


def test_range_requests_get_206(hub):
    repo_id = hub.repo_id("ranges")
    create_repo(repo_id)
    upload_file(path_or_fileobj=b"0123456789", path_in_repo="digits.txt", repo_id=repo_id)
    url = f"{hub.endpoint}/{repo_id}/resolve/main/digits.txt"
    headers = {"Authorization": "Bearer x"}
    head = httpx.head(url, headers=headers)
    assert head.status_code == 200 and head.headers["Content-Length"] == "10"
    assert head.headers["X-Repo-Commit"] and head.headers["ETag"]
    part = httpx.get(url, headers={**headers, "Range": "bytes=2-4"})
    assert (part.status_code, part.content, part.headers["Content-Range"]) == (206, b"234", "bytes 2-4/10")
    assert httpx.get(url, headers={**headers, "Range": "bytes=-3"}).content == b"789"
    assert httpx.get(url, headers={**headers, "Range": "bytes=20-"}).status_code == 416


def test_unhandled_requests_are_recorded(hub):
    before = len(hub.unhandled)
    response = httpx.get(f"{hub.endpoint}/api/not-an-endpoint")
    assert response.status_code == 501
    assert [r.path for r in hub.unhandled[before:]] == ["/api/not-an-endpoint"]
    with pytest.raises(AssertionError, match="GET /api/not-an-endpoint -> 501"):
        hub.server.check_no_unhandled(since=before)  # what the autouse fixture runs after each test
    del hub.unhandled[before:]  # expected here; the autouse check would fail this test otherwise
    hub.server.check_no_unhandled(since=before)


def test_dataset_push_to_hub_and_load_dataset_round_trip(hub):
    names = ["healthy", "nevus", "nevus_fluid", "melanoma"]  # deliberately not alphabetical
    features = Features({"image": Image(), "label": ClassLabel(names=names), "patient_id": Value("string")})
    rng = np.random.default_rng(0)
    images = [PILImage.fromarray(rng.integers(0, 255, (8, 16), dtype=np.uint8), mode="L") for _ in range(6)]
    rows = {"image": images, "label": [3, 2, 1, 0, 3, 2], "patient_id": [f"p{i // 2}" for i in range(6)]}
    dsdict = DatasetDict({
        "train": Dataset.from_dict({k: v[:4] for k, v in rows.items()}, features=features),
        "test": Dataset.from_dict({k: v[4:] for k, v in rows.items()}, features=features),
    })
    repo_id = hub.repo_id("ds")
    dsdict.push_to_hub(repo_id, private=True)
    assert hub.repo_is_private(repo_id, "dataset")

    loaded = load_dataset(repo_id)
    assert set(loaded) == {"train", "test"}
    assert loaded["train"].features["label"].names == names
    assert loaded["train"]["label"] == [3, 2, 1, 0]
    assert np.array_equal(np.asarray(loaded["test"][1]["image"]), np.asarray(images[5]))

    # Streaming reads the parquet shards by HTTP ranges (206) through HfFileSystem.
    before = len(hub.requests)
    streamed = list(load_dataset(repo_id, split="train", streaming=True))
    assert [row["label"] for row in streamed] == [3, 2, 1, 0]
    assert np.array_equal(np.asarray(streamed[0]["image"]), np.asarray(images[0]))
    assert any(r.status == 206 for r in hub.requests[before:])
