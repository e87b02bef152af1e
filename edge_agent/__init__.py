"""Edge agent: cameras in, compact durable events out."""
