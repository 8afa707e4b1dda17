"""`python -m gateway` is the `obgw` console script."""
from gateway.cli import main

raise SystemExit(main())
