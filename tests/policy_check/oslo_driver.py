"""Runs oslo.policy's oslopolicy-checker entry point (oslo_policy.shell.main,
what the console script calls) once per case, in one interpreter, so the
differential test does not pay Python's start-up 500 times.

Usage: oslo_driver.py CASES.json RESULTS.json
CASES.json: [{"argv": [...]}, ...]; RESULTS.json: [{"out": str, "rc": int}].
An uncaught exception counts as exit status 1, as it does for the script.
"""
import contextlib
import io
import json
import sys

from oslo_policy import shell


def main():
    cases_path, results_path = sys.argv[1], sys.argv[2]
    with open(cases_path) as f:
        cases = json.load(f)
    results = []
    for case in cases:
        sys.argv = ['oslopolicy-checker'] + case['argv']
        out, err = io.StringIO(), io.StringIO()
        rc = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                shell.main()
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # noqa: B036 - the script would die here too
                rc = 1
        results.append({'out': out.getvalue(), 'rc': rc})
    with open(results_path, 'w') as f:
        json.dump(results, f)


if __name__ == '__main__':
    main()
