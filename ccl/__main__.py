import sys

from ccl.cli import main

sys.exit(main())
