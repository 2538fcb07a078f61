"""Task runners behind `services.webhooks.ports.TaskRunner`: inline threads, or Celery."""
