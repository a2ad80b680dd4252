"""`python -m opreplay.cli`: the same command as the `opreplay` script, for a known interpreter."""

from opreplay.cli import main

main()
