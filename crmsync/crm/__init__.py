"""The CRM side: read an export (:mod:`.extract`), map its headers (:mod:`.profiles`), normalise
(:mod:`.normalize`) and validate (:mod:`.validate`) its rows, and write the files the CRM imports
(:mod:`.export`)."""
