"""How jobs talk to the world through queues of their own: the send queue to the
channel gateway (``send_queue``), A2A envelopes to venue agents (``dispatch``), alerts
(``alerts``), with their shared retry delay (``backoff``) and terminal record
(``deadletters``)."""
