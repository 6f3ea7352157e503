"""``python -m lprnet_tf.cli.data SUBCOMMAND ...`` = ``lprnet-data SUBCOMMAND ...``."""

from lprnet_tf.cli.data import main

main()
