import sys

from tumor_model.commands import main

sys.exit(main())
