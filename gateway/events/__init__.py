"""UK Open Banking events v3.1.11: the Event Subscription and Aggregated Polling APIs (`api`), the SSRF rules for a
TPP's CallbackUrl (`callbacks`), and the bank's payment status changes read as resource-update events
(`bank_feed`). The events themselves, their SETs and their push (the outbox's Notifier) are `consents.notify`'s;
where they are kept, `store.events`.
"""
