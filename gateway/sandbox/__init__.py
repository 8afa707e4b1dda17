"""The sandbox bank: a stand-in core-banking system behind a plain-HTTP boundary.

It plays the part of the bank's own systems so the gateway has something realistic to front: an
accounts service (customer login check, every UK Open Banking v3.1.11 Account and Transaction read,
paged, and Confirmation of Funds checks) and a payments service (every Payment Initiation kind:
domestic and international payments, scheduled payments and standing orders, file payments, and
domestic VRP payments, executed on the bank's clock against its books). It returns full, unmasked
records; minimising them per consent is the gateway's job. It must not import the rest of `gateway`,
so it stays a separate system in all but packaging.

The gateway names the customer in `x-bank-customer-id` (customer ids `alice`, `bob`) and the account
a payment or funds check is for in `x-bank-debtor-account-id`. Data is seeded: see `gateway.sandbox.data`.
Run both services with `python -m gateway.sandbox`.
"""
