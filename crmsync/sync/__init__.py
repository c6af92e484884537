"""Helcim against the CRM: read Helcim into the cache (:mod:`.snapshot`), pair and diff the two sides
(:mod:`.diff`), turn the diff into a budgeted plan (:mod:`.plan`) and write it to Helcim (:mod:`.load`)."""
