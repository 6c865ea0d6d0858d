"""What executes the partition core's effects: timers, delivery, attempts, sweeping."""
