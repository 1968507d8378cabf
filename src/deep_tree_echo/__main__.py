"""``python -m deep_tree_echo``: the same as the ``deep-tree-echo`` command."""

from deep_tree_echo.cli import main

if __name__ == "__main__":
    main()
