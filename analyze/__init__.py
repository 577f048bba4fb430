"""syspage.analyze: census, savings estimates and the interactive HTML report."""
