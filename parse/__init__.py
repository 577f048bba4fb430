"""syspage.parse: trace text -> the normalized events/1 table (see syspage.schema)."""
