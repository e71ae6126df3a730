"""Rule prepare: triage, hash, features and thumbnail of each image of one location, one decode each."""
import os
import sys
from pathlib import Path

# ImageMagick reads its thread limit when it loads. One: the job's threads are worker processes,
# each decoding one image at a time, and parallel jobs must not oversubscribe the cores
# (measured: 13 ms/image with ImageMagick's default threads, 7.4 ms with 1).
os.environ.setdefault("MAGICK_THREAD_LIMIT", "1")

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the vacancy package)

from vacancy.common import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])  # noqa: F821

from vacancy.images.prepare import prepare_location_guarded  # noqa: E402

out = snakemake.output  # noqa: F821
prepare_location_guarded(snakemake.input[0], out.triage, out.hashes, out.features,  # noqa: F821
                         out.thumbs, out.rejects, **snakemake.params,  # noqa: F821
                         workers=snakemake.threads)  # noqa: F821
