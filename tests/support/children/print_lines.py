"""print_lines.py COUNT: print numbered lines (some on stderr, in pieces), then run until stopped."""

import os
import sys
import time

count = int(sys.argv[1])
for number in range(1, count + 1):
    stream = sys.stderr if number % 7 == 0 else sys.stdout
    text = f"line {number:06d} " + "x" * 40 + "\n"
    # Written in two pieces: the log must still get whole lines.
    stream.write(text[:10])
    stream.flush()
    stream.write(text[10:])
    stream.flush()
print(f"done {count}", flush=True)
while True:
    time.sleep(60)
