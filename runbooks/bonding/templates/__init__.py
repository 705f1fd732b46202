"""jinja2 texts of the bonding findings: one ``<CODE>.j2`` per code, blocks ``summary`` and
``explanation``. A package only so that the templates ship in wheels."""
