# The table of known (task name, queue) pairs the dashboard's and the admin's name
# search and filters read (a few dozen rows) instead of the task table (10 M). Filled
# once from the tasks already recorded: one sequential scan (seconds at 10 M rows);
# from then on the write path adds each new pair.

from typing import Any

from django.db import migrations, models


def _fill(apps: Any, schema_editor: Any) -> None:
    Task = apps.get_model("tasktrail", "Task")
    TaskName = apps.get_model("tasktrail", "TaskName")
    alias = schema_editor.connection.alias
    pairs = Task.objects.using(alias).exclude(name="").values_list("name", "queue").distinct()
    TaskName.objects.using(alias).bulk_create(
        [TaskName(name=n, queue=q) for n, q in pairs], ignore_conflicts=True
    )


class Migration(migrations.Migration):
    dependencies = [("tasktrail", "0008_canvas")]

    operations = [
        migrations.CreateModel(
            name="TaskName",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=255)),
                ("queue", models.CharField(blank=True, default="", max_length=255)),
            ],
            options={"db_table": "tasktrail_name"},
        ),
        migrations.AddConstraint(
            model_name="taskname",
            constraint=models.UniqueConstraint(
                fields=("name", "queue"), name="tasktrail_name_unique"
            ),
        ),
        migrations.RunPython(_fill, migrations.RunPython.noop, elidable=True),
    ]
