"""When, whether and how jobs run: settings, schedules, engine, daemon, CLI."""
