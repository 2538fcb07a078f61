"""The outbox of emails, alerts and outgoing webhooks, and the signed billing-portal links."""
