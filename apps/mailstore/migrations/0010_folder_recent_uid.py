"""Folder.recent_uid: the first UID not yet claimed as \\Recent by an IMAP session.

Folders that exist already start with every message claimed (recent_uid = uidnext): their
sessions were told "0 RECENT", so nothing there is new to anyone. New folders start at 1.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('mailstore', '0009_stored_blob'),
    ]

    operations = [
        migrations.AddField(
            model_name='folder',
            name='recent_uid',
            field=models.BigIntegerField(default=1),
        ),
        migrations.RunSQL(
            "UPDATE mailstore_folder SET recent_uid = uidnext",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
