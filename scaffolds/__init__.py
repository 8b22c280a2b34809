"""Project templates for ``pcreate`` (installed as ``aiopyramid.scaffolds``)."""
