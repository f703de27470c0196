# Celery's view of a task whose result is ignored reads PENDING (Celery's rule), while
# tasktrail keeps recording it: the row must know. A nullable column without a default
# is a catalogue change only on PostgreSQL and SQLite (no table rewrite).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tasktrail", "0006_show_result")]

    operations = [
        migrations.AddField(
            model_name="task",
            name="ignore_result",
            field=models.BooleanField(null=True),
        ),
    ]
