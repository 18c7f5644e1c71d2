import sys

from iimm_cli import main

sys.exit(main())
