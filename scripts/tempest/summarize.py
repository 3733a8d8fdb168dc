#!/usr/bin/python3
"""Summarise a subunit v2 stream (stdin) from `stestr last --subunit`.

Prints failed test ids (one per line, prefixed "FAILED "), then a final line
"passed N, failed N, skipped N". Exit status: 0 if nothing failed, 1 if any
test failed, 2 if the stream held no test results at all (tempest itself broke).

Class-level errors show up as ids like "setUpClass (tempest.api.volume.X)"; they
count as failures so a broken fixture cannot hide a whole class.
"""
import sys

import subunit
import testtools

# Final status per test id; a retried or duplicated id keeps its last status.
statuses = {}


def on_test(test):
    # Other statuses ('exists', 'inprogress', 'unknown') are not outcomes.
    if test['status'] in ('success', 'fail', 'skip', 'xfail', 'uxsuccess'):
        statuses[test['id']] = test['status']


def main():
    stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name='stdout')
    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    try:
        stream.run(result)
    finally:
        result.stopTestRun()

    # xfail is an expected failure: count it as passed; uxsuccess as failed.
    passed = sum(1 for s in statuses.values() if s in ('success', 'xfail'))
    failed = sorted(t for t, s in statuses.items() if s in ('fail', 'uxsuccess'))
    skipped = sum(1 for s in statuses.values() if s == 'skip')
    for test_id in failed:
        print('FAILED ' + test_id)
    print('passed %d, failed %d, skipped %d' % (passed, len(failed), skipped))
    if failed:
        return 1
    return 0 if statuses else 2


if __name__ == '__main__':
    sys.exit(main())
