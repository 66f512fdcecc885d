"""The agent's domain: conversations, messages, tickets, leads and appointments.

Every change goes through `domain.services`, which publishes its event in the same
transaction as the write, so a rollback stores and sends nothing.
"""
