# The header tasks each chord's join has counted, so a header task delivered again
# counts once. A new table; no existing table changes. A chord under way while this is
# applied counts the header tasks that return afterwards, once each, as before.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tasktrail", "0010_metrics")]

    operations = [
        migrations.CreateModel(
            name="ChordMember",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "group_id",
                        "task_id",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("group_id", models.CharField(max_length=255)),
                ("task_id", models.CharField(max_length=255)),
            ],
            options={"db_table": "tasktrail_chord_member"},
        ),
    ]
