"""Write the evaluation report: report.json (stable keys for cards), report.md, PNG plots."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from medicraft_hf.io import write_bytes_atomic, write_json_atomic, write_text_atomic

PLOTS = {
    "confusion_matrices": "confusion_matrices.png",
    "samples": "samples_real_vs_synthetic.png",
    "embedding": "embedding.png",
    "nearest_neighbours": "nearest_neighbours.png",
    "privacy_ssim": "privacy_ssim.png",
}
SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auc_ovr")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    write_bytes_atomic(path, buf.getvalue())


def plot_confusion_matrices(usefulness: dict, class_names, path: Path) -> None:
    """Row-normalised confusion matrices (summed over seeds), rows = true class."""
    plt = _pyplot()
    protocols = list(usefulness)
    fig, axes = plt.subplots(1, len(protocols), figsize=(4.6 * len(protocols), 4.4), squeeze=False)
    for k, (ax, protocol) in enumerate(zip(axes[0], protocols)):
        cm = np.asarray(usefulness[protocol]["confusion_matrix"], dtype=float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for i in range(len(class_names)):
            for j in range(len(class_names)):
                ax.text(j, i, f"{norm[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.6 else "black")  # fmt: skip
        ticks = range(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=45, ha="right")
        ax.set_yticks(ticks, class_names if k == 0 else [])
        acc = usefulness[protocol]["metrics"]["accuracy"]
        ax.set_title(f"{protocol}: acc {acc['mean']:.3f}" + (f" ± {acc['std']:.3f}" if acc["std"] is not None else ""))
        ax.set_xlabel("predicted")
    axes[0, 0].set_ylabel("true (real test)")
    fig.tight_layout()
    _save(fig, path)


def plot_samples(real, synthetic, class_names, path: Path, per_row: int = 6, seed: int = 0) -> None:
    """Per class: a row of real training images above a row of synthetic ones."""
    plt = _pyplot()
    rng = np.random.default_rng(seed)
    h, w = real.images.shape[1:]
    fig, axes = plt.subplots(
        2 * len(class_names), per_row, figsize=(per_row * 2.0, len(class_names) * 2 * 2.0 * h / w + 0.5), squeeze=False
    )
    for c, name in enumerate(class_names):
        for r, (side, images) in enumerate((("real", real), ("synthetic", synthetic))):
            idx = np.flatnonzero(images.labels == c)
            pick = rng.choice(idx, size=min(per_row, len(idx)), replace=False) if len(idx) else []
            for k in range(per_row):
                ax = axes[2 * c + r, k]
                ax.axis("off")
                if k < len(pick):
                    ax.imshow(images.images[pick[k]], cmap="gray", vmin=0, vmax=255)
            axes[2 * c + r, 0].set_title(f"{name} / {side}", fontsize=8, loc="left")
    _save(fig, path)


def plot_embedding(real_features, real_labels, synthetic_features, synthetic_labels, class_names, path: Path) -> None:
    """PCA (fit on real) of classifier features: real as dots, synthetic as crosses."""
    from sklearn.decomposition import PCA

    plt = _pyplot()
    pca = PCA(n_components=2, random_state=0).fit(real_features)
    real_2d, syn_2d = pca.transform(real_features), pca.transform(synthetic_features)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    colors = plt.get_cmap("tab10")
    for c, name in enumerate(class_names):
        ax.scatter(*real_2d[real_labels == c].T, s=8, color=colors(c), alpha=0.5, label=f"{name} real")
        ax.scatter(*syn_2d[synthetic_labels == c].T, s=14, color=colors(c), marker="x", alpha=0.8, label=f"{name} synthetic")
    ev = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({ev[0]:.0%})")
    ax.set_ylabel(f"PC2 ({ev[1]:.0%})")
    ax.set_title("Classifier features: real train (o) vs synthetic (x)")
    ax.legend(fontsize=7, ncol=2, markerscale=1.5)
    _save(fig, path)


def plot_nearest_neighbours(privacy: dict, synthetic, train, path: Path, n: int = 8) -> None:
    """The `n` synthetic images most similar to a training image, beside that image."""
    plt = _pyplot()
    pairs = privacy["pairs"][:n]
    h, w = train.images.shape[1:]
    fig, axes = plt.subplots(len(pairs), 2, figsize=(5, len(pairs) * 2.5 * h / w + 0.6), squeeze=False)
    for row, pair in zip(axes, pairs):
        row[0].imshow(synthetic.images[pair["synthetic_index"]], cmap="gray", vmin=0, vmax=255)
        row[1].imshow(train.images[pair["train_index"]], cmap="gray", vmin=0, vmax=255)
        color = "red" if pair["flagged"] else "black"
        row[0].set_title(f"synthetic {pair['synthetic_image_id']}", fontsize=6, color=color)
        row[1].set_title(
            f"train {pair['train_image_id']}  SSIM {pair['ssim']:.3f}" + ("  NEAR-COPY" if pair["flagged"] else ""),
            fontsize=6, color=color,
        )  # fmt: skip
        for ax in row:
            ax.axis("off")
    _save(fig, path)


def plot_privacy_ssim(privacy: dict, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(-0.1, 1.0, 56)
    ax.hist(privacy["held_out_nearest_ssim"], bins=bins, alpha=0.6, density=True, label="real held-out -> train")
    ax.hist([p["ssim"] for p in privacy["pairs"]], bins=bins, alpha=0.6, density=True, label="synthetic -> train")
    ax.axvline(privacy["ssim_threshold"], color="red", linestyle="--", label=f"near-copy SSIM {privacy['ssim_threshold']:.2f}")
    ax.set_xlabel("SSIM to the nearest training image")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    _save(fig, path)


def summary_of(usefulness: dict, fidelity: dict, privacy: dict, anatomy: dict | None) -> dict:
    """The stable numbers cards quote (keys do not change between versions)."""
    summary = {
        metric: {p: {"mean": r["metrics"][metric]["mean"], "std": r["metrics"][metric]["std"]} for p, r in usefulness.items()}
        for metric in SUMMARY_METRICS
    }
    overall = fidelity["overall"]
    summary.update({k: overall[k] for k in ("fid", "kid", "kid_se", "precision", "recall")})
    floor = fidelity.get("real_heldout_vs_real_train", {}).get("overall", {})
    summary["fid_real_heldout"] = floor.get("fid")
    summary["kid_real_heldout"] = floor.get("kid")
    summary.update({k: privacy[k] for k in ("near_copies", "near_copy_rate", "n_synthetic")})
    summary["anatomy_ok_rate"] = anatomy["synthetic"]["overall"]["ok_fraction"] if anatomy else None
    summary["anatomy_ok_rate_real"] = anatomy["real_test"]["overall"]["ok_fraction"] if anatomy else None
    return summary


def _fmt(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pm(stat: dict, digits=3) -> str:
    if stat["mean"] is None:
        return "n/a"
    return _fmt(stat["mean"], digits) + ("" if stat["std"] is None else f" ± {_fmt(stat['std'], digits)}")


def summary_table(report: dict) -> str:
    """A short plain-text table for the terminal."""
    s = report["summary"]
    lines = [f"{'protocol':<8} {'accuracy':>17} {'balanced acc':>17} {'macro-F1':>17} {'AUC (ovr)':>17}"]
    for p in report["usefulness"]:
        lines.append(f"{p:<8} " + " ".join(f"{_pm(s[m][p]):>17}" for m in SUMMARY_METRICS))
    lines.append(
        f"FID {_fmt(s['fid'], 2)} (real held-out: {_fmt(s['fid_real_heldout'], 2)}), "
        f"KID {_fmt(s['kid'], 4)} ± {_fmt(s['kid_se'], 4)}, precision {_fmt(s['precision'])}, recall {_fmt(s['recall'])}"
    )
    lines.append(f"near-copies {s['near_copies']}/{s['n_synthetic']} ({_fmt(100 * s['near_copy_rate'], 1)}%)"
                 f", anatomy ok rate synthetic {_fmt(s['anatomy_ok_rate'])}"
                 f" / real {_fmt(s['anatomy_ok_rate_real'])}")  # fmt: skip
    return "\n".join(lines)


def training_lines(usefulness: dict) -> list[str]:
    """How long each run trained and where its best validation checkpoint was."""
    out = ["| protocol | seed | steps trained | best validation step | validation balanced accuracy |",
           "|---|---|---|---|---|"]
    for protocol, r in usefulness.items():
        for run in r["runs"]:
            t = run.get("training") or {}
            best = t.get("best_validation_balanced_accuracy")
            out.append(f"| {protocol} | {run['seed']} | {t.get('steps', '—')} | {t.get('best_step') or '—'} | "
                       f"{'—' if best is None else f'{best:.3f}'} |")
    return out + [""]


def markdown_report(report: dict) -> str:
    names = report["data"]["class_names"]
    out = ["# Synthetic OCT evaluation", ""]
    d = report["data"]
    out += [
        f"Real: `{d['real']}`; synthetic: `{d['synthetic']}`. Images evaluated at {d['resolution'][0]}x{d['resolution'][1]} "
        f"(stored at {d['image_size'][0]}x{d['image_size'][1]}). Classes: {', '.join(names)}.",
        "",
        "| set | " + " | ".join(names) + " | total |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for key, counts in d["class_counts"].items():
        out.append(f"| {key} | " + " | ".join(str(c) for c in counts) + f" | {sum(counts)} |")
    u = report["usefulness"]
    out += ["", "## Usefulness (test = real, patient-held-out test split)", "",
            f"ViT trained with the HF Trainer, {len(report['settings']['seeds'])} seeds, mean ± std.", "",
            "| protocol | n train | accuracy | balanced accuracy | macro-F1 | AUC (ovr) |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for p, r in u.items():
        out.append(f"| {p} ({r['description']}) | {r['n_train']} | "
                   + " | ".join(_pm(r["metrics"][m]) for m in SUMMARY_METRICS) + " |")
    out += ["", "Per-class recall:", "", "| protocol | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for p, r in u.items():
        out.append(f"| {p} | " + " | ".join(_pm(r["metrics"][f"recall_{n}"]) for n in names) + " |")
    c = report["settings"]["classifier"]
    if c.get("patience"):
        out += ["", f"Training rule, every protocol: early stopping on the real validation balanced accuracy (every "
                f"{c['eval_every']} steps, patience {c['patience']}, at most {c['max_steps']} steps; best checkpoint "
                "kept).", ""] + training_lines(u)
    out += ["", f"![confusion matrices]({PLOTS['confusion_matrices']})", ""]

    f = report["fidelity"]
    if report.get("trts"):
        t = report["trts"]
        per_class = ", ".join(f"{k} {v:.2f}" for k, v in t["per_class"].items() if v is not None)
        out += ["## Class fidelity (TRTS)", "",
                f"The real-trained classifier ({t['classifier']}) assigns **{t['overall']:.3f}** of {t['n']} "
                f"synthetic scans to the class they were generated as; per class: {per_class}.", ""]
    if report.get("uncertainty"):
        from medicraft_hf.evaluation import paired_synthetic
        from medicraft_hf.evaluation.uncertainty import markdown_lines

        out += markdown_lines(report["uncertainty"], report.get("comparison"))
        paired = (report.get("comparison") or {}).get("synthetic") or {}
        if "measures" in paired:
            out += paired_synthetic.markdown_lines(paired, report["comparison"]["other"])
        elif "note" in paired:
            out += [f"Synthetic sets not compared image by image: {paired['note']}", ""]
    out += ["## Fidelity", "", f"In the feature space of the classifier trained on real data: {f['feature_space']}; "
            f"precision/recall use k={f['k']} nearest-neighbour manifolds. 'real held-out' compares the real test split "
            "with real train: the value a perfect generator would reach.", "",
            "| set | n real | n synthetic | FID | KID ± SE | precision | recall |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    rows = [("all", f["overall"])] + list(f["per_class"].items())
    ref = f.get("real_heldout_vs_real_train")
    if ref:
        rows.append(("all, real held-out", ref["overall"]))
    for name, m in rows:
        kid = "n/a" if m["kid"] is None else f"{m['kid']:.4f} ± {_fmt(m['kid_se'], 4)}"
        out.append(f"| {name} | {m['n_real']} | {m['n_synthetic']} | {_fmt(m['fid'], 2)} | {kid} "
                   f"| {_fmt(m['precision'])} | {_fmt(m['recall'])} |")
    out += ["", f"![embedding]({PLOTS['embedding']})", "", f"![samples]({PLOTS['samples']})", ""]

    pv = report["privacy"]
    out += ["## Privacy: memorization audit", "",
            f"Rule: {pv['rule']}, here SSIM >= {pv['ssim_threshold']:.3f}. Nearest neighbours are searched by classifier "
            f"features and by pixels; {100 * pv['feature_closer_than_held_out_rate']:.1f}% of synthetic images are closer in "
            f"features than 99% of held-out scans (reported only: features group a class together).", "",
            f"**Near-copies: {pv['near_copies']} of {pv['n_synthetic']} synthetic images ({100 * pv['near_copy_rate']:.1f}%).** "
            f"The same rule flags {100 * pv['held_out_false_positive_rate']:.1f}% of {pv['n_held_out']} real held-out images. "
            f"{100 * pv['closer_than_held_out_rate']:.1f}% of synthetic images are more similar to a training image "
            f"than 99% of held-out scans.",
            "", "| nearest-train SSIM | q01 | q05 | median | q95 | q99 |", "|---|---|---|---|---|---|"]  # fmt: skip
    for key, label in (("held_out_ssim", "real held-out"), ("synthetic_ssim", "synthetic")):
        q = pv[key]
        out.append(f"| {label} | " + " | ".join(_fmt(q[k]) for k in ("q01", "q05", "q50", "q95", "q99")) + " |")
    out += ["", f"![nearest neighbours]({PLOTS['nearest_neighbours']})", "", f"![SSIM]({PLOTS['privacy_ssim']})", ""]

    a = report.get("anatomy")
    out += ["## Anatomy", ""]
    if a:
        verdicts = a["verdicts"]
        out += ["Automatic plausibility check (`medicraft_hf.evaluation.anatomy.check_anatomy`).", "",
                "| set | n | ok rate | " + " | ".join(verdicts) + " |", "|---|---|---|" + "---|" * len(verdicts)]  # fmt: skip
        for key in ("synthetic", "real_test"):
            rows = [(key, a[key]["overall"])] + [(f"{key} / {label}", c) for label, c in a[key].get("per_label", {}).items()]
            for name, r in rows:
                out.append(f"| {name} | {r['n']} | {_fmt(r['ok_fraction'])} | "
                           + " | ".join(str(r["counts"][v]) for v in verdicts) + " |")
    else:
        out.append("Not run.")
    out += ["", "## Summary", "", "```", summary_table(report), "```", ""]
    return "\n".join(out)


def card_section(report: dict) -> str:
    """The evaluation in a few lines of markdown, for a dataset or model card
    (e.g. `dataset_card(..., extra_sections={"Evaluation": card_section(report)})`)."""
    s, u = report["summary"], report["usefulness"]
    seeds = len(report["settings"]["seeds"])
    lines = [
        f"Evaluated with `medicraft evaluate` against `{report['data']['real']}` at "
        f"{report['data']['resolution'][0]}x{report['data']['resolution'][1]}.",
        "",
        f"Usefulness: a ViT classifier (HF Trainer, {seeds} seeds, mean ± std), "
        f"always tested on the real patient-held-out test split.",
        "",
        "| protocol | n train | accuracy | balanced accuracy | macro-F1 | AUC (one-vs-rest) |",
        "|---|---|---|---|---|---|",
    ]
    for p, r in u.items():
        lines.append(f"| {p} ({r['description']}) | {r['n_train']} | " + " | ".join(_pm(s[m][p]) for m in SUMMARY_METRICS) + " |")
    kid = "n/a" if s["kid"] is None else f"{s['kid']:.4f} ± {_fmt(s['kid_se'], 4)}"
    lines += [
        "",
        f"- Fidelity (feature space of the classifier trained on real data): FID {_fmt(s['fid'], 2)} "
        f"(real held-out vs real train: {_fmt(s['fid_real_heldout'], 2)}), KID {kid}, "
        f"precision {_fmt(s['precision'])}, recall {_fmt(s['recall'])}.",
        f"- Memorization audit: **{s['near_copies']} of {s['n_synthetic']} synthetic images "
        f"({100 * s['near_copy_rate']:.1f}%) are near-copies of a training image** ({report['privacy']['rule']}).",
        f"- Automatic anatomy check: ok rate {_fmt(s['anatomy_ok_rate'])} on synthetic images "
        f"({_fmt(s['anatomy_ok_rate_real'])} on real test images).",
    ]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "report.json", report)
    write_text_atomic(out_dir / "report.md", markdown_report(report))
    write_text_atomic(out_dir / "card_section.md", card_section(report))
