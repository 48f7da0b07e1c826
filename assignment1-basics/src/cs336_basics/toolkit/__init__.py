"""The shared floor of the five packages: helpers every script and library module uses, kept apart from
assignment 1's own code.

- :mod:`~cs336_basics.toolkit.cli`: typed dataclass configs parsed from the command line (``parse_config``);
- :mod:`~cs336_basics.toolkit.atomic`: atomic file writes (text, JSON, bytes, or any binary stream);
- :mod:`~cs336_basics.toolkit.tables`: markdown tables;
- :mod:`~cs336_basics.toolkit.figures`: saving matplotlib figures (headless, atomic);
- :mod:`~cs336_basics.toolkit.metrics`: JSONL (and optional wandb) metrics logging;
- :mod:`~cs336_basics.toolkit.data_paths`: where the course data lives, and the one downloader;
- :mod:`~cs336_basics.toolkit.device`: device and precision choice;
- :mod:`~cs336_basics.toolkit.entry_points`: for tests, a script's ``--help`` in a fresh interpreter and its module.

Import the submodules directly; this package imports nothing so that a script's start-up stays fast.
"""
