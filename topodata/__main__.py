import sys

from topodata.cli import main

sys.exit(main())
