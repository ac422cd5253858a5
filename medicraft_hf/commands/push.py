"""Push a saved OCT dataset folder or a saved pipeline folder to the Hugging Face Hub.

The kind is read from the folder: README.md + data/*.parquet is a dataset (pushed as
parquet shards with its card), model_index.json is a diffusers pipeline. Repos are
created private unless --public is given; a failed push can simply be run again.
"""

from __future__ import annotations

HELP = "push a dataset folder or a pipeline folder to the Hub (private by default)"


def add_arguments(parser) -> None:
    parser.add_argument("path", help="dataset folder (README.md + data/*.parquet) or pipeline folder (model_index.json)")
    parser.add_argument("repo_id", help="target repo, e.g. my-org/oct-phantom")
    parser.add_argument("--public", action="store_true", help="create the repo public instead of private")
    parser.add_argument("--revision", default=None, help="branch to push to, created if missing (None: main)")
    parser.add_argument("--commit-message", default=None, help="commit message on the Hub")
    parser.add_argument("--max-attempts", type=int, default=3, help="tries before giving up on server/network errors")


def run(args) -> int:
    # Imported here so that `medicraft --help` stays fast.
    from medicraft_hf.hub import is_dataset_dir, is_model_dir, push_dataset_dict, push_model_folder
    from medicraft_hf.sources import check_repo_id

    check_repo_id(args.repo_id, "repo_id")
    if args.max_attempts < 1:
        raise ValueError(f"--max-attempts must be at least 1, got {args.max_attempts}")
    options = {"private": not args.public, "revision": args.revision, "max_attempts": args.max_attempts}
    if args.commit_message:
        options["commit_message"] = args.commit_message
    # A failed push (HubPushError) becomes one line and exit code 1 in medicraft_hf.cli.
    if is_dataset_dir(args.path):
        commit = push_dataset_dict(args.path, args.repo_id, **options)
        kind, url_prefix = "dataset", "datasets/"
    elif is_model_dir(args.path):
        commit = push_model_folder(args.path, args.repo_id, **options)
        kind, url_prefix = "model", ""
    else:
        raise FileNotFoundError(
            f"{args.path} is neither a saved dataset (README.md + data/*.parquet) "
            "nor a saved pipeline (model_index.json)."
        )
    from huggingface_hub import constants

    visibility = "public" if args.public else "private"
    print(f"pushed {kind} {args.path} to {constants.ENDPOINT}/{url_prefix}{args.repo_id} "
          f"({visibility}, commit {commit[:12]})")
    return 0
