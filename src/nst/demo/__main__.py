"""`python -m nst.demo`: serve the stylising page (see nst.demo.cli)."""

from nst.demo.cli import main

main()
