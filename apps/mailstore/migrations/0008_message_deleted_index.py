"""A partial index of the \\Deleted messages, for EXPUNGE in big folders."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mailstore", "0007_message_folder_no_own_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("deleted", True)),
                fields=["folder", "uid"],
                name="message_deleted",
            ),
        ),
    ]
