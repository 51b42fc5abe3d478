"""Drop the index Django gives Message.folder: the unique (folder_id, uid) index starts
with the same column, so the second one only cost every delivery an extra index insert.
A plain DROP INDEX on both databases (an AlterField would copy the whole table on SQLite
and leave the index in place on PostgreSQL)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mailstore", "0006_incoming_data"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="folder",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="mailstore.folder",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX IF EXISTS mailstore_message_folder_id_1c2ef0f7",
                    reverse_sql=(
                        "CREATE INDEX mailstore_message_folder_id_1c2ef0f7"
                        " ON mailstore_message (folder_id)"
                    ),
                ),
            ],
        ),
    ]
