"""Start the expert review app over a dataset of generated scans.

Reviewers open the printed URL, enter a nickname (only a salted pseudonym of it is
stored) and rate one scan at a time with a click or the keys 1-6. Ratings go to --ratings,
one file per rating, so several reviewers (or several app processes over one shared
folder) can work at once and a restart resumes where each reviewer left off. With --real,
real scans are mixed in and reviewers also answer "real or synthetic?" (blinded round).

Pseudonyms are salted with a per-deployment secret: $MEDICRAFT_REVIEW_SALT, --salt-file, or
the store's `.salt`, created on first use. With --auth-file (lines `user:password`) the app
asks for a login and reviewers are who logged in.
"""

from __future__ import annotations

HELP = "serve the expert review app (one scan, one click or key per verdict) over a dataset"


def add_arguments(parser) -> None:
    parser.add_argument("dataset", help="dataset to rate: a saved dataset folder or a Hub dataset id")
    parser.add_argument("--ratings", required=True, help="ratings folder (created; shared by every reviewer of the round)")
    parser.add_argument("--real", default=None, help="real dataset to mix in for a blinded round (visual Turing test)")
    parser.add_argument("--split", default=None, help="rate this split only (default: every split)")
    parser.add_argument("--num-images", type=int, default=None, help="rate a seeded random sample of this many images")
    parser.add_argument("--round", dest="round_name", default="round-1", help="name of the review round")
    parser.add_argument("--seed", type=int, default=0, help="seeds each reviewer's order and the real-scan draw")
    parser.add_argument("--revision", default=None, help="Hub revision of the dataset(s)")
    parser.add_argument("--no-anatomy-check", action="store_true",
                        help="do not store the automatic check's verdict beside each rating")
    parser.add_argument("--order", choices=("random", "uncertain-first"), default="random",
                        help="random: each reviewer's own seeded order; uncertain-first: the scans the anatomy check "
                             "is least sure of first (not with --real)")
    parser.add_argument("--reviewer", default=None, help="pre-fill the reviewer name (only its pseudonym is stored)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 to reach it from other machines)")
    parser.add_argument("--port", type=int, default=7861, help="port to serve on")
    parser.add_argument("--auth-file", default=None, metavar="FILE",
                        help="require a login: a file of `user:password` lines (reviewers are who logged in)")
    parser.add_argument("--salt-file", default=None, metavar="FILE",
                        help="the secret salting reviewer pseudonyms (default: $MEDICRAFT_REVIEW_SALT, else the "
                             "ratings folder's .salt, created on first use); share it across sites to merge reviewers")


def read_auth_file(path) -> list[tuple[str, str]]:
    """`user:password` lines (blank lines and # comments skipped) as Gradio's `auth` pairs."""
    from pathlib import Path

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise FileNotFoundError(f"--auth-file {path}: {err.strerror or err}") from err
    pairs = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"--auth-file {path}, line {number}: expected `user:password`.")
        pairs.append((user.strip(), password))
    if not pairs:
        raise ValueError(f"--auth-file {path} has no `user:password` line.")
    return pairs


def read_salt_file(path) -> str:
    from pathlib import Path

    try:
        salt = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise FileNotFoundError(f"--salt-file {path}: {err.strerror or err}") from err
    if len(salt) < 16:
        raise ValueError(f"--salt-file {path}: a salt must be a secret of at least 16 characters.")
    return salt


def review_round(args):
    """The `ReviewRound` these arguments describe (what `run` serves)."""
    from medicraft_hf.review.session import ReviewRound, default_anatomy_check, load_review_dataset
    from medicraft_hf.review.store import RatingsStore
    from medicraft_hf.sources import public_name

    # The store first: one that cannot be written is refused before any dataset is loaded.
    store = RatingsStore(args.ratings, salt=read_salt_file(args.salt_file) if args.salt_file else None)
    store.check_writable()

    dataset = load_review_dataset(args.dataset, split=args.split, revision=args.revision)
    if args.num_images is not None:
        if args.num_images < 1:
            raise ValueError(f"--num-images must be at least 1, got {args.num_images}")
        dataset = dataset.shuffle(seed=args.seed).select(range(min(args.num_images, len(dataset))))
    real = load_review_dataset(args.real, revision=args.revision) if args.real else None
    return ReviewRound(
        dataset,
        store,
        real=real,
        # A local folder is named by its last part (ratings merge across machines); a Hub id as is.
        dataset_name=public_name(args.dataset),
        real_name=public_name(args.real) if args.real else "real",
        round_name=args.round_name,
        seed=args.seed,
        anatomy_check=None if args.no_anatomy_check else default_anatomy_check,
        order=args.order,
    )


def run(args) -> int:
    from medicraft_hf.review.app import launch_review_app

    auth = read_auth_file(args.auth_file) if args.auth_file else None
    review = review_round(args)
    print(f"Review round {review.round_name!r}: {len(review)} images"
          + (" (blinded, real scans mixed in)" if review.blinded else "") + f"; ratings go to {args.ratings}")
    launch_review_app(review, host=args.host, port=args.port, reviewer_name=args.reviewer, auth=auth)
    return 0
