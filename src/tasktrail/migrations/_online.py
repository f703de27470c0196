"""Migration operations for a task table that is large and written all the time.

The module name starts with an underscore, so Django's migration loader skips it.
"""

from typing import Any

from django.db import migrations


class AddIndexOnline(migrations.AddIndex):
    """``CREATE INDEX CONCURRENTLY`` on PostgreSQL: a large task table keeps taking
    writes while the index is built (a plain CREATE INDEX blocks them for minutes at
    10 M rows). Other databases build it as usual."""

    def _concurrently(self, schema_editor: Any) -> dict[str, bool]:
        return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, **self._concurrently(schema_editor))

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, **self._concurrently(schema_editor))


def drop_like_index(table: str, column: str) -> migrations.RunPython:
    """Drop the ``varchar_pattern_ops`` index Django adds on PostgreSQL for a unique or
    indexed ``CharField``: no tasktrail query uses ``LIKE`` on it, and every write pays
    for it. Django names it with a hash, so it is looked up."""

    def forwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname LIKE %s",
                [table, f"{table}_{column}_%_like"],
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f'DROP INDEX IF EXISTS "{name}"')

    return migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True)
