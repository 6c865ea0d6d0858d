"""The Dapr side: registered apps, access control, the invoke proxy, actors and their schedules."""
