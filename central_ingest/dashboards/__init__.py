"""Read-only APIs behind the traffic dashboard (``/traffic``) and the sensors page (``/sensors``).

They add what the plain query API cannot answer in one call: the violation_increase rule's own numbers per
junction and period (so the page draws exactly what the rule sees), counts per hour of the day, and each
sensor station with the alert levels the rules judge it by. Every route checks the role and the caller's
area scope (``central_ingest.access.scope``).
"""
