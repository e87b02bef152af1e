"""Alert rules, their evaluation, the alert lifecycle, and the sinks that carry notifications out."""
