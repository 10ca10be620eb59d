"""A deeper run of the handler property test than the suite's (60 examples).

Run from the repository root: ``python bench/fuzz_handler.py [--examples N]``
(default 2000). Any JSON in any field, lone surrogates and integers of
thousands of digits included, must give a model or one error sentence of at
most 400 characters; the result must always ``json.dumps(...).encode("utf-8")``
(also with ``ensure_ascii=False``, as RunPod's SDK posts it) and the handler
must never raise. The draft backend serves the valid requests, so no weights
are needed. The last line is ``fuzz_examples=<n> failures=0`` on success;
hypothesis prints the smallest failing payload otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="hy3d-fuzz-"))
    os.environ.update(
        {
            "HY3DGEN_MODELS": str(scratch),
            "HF_HOME": str(scratch),
            "RUNPOD_HF_CACHE": str(scratch),
            "HF_HUB_OFFLINE": "1",
            "HY3D_MODEL": "draft",
            "HY3D_DEVICE": "cpu",
            "RUNPOD_LOG_LEVEL": "ERROR",
            "OMP_NUM_THREADS": "1",
        }
    )
    os.environ["HY3D_FUZZ_EXAMPLES"] = str(args.examples)
    sys.path.insert(0, str(ROOT))
    import base64
    import logging

    from hypothesis import HealthCheck, given, settings

    import worker
    from fakes.hostile import check_response, payloads
    from fakes.images import make_subject_png

    logging.disable(logging.CRITICAL)  # the handler logs every internal failure's traceback
    image = base64.b64encode(make_subject_png(64)).decode()
    counts = {"model": 0, "error": 0}

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(payloads(image))
    def prop(payload):
        response = worker.handler({"id": "fuzz", "input": payload})
        check_response(response)
        counts["error" if "error" in response else "model"] += 1

    started = time.perf_counter()
    prop()
    print(f"models={counts['model']} errors={counts['error']} seconds={time.perf_counter() - started:.1f}")
    print(f"fuzz_examples={args.examples} failures=0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
