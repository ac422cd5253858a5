"""Start the expert review app over a dataset of generated scans.

Reviewers open the printed URL, enter a nickname (only a salted pseudonym of it is
stored) and rate one scan at a time with a click or the keys 1-6. Ratings go to --ratings,
one file per rating, so several reviewers (or several app processes over one shared
folder) can work at once and a restart resumes where each reviewer left off. With --real,
real scans are mixed in and reviewers also answer "real or synthetic?" (blinded round).
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
    parser.add_argument("--reviewer", default=None, help="pre-fill the reviewer name (only its pseudonym is stored)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 to reach it from other machines)")
    parser.add_argument("--port", type=int, default=7861, help="port to serve on")


def review_round(args):
    """The `ReviewRound` these arguments describe (what `run` serves)."""
    from medicraft_hf.review.session import ReviewRound, default_anatomy_check, load_review_dataset
    from medicraft_hf.sources import public_name

    dataset = load_review_dataset(args.dataset, split=args.split, revision=args.revision)
    if args.num_images is not None:
        if args.num_images < 1:
            raise ValueError(f"--num-images must be at least 1, got {args.num_images}")
        dataset = dataset.shuffle(seed=args.seed).select(range(min(args.num_images, len(dataset))))
    real = load_review_dataset(args.real, revision=args.revision) if args.real else None
    return ReviewRound(
        dataset,
        args.ratings,
        real=real,
        # A local folder is named by its last part (ratings merge across machines); a Hub id as is.
        dataset_name=public_name(args.dataset),
        real_name=public_name(args.real) if args.real else "real",
        round_name=args.round_name,
        seed=args.seed,
        anatomy_check=None if args.no_anatomy_check else default_anatomy_check,
    )


def run(args) -> int:
    from medicraft_hf.review.app import launch_review_app

    review = review_round(args)
    print(f"Review round {review.round_name!r}: {len(review)} images"
          + (" (blinded, real scans mixed in)" if review.blinded else "") + f"; ratings go to {args.ratings}")
    launch_review_app(review, host=args.host, port=args.port, reviewer_name=args.reviewer)
    return 0
