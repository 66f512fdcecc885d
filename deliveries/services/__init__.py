"""Writes of the delivery engine, by stage: `publish` (an event and its deliveries, in the caller's
transaction), `send` (enqueue, take, render, record, schedule the next attempt) and `operator`
(what a person asks for: retry, redeliver, send a test event); `leads_reoffer` is one CRM rule
(the Leads webhook's daily re-offer) built on `operator`; `alerts` tells a site about its own
deliveries (`delivery.exhausted`, e-mail to its contacts). Reads are in deliveries/selectors.py.

Leases: a delivery is owned by whoever holds an unexpired `leased_until` with its `lease_token`.
Publishing and the sweep take a *dispatch* lease (deliveries/engine/outbox.py) and queue the ids with the token; the worker
that receives them swaps it for a *send* lease before the HTTP call. A lost queue message or a
dead worker only costs the lease: when it runs out, the sweep enqueues the delivery again.
"""
