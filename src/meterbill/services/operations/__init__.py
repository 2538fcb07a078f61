"""Operations: service-level objectives and the state gauges of /metrics."""
