"""Evaluate a checkpoint with the config's test dataloader and evaluator.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl]
                                           [--cfg-options k=v ...] [--launcher ...]

A distiller config evaluates the student (``model.predict_with=teacher`` evaluates the teacher).
"""

from __future__ import annotations

import argparse

from mmengine.evaluator import DumpResults

import kd_det  # noqa: F401  (registers kd_det and its checkpoint-loading fix)
from kd_det.cli import (
    add_common_args,
    build_runner,
    check_inputs,
    close_process_group,
    load_config,
)


def main() -> None:
    parser = argparse.ArgumentParser(description="Test (evaluate) a checkpoint")
    add_common_args(parser)
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument("--out", help="dump the predictions to this pickle file")
    args = parser.parse_args()
    if args.out is not None and not args.out.endswith((".pkl", ".pickle")):
        raise SystemExit("--out must be a .pkl or .pickle file")
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    check_inputs(cfg, ("test",))
    runner = build_runner(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    runner.test()


if __name__ == "__main__":
    main()
    close_process_group()  # after main: its Runner, holding the group, is gone
