"""The engine: what gets delivery ids to the workers and a taken delivery to its receiver.

- `outbox.py`: a publishing process's delivery ids, enqueued for the workers in batches;
- `engine.py`: one worker process's engine: per-webhook admission and slots, the event loop
  thread that sends, the recorder thread that hands the outcomes back in batches;
- `http.py` and `endpoint_auth.py`: the one outbound HTTP client (the URL policy checked at
  connect time, bounded time and bodies) and what a webhook's controls add to its requests
  (headers, authentication, TLS); `oauth.py`: OAuth2 tokens; `amqp.py`: a broker destination;
- `endpoint_health.py`: failure streaks, the circuit breaker, disabling and Retry-After;
- `rate_limit.py`: a webhook's pace, shared by every worker through its row.

Nothing here decides what a delivery's outcome means for it: deliveries/services/send.py does.
"""
