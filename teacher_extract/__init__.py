"""Stage one: the teacher registry, ``fit-teacher`` and ``extract-teacher``."""
