"""syspage.replay: plan the trace's page-eligible calls and replay them in the C engine."""
