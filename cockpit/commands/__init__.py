"""Sub-commands of the ``cockpit`` command line that belong to one feature each.
``cockpit/cli.py`` registers them."""
