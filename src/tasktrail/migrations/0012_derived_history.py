# A constant database default: adding the column rewrites no rows on PostgreSQL (11+) or
# SQLite, and a process still running the previous release, whose INSERT does not name
# the column, keeps writing (its rows, like every row before, store their whole history).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tasktrail", "0011_chord_members")]

    operations = [
        migrations.AddField(
            model_name="task",
            name="derived",
            field=models.PositiveSmallIntegerField(db_default=0),
        ),
    ]
