import sys

from order_engine.cli import main

sys.exit(main())
