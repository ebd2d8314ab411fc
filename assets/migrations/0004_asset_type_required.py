import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("assets", "0003_standard_asset_types")]

    operations = [
        migrations.AlterField(
            model_name="asset",
            name="asset_type",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="assets", to="assets.assettype"),
        ),
        migrations.RemoveField(model_name="asset", name="kind"),
    ]
