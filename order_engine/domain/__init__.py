"""Orders, their statuses and transitions, and the errors of the domain. Pure: imports
nothing else of the engine."""
