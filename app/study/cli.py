"""`affect-monitor analyze`: arousal and valence every 40 ms for a study's recordings."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from app.analyze import CHUNK_STEPS
from app.provenance import DEFAULT_MODEL
from app.study.engines import ClusterError
from app.study.inputs import MEDIA_EXTENSIONS, StudyInputError, find_study_files
from app.study.run import available_cores, run_study
from app.study.table import FAILURES_CSV
from models.faces import FaceDetectorError
from models.runtime import ModelLoadError

EPILOG = """\
Per input, DIR/<name>/predictions.csv (a row per 40 ms) and summary.json; for the study,
DIR/study.csv (a row per input; study.parquet too when pyarrow is installed) and
DIR/failures.csv. Run the same command again after a crash or with more inputs: inputs
whose outputs match (same file size and mtime or sha256, same model sha256, same options)
are skipped, the rest are analysed. Outputs are the same whatever --workers or --cluster.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="affect-monitor analyze", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Arousal and valence every 40 ms for recorded video or audio: single "
                    "files or a whole study, resumable, on many cores or a Dask cluster.")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="media files (anything FFmpeg reads), folders (searched "
                             "recursively by extension), recorded session folders, or "
                             "manifest .csv files with a header media[,participant,session]")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="results folder: one sub-folder per input and the study table")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                        help=f"exported .onnx model (default: {DEFAULT_MODEL.name})")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, metavar="N",
                       help="analyse N files at once in local processes, each with its own "
                            "ONNX Runtime session (default: 1; this machine has "
                            f"{available_cores()} cores)")
    where.add_argument("--cluster", metavar="ADDRESS",
                       help="run the files on the Dask distributed scheduler at ADDRESS "
                            "(e.g. tcp://login1:8786); inputs and --out must be on a "
                            "filesystem the workers share")
    parser.add_argument("--threads", type=int, metavar="T",
                        help="ONNX Runtime threads per file (default: cores / workers "
                             "locally, 1 on a cluster: one file per Dask worker thread)")
    parser.add_argument("--ext", action="append", metavar="EXT",
                        help="only these extensions when searching folders (repeatable, "
                             "e.g. --ext mp4 --ext wav; default: common audio and video)")
    parser.add_argument("--chunk", type=int, default=CHUNK_STEPS,
                        help="40 ms steps per model call (default: %(default)s)")
    parser.add_argument("--vad", choices=("silero", "energy"), default="silero",
                        help="voice activity detector (default: silero when installed)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    for option in ("chunk", "workers", "threads"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1")
    if args.model == DEFAULT_MODEL and not DEFAULT_MODEL.is_file():
        print(f"affect-monitor analyze: no --model given and the default model "
              f"({DEFAULT_MODEL}) is not installed; pass --model FILE.onnx", file=sys.stderr)
        return 2
    extensions = (frozenset("." + e.lower().lstrip(".") for e in args.ext) if args.ext
                  else MEDIA_EXTENSIONS)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        files = find_study_files(args.inputs, extensions)
        report = run_study(files, args.out, args.model, workers=args.workers,
                           cluster=args.cluster, threads=args.threads, vad=args.vad,
                           chunk_steps=args.chunk, progress=not args.no_progress)
    except (StudyInputError, ModelLoadError, FaceDetectorError, ClusterError) as error:
        print(f"affect-monitor analyze: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the output folder cannot be created or written
        print(f"affect-monitor analyze: cannot write results: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("affect-monitor analyze: interrupted; finished files are kept, run the same "
              "command again to do the rest", file=sys.stderr)
        return 130
    if report.failed:
        print(f"{len(report.failed)} of {len(files)} input(s) could not be analysed (listed "
              f"in {args.out / FAILURES_CSV}):", file=sys.stderr)
        for _item, why in report.failed:
            print(f"  {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
