"""The open event feed's webhook side: subscriptions, their delivery log, the worker."""
