import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from control.agent import ConfigAgent


class Command(BaseCommand):
    help = (
        "Hear devices answer about their configuration (every protocol's answer topic and the status topics), "
        "apply the answers, and deliver what is pending to devices that come online. Runs until SIGINT/SIGTERM."
    )

    def add_arguments(self, parser):
        parser.add_argument("--client-id", default=settings.CONTROL_AGENT_CLIENT_ID, help="MQTT client id; its broker session keeps answers while the agent is down")

    def handle(self, *args, **options):
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        agent = ConfigAgent(settings.MQTT_URL, options["client_id"], settings.MQTT_PROTOCOL)
        self.stdout.write(f"config agent {options['client_id']} -> {agent.broker} topics {agent.filters}", ending="\n")
        self.stdout.flush()
        agent.run(stop)
