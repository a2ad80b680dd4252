"""`python -m webapp_operator`: run the WebApp operator against the current cluster."""

from webapp_operator.operator import main

raise SystemExit(main())
