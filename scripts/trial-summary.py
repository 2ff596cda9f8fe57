"""Turn trial's closing line into "N passed, N failed[, N skipped]"; exit 1 if no test ran."""

import re
import sys

text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
closing = re.findall(r"^(PASSED|FAILED) \(([^)]*)\)", text, re.MULTILINE)
counts = dict.fromkeys(["successes", "failures", "errors", "skips", "expectedFailures", "unexpectedSuccesses"], 0)
if closing:
    for key, value in re.findall(r"(\w+)=(\d+)", closing[-1][1]):
        counts[key] = int(value)
passed = counts["successes"] + counts["expectedFailures"]
failed = counts["failures"] + counts["errors"] + counts["unexpectedSuccesses"]
line = f"{passed} passed, {failed} failed"
if counts["skips"]:
    line += f", {counts['skips']} skipped"
print(line)
if passed + failed == 0:
    print("no test ran", file=sys.stderr)
    sys.exit(1)
sys.exit(1 if failed else 0)
