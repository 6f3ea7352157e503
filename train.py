#!/usr/bin/env python
"""Thin wrapper: see lprnet_tf/cli/train.py (also installed as lprnet-train)."""
from lprnet_tf.cli.train import main

if __name__ == "__main__":
    main()
