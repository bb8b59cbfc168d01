"""The ATS's canonical model: one table and one pandera schema per entity."""
