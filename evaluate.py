#!/usr/bin/env python
"""Thin wrapper: see lprnet_tf/cli/evaluate.py (also installed as lprnet-evaluate)."""
from lprnet_tf.cli.evaluate import main

if __name__ == "__main__":
    main()
