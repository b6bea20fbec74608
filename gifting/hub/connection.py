"""The old name of :class:`gifting.hub.send_queue.SendQueue`, kept for existing imports."""

from gifting.hub.send_queue import SendQueue as Outbox

__all__ = ["Outbox"]
