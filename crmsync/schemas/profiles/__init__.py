"""Column mappings of CRM exports (TOML files, read by pipeline.profiles); a package so wheels ship them."""
