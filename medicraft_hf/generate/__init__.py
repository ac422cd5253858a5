"""Balanced synthetic OCT datasets: exact, shardable across processes, resumable, on the Hub.

Numbering (`numbering`). The k-th image of class c has the global index `k * C + c`
(C classes): the index alone tells the class, and a run asking for more images of a class
contains the images of a run asking for fewer. Image i is sampled with its own
`torch.Generator` seeded with `image_seed(seed, i)` (stored in the `seed` column); it
draws the initial noise and any sampler noise, so no image depends on which others share
its batch.

Exactness (`sampling`). The images not on disk yet are cut into blocks of `batch_size`,
each one pipeline call; processes (`accelerate launch`) take blocks round-robin, and a
restart samples only what is missing. The pipeline runs batch-invariant
(`pipe(..., batch_invariant=True)`): the UNet sees one image per call, on one CPU thread,
with kernels whose sums do not depend on the thread count, and MKL in its strict
reproducible mode (`MKL_CBWR`, set by `import medicraft_hf`). So on one kind of machine
(the same CPU instruction set and torch build) an image's bytes depend only on the model,
the settings and its index, never on the batch size, the number of processes or their
threads (tested bit for bit in tests/test_generate.py). Across CPU types (AVX2, AVX-512,
aarch64) the kernels themselves differ, so pixels may move by a grey level: not promised
bit-identical (tests/test_golden.py bounds the drift). The card records where a dataset
was made. benchmarks/bench_sampling.py prints the cost against batched sampling.

Resumability (`run_folder`). Finished images go to parquet shards in `<out>.partial/` as
they are made (`medicraft_hf.shards`, atomic); the shards are the state. When every image
is done, the main process writes the dataset to `<out>` in the Hub layout
(`medicraft_hf.data.build.save_dataset_dict`), with a `DatasetCard` (`card`), and pushes
it if asked. A folder holding another run's images is refused, never mixed.

Settings (`settings`) travel as two typed objects: `GenerationSettings` (what the pixels
depend on) and `GenerationOptions` (how the job runs). This package imports neither the
review package nor the CLI; `python -m medicraft_hf.generate` runs `medicraft generate`.
"""

from medicraft_hf.generate.anatomy_filter import (
    MAX_CANDIDATES_PER_IMAGE,
    AnatomyFilter,
    annotate_anatomy,
    plan_next_round,
)
from medicraft_hf.generate.card import NOT_FOR_DIAGNOSIS
from medicraft_hf.generate.counts import balance_counts, check_counts, parse_counts
from medicraft_hf.generate.dataset import generate_dataset
from medicraft_hf.generate.export import write_batch_downloads
from medicraft_hf.generate.numbering import image_index, image_seed, plan_indices
from medicraft_hf.generate.result import GenerationResult
from medicraft_hf.generate.run_folder import DONE_FILE, FORMAT_VERSION, RUN_FILE, WORK_SUFFIX
from medicraft_hf.generate.sampling import generate_images, sample_block
from medicraft_hf.generate.settings import (
    GenerationOptions,
    GenerationSettings,
    machine_kind,
    model_id_of_pipe,
    model_revision_of,
    scheduler_name,
    weights_revision,
)

__all__ = [
    "AnatomyFilter", "DONE_FILE", "FORMAT_VERSION", "GenerationOptions", "GenerationResult", "GenerationSettings",
    "MAX_CANDIDATES_PER_IMAGE", "NOT_FOR_DIAGNOSIS", "RUN_FILE", "WORK_SUFFIX", "annotate_anatomy",
    "balance_counts", "check_counts", "generate_dataset", "generate_images", "image_index", "image_seed",
    "machine_kind", "model_id_of_pipe", "model_revision_of", "parse_counts", "plan_indices", "plan_next_round",
    "sample_block", "scheduler_name", "weights_revision", "write_batch_downloads",
]
