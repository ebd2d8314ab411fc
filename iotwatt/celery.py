import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iotwatt.settings")

app = Celery("iotwatt")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
