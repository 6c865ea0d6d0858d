"""quill's engine: partitioned log, processors, invoker, timers, schema registry."""
