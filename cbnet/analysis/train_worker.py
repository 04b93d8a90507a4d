"""``python -m cbnet.analysis.train_worker SPEC_JSON``: one training-step measurement in a fresh process.

Started by :func:`cbnet.analysis.measure_train_step`; prints the result as one marked JSON line.
"""
import json
import sys

from .train_step import RESULT_MARKER, run_worker


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit('usage: python -m cbnet.analysis.train_worker SPEC_JSON '
                         '(started by cbnet.analysis.measure_train_step)')
    print(RESULT_MARKER + json.dumps(run_worker(json.loads(args[0]))), flush=True)


if __name__ == '__main__':
    main()
