"""Task runners behind `ports.tasks.TaskRunner`: inline threads, or Celery."""
