import sys

from airloop.cli import main

sys.exit(main())
