"""SeSpeCT tests (a package, so that its conftest does not replace the top-level tests/conftest.py
as the module named ``conftest``, which other tests import helpers from)."""
