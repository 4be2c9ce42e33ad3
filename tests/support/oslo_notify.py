"""Publish notifications with the real oslo.messaging Notifier, as nova and
neutron do (driver messagingv2, their control exchange, the notifications
topic). Used by tests/support/rabbit.rs; reads one JSON job on stdin:

    {"url": "rabbit://guest:guest@127.0.0.1:5672/?amqp_durable_queues=true",
     "exchange": "nova", "topic": "novajoin_notifications",
     "driver": "messagingv2", "pace": 0.0,
     "messages": [{"publisher_id": "compute.cmp-1",
                   "event_type": "compute.instance.delete.end",
                   "priority": "info", "payload": {...},
                   "context": {"user_id": "...", "project_id": "..."}}]}

[oslo_messaging_rabbit] options travel in the URL's query string, which
oslo.messaging applies over its configuration. Prints one line per message
sent ("sent <n>") and "done <n>" at the end, so the caller can follow.
"""

import json
import sys
import time

from oslo_config import cfg
from oslo_context import context as oslo_context
import oslo_messaging


class ContextSerializer(oslo_messaging.Serializer):
    """What nova.rpc.RequestContextSerializer does: the payload through the
    JSON payload serializer, the context as its to_dict()."""

    def __init__(self):
        self._base = oslo_messaging.JsonPayloadSerializer()

    def serialize_entity(self, ctxt, entity):
        return self._base.serialize_entity(ctxt, entity)

    def deserialize_entity(self, ctxt, entity):
        return self._base.deserialize_entity(ctxt, entity)

    def serialize_context(self, ctxt):
        return ctxt.to_dict()

    def deserialize_context(self, ctxt):
        return oslo_context.RequestContext.from_dict(ctxt)


def main():
    job = json.load(sys.stdin)
    # What nova/config.py and neutron/common/config.py do before reading
    # their configuration: make their exchange the default control_exchange.
    oslo_messaging.set_transport_defaults(control_exchange=job["exchange"])
    conf = cfg.ConfigOpts()
    conf([], project="novajoin-test-publisher")
    transport = oslo_messaging.get_notification_transport(conf, url=job["url"])
    serializer = ContextSerializer()
    base = oslo_messaging.Notifier(
        transport,
        driver=job.get("driver", "messagingv2"),
        topics=[job["topic"]],
        serializer=serializer,
        retry=job.get("retry", -1),
    )
    sent = 0
    pace = float(job.get("pace", 0))
    for msg in job["messages"]:
        if pace and sent:
            time.sleep(pace)
        notifier = base.prepare(publisher_id=msg["publisher_id"])
        ctx_fields = msg.get("context") or {}
        ctxt = oslo_context.RequestContext(**ctx_fields)
        method = getattr(notifier, msg.get("priority", "info"))
        method(ctxt, msg["event_type"], msg["payload"])
        sent += 1
        print("sent %d" % sent, flush=True)
    transport.cleanup()
    print("done %d" % sent, flush=True)


if __name__ == "__main__":
    main()
