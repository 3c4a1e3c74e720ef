"""Full-text search's index: conversations/search_index.py has the SQL of each backend
(PostgreSQL: a generated tsvector column and GIN indexes; SQLite: FTS5 tables and triggers)."""

from django.db import migrations

from conversations import search_index


def forward(apps, schema_editor):
    search_index.install(schema_editor.connection)


def backward(apps, schema_editor):
    search_index.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0011_quotas"),
    ]

    operations = [migrations.RunPython(forward, backward)]
