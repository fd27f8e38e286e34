"""The test suite, one folder per s2f folder (tests/model tests s2f/model), plus package/, reliability/ and benchmarks/.

A package, so that test modules are named ``tests.<folder>.test_x`` and two folders may hold files of one name;
the shared builders (``helpers``) and ``media`` import from ``tests/`` itself (``pythonpath`` in pyproject.toml).
"""
