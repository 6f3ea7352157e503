#!/usr/bin/env python
"""Thin wrapper: see lprnet_tf/cli/export.py (also installed as lprnet-export)."""
from lprnet_tf.cli.export import main

if __name__ == "__main__":
    main()
