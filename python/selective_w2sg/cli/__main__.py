"""`python -m selective_w2sg.cli ...` (e.g. under torchrun) runs the `sw2s` command line."""

from . import main

if __name__ == "__main__":
    main()
