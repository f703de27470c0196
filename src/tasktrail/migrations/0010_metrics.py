# The metrics endpoint's counters (tasktrail_metric, a few dozen rows per task name,
# added to by every flush) and the pool size workers report with their heartbeat. A new
# table and a nullable column without a default: catalogue changes only, no rewrite.
# The counters start at zero here; Prometheus' rate() needs no history before it.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tasktrail", "0009_search")]

    operations = [
        migrations.CreateModel(
            name="Metric",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "name",
                        "kind",
                        "label",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("name", models.CharField(max_length=255)),
                ("kind", models.CharField(max_length=16)),
                ("label", models.CharField(max_length=50)),
                ("count", models.BigIntegerField()),
                ("total", models.FloatField()),
            ],
            options={"db_table": "tasktrail_metric"},
        ),
        migrations.AddField(
            model_name="worker",
            name="pool",
            field=models.IntegerField(null=True),
        ),
    ]
