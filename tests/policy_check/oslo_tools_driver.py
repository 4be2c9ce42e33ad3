"""Runs oslo.policy's oslopolicy-validator and oslopolicy-list-redundant
entry points (oslo_policy.generator.validate_policy / list_redundant, what
the console scripts call) for novajoin's rules, once per case.

The tools find a service's enforcer through an `oslo.policy.enforcer` entry
point; novajoin is not a Python package, so this driver stands in for that
lookup: an Enforcer on the tool's own configuration with novajoin's
registered defaults (the JSON `novajoin policy-sample --format json`
prints). Everything else is the tools' own code.

Usage: oslo_tools_driver.py DEFAULTS.json CASES.json RESULTS.json
CASES.json: [{"tool": "validate"|"list-redundant", "argv": [...], "cwd": DIR}]
RESULTS.json: [{"out": str, "rc": int}]. Each case runs in a forked child,
so no configuration or file cache carries over; an uncaught exception is
exit status 1, as for the scripts.
"""
import json
import os
import sys

from oslo_config import cfg
from oslo_policy import generator
from oslo_policy import policy


def run_case(defaults, case, out_path):
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.chdir(case['cwd'])

    def enforcer(namespace):
        if namespace != 'novajoin':
            raise KeyError(f'Namespace "{namespace}" not found.')
        e = policy.Enforcer(cfg.CONF)
        e.register_defaults(
            [policy.RuleDefault(name, check) for name, check in defaults.items()]
        )
        return e

    generator._get_enforcer = enforcer
    rc = 0
    try:
        if case['tool'] == 'validate':
            generator.validate_policy(case['argv'])
        else:
            generator.list_redundant(case['argv'])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: B036 - the script would die here too
        rc = 1
    sys.stdout.flush()
    os._exit(rc)


def main():
    with open(sys.argv[1]) as f:
        defaults = json.load(f)
    with open(sys.argv[2]) as f:
        cases = json.load(f)
    results = []
    for i, case in enumerate(cases):
        out_path = f'{sys.argv[3]}.{i}.out'
        pid = os.fork()
        if pid == 0:
            run_case(defaults, case, out_path)
        _, status = os.waitpid(pid, 0)
        with open(out_path) as f:
            out = f.read()
        os.unlink(out_path)
        results.append({'out': out, 'rc': os.waitstatus_to_exitcode(status)})
    with open(sys.argv[3], 'w') as f:
        json.dump(results, f)


if __name__ == '__main__':
    main()
