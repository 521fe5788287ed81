"""Herald's shared runtime: server lifecycle, errors, auth, config, database, filters, paging."""
