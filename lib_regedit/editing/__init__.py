"""Region editing (MRGD): the pieces that edit a generated or real image region by region."""
